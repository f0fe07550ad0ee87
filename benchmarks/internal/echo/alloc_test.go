//go:build !race

package echo

import (
	"net"
	"testing"
)

// TestHandleAllocs pins the hot path: answering a message allocates nothing.
func TestHandleAllocs(t *testing.T) {
	// Not served: the test calls handle itself, as the serving goroutine would.
	srv, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	k := srv.socks[0]
	sink := client(t) // answers go here and are never read
	src := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, method := range []string{"OPTIONS", "INVITE", "CANCEL", "REGISTER", "BYE", "ACK"} {
		for _, callID := range []string{"alloc@test", FloodMark + "alloc@test"} {
			req := request(sink, method, callID, "Record-Route: <sip:127.0.0.1;lr>\r\n", "v=0\r\n")
			k.handle(req, src) // grow the buffers once
			if allocs := testing.AllocsPerRun(100, func() { k.handle(req, src) }); allocs != 0 {
				t.Errorf("handle(%s, Call-ID %s): %v allocs per message, want 0", method, callID, allocs)
			}
		}
	}
	garbage := []byte("\x00" + FloodMark + "\xff")
	if allocs := testing.AllocsPerRun(100, func() { k.handle(garbage, src) }); allocs != 0 {
		t.Errorf("handle(marked garbage): %v allocs per message, want 0", allocs)
	}
}

// BenchmarkHandle is the CPU cost of answering one OPTIONS, send included.
func BenchmarkHandle(b *testing.B) {
	srv, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	k := srv.socks[0]
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	src := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	req := request(sink, "OPTIONS", "bench@test", "", "")
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		k.handle(req, src)
	}
}

// TestStreamAllocs pins the TCP hot path: framing and answering what one
// read brought allocates nothing.
func TestStreamAllocs(t *testing.T) {
	s := newStream(netipLoopback(), new(counters))
	in := tcpRequest("INVITE", "alloc@tcp", "v=0\r\n") + tcpRequest("OPTIONS", "alloc@tcp", "") + "\r\n\r\n"
	run := func() {
		s.have = copy(s.in, in)
		if !s.process() {
			t.Fatal("process: stream broken")
		}
	}
	run() // grow the buffers once
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Errorf("process: %v allocs per read, want 0", allocs)
	}
}

// BenchmarkStream is the CPU cost of framing and answering one OPTIONS on a
// TCP stream, the write left out.
func BenchmarkStream(b *testing.B) {
	s := newStream(netipLoopback(), new(counters))
	in := tcpRequest("OPTIONS", "bench@tcp", "")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		s.have = copy(s.in, in)
		s.process()
	}
}
