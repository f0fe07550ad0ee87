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

// A drain over UDP allocates nothing, frames of many sizes sorted into GSO
// entries and padded.
func TestBatchWriterAllocs(t *testing.T) {
	needGSO(t)
	sink := listenUDP(t)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, err := sink.conn.Read(buf); err != nil {
				return
			}
		}
	}()
	s := newTestSender(t, Config{Collector: sink.addr})
	var pkts [16]Packet
	for i := range pkts {
		pkts[i], _ = testPackets(200 + 97*i)
	}
	if n := testing.AllocsPerRun(200, func() {
		for i := range pkts {
			s.Capture(&pkts[i], nil)
		}
		s.drain()
	}); n != 0 {
		t.Errorf("Capture and drain: %v allocations, want 0", n)
	}
	if st := s.Stats(); !st.GSO || st.SendErrors != 0 {
		t.Errorf("Stats = %+v, want GSO on and no errors", st)
	}
}
