package engine

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
)

// A datagram to a backend port where nothing listens draws ICMP port
// unreachable from the backend's own address; the batched path reads it
// from the error queue (IP_RECVERR) and passes it on as a hint at once.
func TestBatchICMPUnreachable(t *testing.T) {
	for _, tc := range []struct{ name, network, ip string }{
		{name: "ipv4", network: "udp4", ip: "127.0.0.1"},
		{name: "ipv6", network: "udp6", ip: "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) { testBatchICMPUnreachable(t, tc.network, tc.ip) })
	}
}

func testBatchICMPUnreachable(t *testing.T, network, ip string) {
	pc, err := net.ListenPacket(network, net.JoinHostPort(ip, "0"))
	if err != nil {
		// A kernel without IPv6 refuses the family, one with IPv6
		// disabled (or a namespace without it) has no ::1; any other
		// error is a failure.
		if network == "udp6" && errors.Is(err, syscall.EAFNOSUPPORT) {
			t.Skipf("needs IPv6: this machine's kernel lacks the IPv6 family (socket: EAFNOSUPPORT, %v), so the test has no ::1 to send from and to", err)
		}
		if network == "udp6" && errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Skipf("needs ::1 on loopback: this machine has IPv6 disabled there (bind: EADDRNOTAVAIL, %v), so the test has no ::1 to send from and to", err)
		}
		t.Fatalf("bind %s loopback: %v", network, err)
	}
	dead := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	bal, _ := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: dead}}}})
	legs := []LegConfig{{Transport: balance.UDP, Addr: netip.AddrPortFrom(netip.MustParseAddr(ip), 0)}}
	ResolvePorts(legs)
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reported []netip.AddrPort
	var hints []balance.Hint
	srv := NewServerWith(f, Options{Loops: 1, Unreachable: func(a netip.AddrPort, h balance.Hint) {
		mu.Lock()
		reported = append(reported, a)
		hints = append(hints, h)
		mu.Unlock()
	}})
	runServerT(t, srv)
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if _, err := c.WriteToUDPAddrPort(optionsReq(c.LocalAddr().String(), "icmp", i+1), legs[0].Addr); err != nil {
			t.Fatal(err)
		}
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
	if hints[0] != balance.HintPortUnreachable {
		t.Errorf("hint %v, want %v", hints[0], balance.HintPortUnreachable)
	}
	if st := srv.Stats(); st.ICMPIgnored != 0 || st.ICMPOther != 0 {
		t.Errorf("a genuine port unreachable counted as ignored (%d) or other (%d)", st.ICMPIgnored, st.ICMPOther)
	}
	if srv.Stats().ICMPErrors == 0 {
		t.Errorf("ICMPErrors = 0")
	}
}
