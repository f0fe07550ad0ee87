//go:build !race

package hep

import (
	"net/netip"
	"testing"
	"time"
)

func TestEncoderAppendAllocs(t *testing.T) {
	e := Encoder{CaptureID: 1, AuthKey: []byte("k")}
	p := Packet{Time: time.Now(), Src: netip.MustParseAddrPort("[2001:db8::1]:5060"), Dst: netip.MustParseAddrPort("[2001:db8::2]:5060"),
		IPProto: ProtoUDP, CorrelationID: []byte("id"), Payload: make([]byte, 500)}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = e.Append(buf[:0], &p) }); n != 0 {
		t.Errorf("Append: %v allocations, want 0", n)
	}
}

// Capture allocates nothing, whether it queues or drops.
func TestCaptureAllocs(t *testing.T) {
	sink := listenUDP(t)
	s := newTestSender(t, Config{Collector: sink.addr, QueueSize: 16})
	in, out := testPackets(600)
	for range 16 {
		s.Capture(&in, &out)
	}
	runSender(t, s)
	if n := testing.AllocsPerRun(1000, func() { s.Capture(&in, &out) }); n != 0 {
		t.Errorf("Capture: %v allocations, want 0", n)
	}
}
