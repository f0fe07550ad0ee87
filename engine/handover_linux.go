package engine

import "time"

// stopReading ends b's reader after its current batch: a read deadline in
// the past fails the next RawConn.Read before it calls recvmmsg, and wakes
// one waiting in the netpoller. Sends use RawConn.Write and are unaffected.
func (b *batchSock) stopReading() {
	b.conn.SetReadDeadline(time.Unix(1, 0))
}
