package hep

import (
	"net"
	"net/netip"
	"time"
)

// HEP over TCP: the frames go back to back on one connection, which Run
// opens on its first batch and opens again, after a backoff, when it
// breaks. Frames drained while it is down, and the batch whose write
// failed, are counted as send errors: a collector that is down or slow
// never makes Run wait longer than the dial or write timeout, and the queue
// keeps the data path from waiting at all.
const (
	dialTimeout  = 2 * time.Second
	writeTimeout = 2 * time.Second
	minBackoff   = 100 * time.Millisecond
	maxBackoff   = 10 * time.Second
)

// streamWriter sends batches of records on a TCP connection with one writev.
type streamWriter struct {
	addr    netip.AddrPort
	conn    net.Conn
	vw      vecWriter // the platform's writev (stream_linux.go, stream_other.go)
	retryAt time.Time
	backoff time.Duration
}

// write sends the frames of the batch's records and returns how many went
// and how many were lost.
func (w *streamWriter) write(batch [][]byte) (sent, failed int) {
	frames := 0
	for _, rec := range batch {
		frames += countFrames(rec)
	}
	now := time.Now()
	if w.conn == nil {
		if now.Before(w.retryAt) {
			return 0, frames
		}
		c, err := net.DialTimeout("tcp", w.addr.String(), dialTimeout)
		if err != nil {
			w.broke(time.Now())
			return 0, frames
		}
		if err := w.vw.init(c); err != nil {
			c.Close()
			w.broke(time.Now())
			return 0, frames
		}
		w.conn, w.backoff = c, 0
	}
	w.conn.SetWriteDeadline(now.Add(writeTimeout))
	err := w.vw.write(batch)
	if err != nil {
		// Part of the batch may have gone; a frame cut in two ends the
		// connection, and the collector drops the part.
		w.close()
		w.broke(time.Now())
		return 0, frames
	}
	return frames, 0
}

// broke schedules the next dial: the backoff doubles from minBackoff to
// maxBackoff.
func (w *streamWriter) broke(now time.Time) {
	w.backoff = min(max(2*w.backoff, minBackoff), maxBackoff)
	w.retryAt = now.Add(w.backoff)
}

func (w *streamWriter) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// countFrames is the number of frames in a record (one or two).
func countFrames(rec []byte) int {
	n := 0
	for b := rec; len(b) >= frameHeaderLen; n++ {
		l := int(b[4])<<8 | int(b[5])
		if l < frameHeaderLen || l > len(b) {
			break // cannot happen: Capture wrote these frames
		}
		b = b[l:]
	}
	return n
}
