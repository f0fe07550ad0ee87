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
		req := request(sink, method, "alloc@test", "Record-Route: <sip:127.0.0.1;lr>\r\n", "v=0\r\n")
		k.handle(req, src) // grow the buffers once
		if allocs := testing.AllocsPerRun(100, func() { k.handle(req, src) }); allocs != 0 {
			t.Errorf("handle(%s): %v allocs per message, want 0", method, allocs)
		}
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
