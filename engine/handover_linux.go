package engine

import (
	"time"

	"golang.org/x/sys/unix"
)

// stopReading ends b's reader after its current batch: a read deadline in
// the past fails the next RawConn.Read before it calls recvmmsg, and wakes
// one waiting in the netpoller. Sends use RawConn.Write and are unaffected.
func (b *batchSock) stopReading() {
	b.conn.SetReadDeadline(time.Unix(1, 0))
}

// releaseSockets makes k leave the sockets alone from now on and takes its
// program off them: a socket has one filter, shared with the successor the
// socket was handed to, and the blocks of a process that no longer reads
// must not outlive it there (nothing would expire them). What the
// successor blocked meanwhile is dropped by its own guard in user space
// until its filter changes again.
func (k *kernelFilter) releaseSockets() {
	k.mu.Lock()
	socks := k.socks
	k.socks = nil
	k.mu.Unlock()
	for _, rc := range socks {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		})
	}
}
