package engine

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
)

// A datagram to a backend port where nothing listens draws ICMP port
// unreachable; the batched path reads it from the error queue (IP_RECVERR)
// and reports the backend unreachable at once.
func TestBatchICMPUnreachable(t *testing.T) {
	pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	dead := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	bal, _ := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: dead}}}})
	legs := []LegConfig{{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	ResolvePorts(legs)
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reported []netip.AddrPort
	srv := NewServerWith(f, Options{Loops: 1, Unreachable: func(a netip.AddrPort) {
		mu.Lock()
		reported = append(reported, a)
		mu.Unlock()
	}})
	runServerT(t, srv)
	c := newUAC(t, legs[0].Addr)
	for i := range 3 {
		c.send(optionsReq(c.local(), "icmp", i+1))
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(reported)
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) == 0 || reported[0] != dead {
		t.Fatalf("unreachable reports %v, want %v", reported, dead)
	}
	if srv.Stats().ICMPErrors == 0 {
		t.Errorf("ICMPErrors = 0")
	}
}
