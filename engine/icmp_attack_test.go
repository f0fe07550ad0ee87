//go:build linux

package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
)

// End-to-end tests of ICMP errors on the batched UDP path, with a Checker
// wired as cmd/siplb wires it: a forged ICMP port unreachable is ignored,
// a genuine one only starts a probe.

// checkedLB is a Server on a loopback UDP leg in front of backends, with a
// running Checker that gets the server's hints.
type checkedLB struct {
	addr    netip.AddrPort
	srv     *Server
	checker *balance.Checker
	bal     *balance.Balancer
	log     syncLog // the Checker's, at debug level
}

// syncLog is a strings.Builder safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startCheckedLB runs a Server (batched UDP, one loop) and a Checker with
// health hc over a hash-callid pool of backends until the test ends.
func startCheckedLB(t *testing.T, hc balance.HealthConfig, backends ...netip.AddrPort) *checkedLB {
	t.Helper()
	pc := balance.PoolConfig{Name: "farm", Algorithm: balance.HashCallID}
	for _, b := range backends {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: b, Transport: balance.UDP})
	}
	bal, err := balance.New([]balance.PoolConfig{pc})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	lb := &checkedLB{addr: legs[0].Addr, bal: bal}
	lb.srv = NewServerWith(f, Options{Loops: 1, Unreachable: func(a netip.AddrPort, h balance.Hint) { lb.checker.Unreachable(a, h) }})
	tr, sentBy, prefix := f.ProbeIdentity()
	lb.checker = balance.NewChecker(bal, map[string]balance.HealthConfig{"farm": hc},
		balance.ProbeIdentity{Transport: tr, SentBy: sentBy, BranchPrefix: prefix}, lb.srv,
		slog.New(slog.NewTextHandler(&lb.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	f.SetProbes(lb.checker)
	runServerT(t, lb.srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { lb.checker.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return lb
}

// health returns the Checker's view of addr.
func (lb *checkedLB) health(t *testing.T, addr netip.AddrPort) balance.BackendHealth {
	t.Helper()
	for _, h := range lb.checker.Status() {
		if h.Addr == addr {
			return h
		}
	}
	t.Fatalf("%v is not probed", addr)
	return balance.BackendHealth{}
}

// waitHealth polls the Checker every 10 ms until addr's health satisfies
// ok, for up to limit, and returns how long that took.
func (lb *checkedLB) waitHealth(t *testing.T, addr netip.AddrPort, limit time.Duration, what string, ok func(balance.BackendHealth) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var last balance.BackendHealth
	for time.Since(start) < limit {
		for _, h := range lb.checker.Status() {
			if h.Addr == addr {
				if ok(h) {
					return time.Since(start)
				}
				last = h
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%v not %s within %v: %+v", addr, what, limit, last)
	return 0
}

// icmpForger sends forged ICMP errors from a raw IPv4 socket.
type icmpForger struct{ fd int }

// newICMPForger opens a raw socket (IPPROTO_RAW: the test writes the IP
// header) or skips the test if it may not.
func newICMPForger(t *testing.T) *icmpForger {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("needs CAP_NET_RAW: this process lacks it (socket: %v), so it cannot open the raw IPv4 socket that forges the ICMP errors", err)
	}
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &icmpForger{fd: fd}
}

// portUnreachable sends an ICMP port unreachable from offender to victim
// (a UDP socket) about a datagram victim sent to dst: outer IPv4 header
// offender → victim, ICMP type 3 code 3, and the quoted IPv4 and UDP
// headers victim → dst (RFC 792: the IP header and the first 8 bytes of
// the datagram), as a router or host would send it.
func (f *icmpForger) portUnreachable(offender, victim, dst netip.AddrPort) error {
	const ipLen, icmpLen, udpLen = 20, 8, 8
	pkt := make([]byte, ipLen+icmpLen+ipLen+udpLen)
	ipHeader(pkt, offender.Addr(), victim.Addr(), unix.IPPROTO_ICMP, len(pkt))
	icmp := pkt[ipLen:]
	icmp[0], icmp[1] = 3, 3 // destination unreachable, port unreachable
	inner := icmp[icmpLen:]
	ipHeader(inner, victim.Addr(), dst.Addr(), unix.IPPROTO_UDP, ipLen+udpLen+32)
	udp := inner[ipLen:]
	binary.BigEndian.PutUint16(udp[0:], victim.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], udpLen+32)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return unix.Sendto(f.fd, pkt, 0, &unix.SockaddrInet4{Addr: victim.Addr().As4()})
}

// ipHeader writes an IPv4 header without options into b.
func ipHeader(b []byte, src, dst netip.Addr, proto, total int) {
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	b[8], b[9] = 64, byte(proto)
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:20]))
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// The attack: ICMP port unreachable forged from 127.0.0.50, an address
// that is none of the backends, quoting a datagram from siplb's leg to each
// of its three backends, over and over while calls run. siplb ignores and
// counts them; every call completes and no backend is ever marked down.
// Before ICMP errors were checked, the three of them emptied the pool: every
// call got 503.
func TestICMPForgedIgnored(t *testing.T) {
	forger := newICMPForger(t)
	uas := []*testUAS{startUAS(t), startUAS(t), startUAS(t)}
	var addrs []netip.AddrPort
	for _, u := range uas {
		addrs = append(addrs, u.addr)
	}
	hc := balance.HealthConfig{Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond, Fall: 2, Rise: 2, MaxBackoff: 200 * time.Millisecond}
	lb := startCheckedLB(t, hc, addrs...)
	for _, a := range addrs {
		lb.waitHealth(t, a, 3*time.Second, "probed", func(h balance.BackendHealth) bool { return h.Successes > 0 })
	}
	spoofed := netip.MustParseAddrPort("127.0.0.50:0")
	forge := func() {
		for _, a := range addrs {
			if err := forger.portUnreachable(spoofed, lb.addr, a); err != nil {
				t.Errorf("forging ICMP: %v", err)
			}
		}
	}
	forge()
	deadline := time.Now().Add(3 * time.Second)
	for lb.srv.Stats().ICMPIgnored < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * hc.Timeout) // long enough for any mark to be made

	// Keep forging, 3 errors every millisecond for 1.5 s (several probe
	// rounds), while calls run.
	var wg sync.WaitGroup
	forging := make(chan struct{})
	wg.Go(func() {
		defer close(forging)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
			<-tick.C
			forge()
		}
	})
	c := newUAC(t, lb.addr)
	var failed []string
	calls := 0
	for ; calls < 300; calls++ {
		select {
		case <-forging:
		default:
			if _, err := c.call(fmt.Sprintf("forged-icmp-%d", calls)); err != nil {
				failed = append(failed, err.Error())
			}
			continue
		}
		break
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d of %d calls failed under forged ICMP: %s", len(failed), calls, strings.Join(failed, "; "))
	}
	st := lb.srv.Stats()
	if st.ICMPIgnored < 3 {
		t.Errorf("ICMPIgnored = %d after forging at least 3 (ICMPErrors %d)", st.ICMPIgnored, st.ICMPErrors)
	}
	if st.Replies[503] != 0 {
		t.Errorf("%d replies 503", st.Replies[503])
	}
	for _, a := range addrs {
		if h := lb.health(t, a); !h.Up || h.Reason != "" {
			t.Errorf("%v: up %v, reason %q; want up and never marked", a, h.Up, h.Reason)
		}
	}
	if hs := lb.checker.HintStats(); hs.Received != 0 {
		t.Errorf("forged ICMP reached the health checks: %+v", hs)
	}
	if log := lb.log.String(); strings.Contains(log, "probe not sent") {
		t.Errorf("probes failed to be sent under forged ICMP:\n%s", log)
	}
	t.Logf("forged ICMP: %d errors read, %d ignored; %d calls, %d failed", st.ICMPErrors, st.ICMPIgnored, calls, len(failed))
}

// reservePort returns a loopback UDP address where nothing listens (bound
// and closed again).
func reservePort(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return a
}

// startUASAt starts a testUAS on addr; it may be called from any
// goroutine.
func startUASAt(t *testing.T, addr netip.AddrPort) error {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	u := &testUAS{conn: c, addr: addr, seen: map[string][]string{}}
	t.Cleanup(func() { c.Close() })
	go u.serve()
	return nil
}

// A backend that really dies: the next datagram to it draws a genuine ICMP
// port unreachable (from the backend's own address), which probes it at
// once; the probes go unanswered and it is marked down about Fall×Timeout
// later, long before the probing interval would have found it.
func TestICMPGenuineProbedDown(t *testing.T) {
	dead := startUAS(t)
	others := []*testUAS{startUAS(t), startUAS(t)}
	hc := balance.HealthConfig{Interval: 10 * time.Second, Timeout: 200 * time.Millisecond, Fall: 3}
	lb := startCheckedLB(t, hc, dead.addr, others[0].addr, others[1].addr)
	lb.waitHealth(t, dead.addr, 3*time.Second, "probed", func(h balance.BackendHealth) bool { return h.Successes > 0 })
	dead.conn.Close()
	died := time.Now()
	// Requests, one of three hashed to the dead backend, until one draws
	// an ICMP error.
	c := newUAC(t, lb.addr)
	for i := 0; i < 100 && lb.srv.Stats().ICMPErrors == 0; i++ {
		c.send(optionsReq(c.local(), fmt.Sprintf("genuine-%d", i), 1))
		time.Sleep(5 * time.Millisecond)
	}
	if lb.srv.Stats().ICMPErrors == 0 {
		t.Fatal("no ICMP error drawn by 100 requests")
	}
	limit := 3*time.Duration(hc.Fall)*hc.Timeout + time.Second // far below Interval
	lb.waitHealth(t, dead.addr, limit, "down", func(h balance.BackendHealth) bool { return !h.Up })
	detected := time.Since(died)
	h := lb.health(t, dead.addr)
	if want := "3 probes unanswered after ICMP port unreachable"; h.Reason != want {
		t.Errorf("reason %q, want %q", h.Reason, want)
	}
	if hs := lb.checker.HintStats(); hs.Probed == 0 {
		t.Errorf("no hint started a probe: %+v", hs)
	}
	for _, u := range others {
		if !lb.health(t, u.addr).Up {
			t.Errorf("%v down too", u.addr)
		}
	}
	t.Logf("dead backend marked down %v after it died (fall %d × timeout %v = %v; interval %v)",
		detected.Round(time.Millisecond), hc.Fall, hc.Timeout,
		time.Duration(hc.Fall)*hc.Timeout, hc.Interval)
	// Calls now go to the other two.
	for i := range 10 {
		if _, err := c.call(fmt.Sprintf("after-%d", i)); err != nil {
			t.Errorf("call with the dead backend down: %v", err)
		}
	}
}

// The startup race: siplb starts 0.3 s before its backends, with the
// default health settings. The first probes and the first calls draw
// genuine ICMP port unreachable, but the backends answer the next probes,
// so none is ever marked down, and calls are served as soon as the
// backends are (the client's retransmission, 1 s after the first try).
// Before, one ICMP marked each backend down and calls got 503 for
// Rise×Interval (10 s).
func TestICMPStartupRace(t *testing.T) {
	addrs := []netip.AddrPort{reservePort(t), reservePort(t), reservePort(t)}
	lb := startCheckedLB(t, balance.HealthConfig{}, addrs...)
	start := time.Now()
	started := make(chan struct{})
	go func() {
		defer close(started)
		time.Sleep(300 * time.Millisecond)
		for _, a := range addrs {
			if err := startUASAt(t, a); err != nil {
				t.Errorf("backend on %v: %v", a, err)
			}
		}
	}()
	c := newUAC(t, lb.addr)
	var firstServed time.Duration
	for i := range 6 {
		if _, err := c.call(fmt.Sprintf("startup-%d", i)); err != nil {
			t.Errorf("call %d, %v after start: %v", i, time.Since(start).Round(time.Millisecond), err)
		} else if firstServed == 0 {
			firstServed = time.Since(start)
		}
	}
	<-started
	if firstServed == 0 || firstServed > 2500*time.Millisecond {
		t.Errorf("first call served %v after start, want within the client's retransmissions (~1.5 s)", firstServed)
	}
	st := lb.srv.Stats()
	if st.Replies[503] != 0 {
		t.Errorf("%d replies 503", st.Replies[503])
	}
	if st.ICMPErrors == 0 {
		t.Error("no ICMP error before the backends started: the race was not run")
	}
	for _, a := range addrs {
		if h := lb.health(t, a); !h.Up || h.Reason != "" {
			t.Errorf("%v: up %v, reason %q; want never marked down", a, h.Up, h.Reason)
		}
	}
	t.Logf("startup race: first call served %v after siplb started (backends 300ms late); %d ICMP errors, hints %+v",
		firstServed.Round(time.Millisecond), st.ICMPErrors, lb.checker.HintStats())
}
