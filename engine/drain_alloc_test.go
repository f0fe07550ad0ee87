//go:build !race

package engine

import "testing"

// Draining costs the forward path nothing: the 503 to a new dialog, a
// request inside a dialog, and a stream's bookkeeping allocate nothing.
func TestDrainAllocs(t *testing.T) {
	f := newTestForwarder(t)
	f.draining.Store(true)
	s := f.NewScratch()
	leg := f.Legs()[0]
	inv := invite("drain-alloc@x", "z9hG4bKdrainalloc")
	bye := sip("BYE sip:uas@"+backends[0].String()+" SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbye;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Call-ID: dlg@x", "CSeq: 2 BYE", "Content-Length: 0")
	if r := f.Process(s, inv, client, leg); r.Status != 503 {
		t.Fatalf("INVITE while draining: status %d, want 503", r.Status)
	}
	if n := testing.AllocsPerRun(100, func() { f.Process(s, inv, client, leg) }); n != 0 {
		t.Errorf("503 while draining: %.1f allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { f.Process(s, bye, client, leg) }); n != 0 {
		t.Errorf("in-dialog BYE while draining: %.1f allocations, want 0", n)
	}
	var tr txTrack
	ok := []byte("SIP/2.0 200 OK\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() { tr.carry(inv, 1); tr.carry(ok, 2) }); n != 0 {
		t.Errorf("txTrack.carry: %.1f allocations, want 0", n)
	}
}
