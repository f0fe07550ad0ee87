//go:build !race

package engine

import (
	"testing"

	"github.com/siplb/siplb/internal/hep"
)

// With capture on (a real hep.Sender), forwarding a request and routing
// its response back still allocate nothing, whether the frames are queued
// or dropped for a full queue.
func TestCaptureAllocs(t *testing.T) {
	f := newTestForwarder(t)
	f.SetCapture(startSender(t, hep.Config{Collector: discardSink(t), QueueSize: 16}))
	s := f.NewScratch()
	leg := f.Legs()[0]
	inv := invite("alloc@x", "z9hG4bKalloc")
	r := f.Process(s, inv, client, leg)
	if r.Out == nil {
		t.Fatal(r.Drop)
	}
	resp := backendResponse(t, r, "alloc@x")
	for range 64 { // every slot of the Sender used once
		f.Process(s, inv, client, leg)
	}
	if n := testing.AllocsPerRun(200, func() {
		if r := f.Process(s, inv, client, leg); r.Out == nil {
			t.Fatal(r.Drop)
		}
		if r := f.Process(s, resp, backends[0], leg); r.Out == nil {
			t.Fatal(r.Drop)
		}
	}); n != 0 {
		t.Errorf("Process with capture on: %v allocations, want 0", n)
	}
}
