//go:build linux && !race

package hep

import (
	"io"
	"testing"
	"time"
)

// The sender's writev over TCP allocates nothing.
func TestVecWriterAllocs(t *testing.T) {
	c, srv := dialPair(t)
	go io.Copy(io.Discard, srv)
	var w vecWriter
	if err := w.init(c); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 1200)
	bufs := [][]byte{rec, rec, rec, rec}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if n := testing.AllocsPerRun(1000, func() {
		if err := w.write(bufs); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("write: %v allocations, want 0", n)
	}
}
