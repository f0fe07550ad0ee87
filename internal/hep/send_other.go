//go:build !linux

package hep

import "net"

// batchWriter sends frames one datagram a write where there is no
// sendmmsg.
type batchWriter struct {
	c      *net.UDPConn
	frames [2 * maxBatch][]byte
	n      int
}

func (w *batchWriter) init(c *net.UDPConn, _ bool) error { w.c = c; return nil }

func (w *batchWriter) segmenting() bool { return false }

func (w *batchWriter) reset() { w.n = 0 }

func (w *batchWriter) add(frame []byte) {
	if w.n < len(w.frames) {
		w.frames[w.n] = frame
		w.n++
	}
}

func (w *batchWriter) write() (sent, failed int) {
	for i := range w.n {
		if _, err := w.c.Write(w.frames[i]); err != nil {
			failed++
		} else {
			sent++
		}
		w.frames[i] = nil
	}
	return sent, failed
}
