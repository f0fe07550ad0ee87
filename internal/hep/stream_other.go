//go:build !linux

package hep

import "net"

// vecWriter writes a batch of records with net.Buffers (writev where the
// platform has it).
type vecWriter struct {
	c  net.Conn
	nb net.Buffers // a field, so that WriteTo's pointer receiver allocates nothing
}

func (w *vecWriter) init(c net.Conn) error { w.c = c; return nil }

func (w *vecWriter) write(bufs [][]byte) error {
	w.nb = bufs
	_, err := w.nb.WriteTo(w.c)
	w.nb = nil
	return err
}
