//go:build !linux

package hep

import "net"

// vecWriter writes a batch of records with net.Buffers (writev where the
// platform has it).
type vecWriter struct {
	c    net.Conn
	bufs [maxBatch][]byte // a copy of the batch, which WriteTo consumes
	nb   net.Buffers      // a field, so that WriteTo's pointer receiver allocates nothing
}

func (w *vecWriter) init(c net.Conn) error { w.c = c; return nil }

// write writes every byte of bufs (at most maxBatch), or returns why it
// could not.
func (w *vecWriter) write(bufs [][]byte) error {
	n := copy(w.bufs[:], bufs)
	w.nb = w.bufs[:n]
	_, err := w.nb.WriteTo(w.c)
	clear(w.bufs[:n])
	w.nb = nil
	return err
}
