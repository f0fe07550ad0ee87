package engine

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/guard"
)

func newGuardedForwarder(t *testing.T, gc guard.Config, acl *guard.ACL) *Forwarder {
	t.Helper()
	g, err := guard.New(gc)
	if err != nil {
		t.Fatal(err)
	}
	pc := balance.PoolConfig{Name: "farm"}
	for _, a := range backends {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a})
	}
	bal, err := balance.New([]balance.PoolConfig{pc})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: []LegConfig{{Transport: balance.UDP, Addr: legAddr, ACL: acl}}, Guard: g}, bal)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAdmitScanners(t *testing.T) {
	f := newGuardedForwarder(t, guard.Config{}, nil)
	for _, tc := range []struct {
		name    string
		header  string
		dropped bool
	}{
		{"sipvicious", "User-Agent: friendly-scanner", true},
		{"case and position", "User-Agent: SIPVicious/0.3.4 (Linux)", true},
		{"display name", `Contact: <sip:x@127.0.0.1>`, false},
		{"a softphone", "User-Agent: Linphone/5.2.0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := f.NewScratch()
			r := f.Process(s, invite("scan-"+strings.ReplaceAll(tc.name, " ", "-")+"@x", "z9hG4bKscan", tc.header), client, f.Legs()[0])
			if got := r.Drop == DropScanner; got != tc.dropped {
				t.Errorf("dropped as scanner = %v (drop %v, out %d bytes), want %v", got, r.Drop, len(r.Out), tc.dropped)
			}
			if tc.dropped && r.Out != nil {
				t.Errorf("a scanner got an answer or was forwarded")
			}
		})
	}
	in := sip("OPTIONS sip:100@127.0.0.1 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKsv",
		"From: \"sipvicious\" <sip:100@1.1.1.1>;tag=1", "To: <sip:100@1.1.1.1>", "Call-ID: sv@x", "CSeq: 1 OPTIONS", "Content-Length: 0")
	if r := f.Process(f.NewScratch(), in, client, f.Legs()[0]); r.Drop != DropScanner {
		t.Errorf("From display name sipvicious: %v, want scanner drop", r.Drop)
	}
}

func TestAdmitACL(t *testing.T) {
	acl, err := guard.NewACL("listen[0]", guard.ACLConfig{Deny: []string{"127.0.0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	f := newGuardedForwarder(t, guard.Config{}, acl)
	if r := f.Process(f.NewScratch(), invite("acl1@x", "z9hG4bKacl"), netip.MustParseAddrPort("127.0.0.3:5060"), f.Legs()[0]); r.Drop != DropDenied || r.Out != nil {
		t.Errorf("denied source: %v", r.Drop)
	}
	if r := f.Process(f.NewScratch(), invite("acl2@x", "z9hG4bKacl"), client, f.Legs()[0]); r.Out == nil {
		t.Errorf("permitted source dropped: %v", r.Drop)
	}
}

// Garbage from one source earns at most the per-source burst of 400s, so
// siplb reflects less than it receives.
func TestAdmitReplyLimit(t *testing.T) {
	f := newGuardedForwarder(t, guard.Config{Replies: guard.ReplyConfig{PerSourceRate: 1, PerSourceBurst: 5}}, nil)
	s := f.NewScratch()
	junk := []byte("INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.5:5060;branch=z9hG4bKj\r\n\r\n")
	src := netip.MustParseAddrPort("127.0.0.5:5060")
	answered := 0
	for range 100 {
		if r := f.Process(s, junk, src, f.Legs()[0]); r.Out != nil {
			answered++
		}
	}
	if answered != 5 || s.Counters.Drops[DropReplyLimited].Load() != 95 {
		t.Errorf("answered %d of 100 (limited %d), want the burst of 5", answered, s.Counters.Drops[DropReplyLimited].Load())
	}
	// Another source has its own budget.
	if r := f.Process(s, junk, client, f.Legs()[0]); r.Out == nil {
		t.Errorf("another source's malformed request got no answer: %v", r.Drop)
	}
}

// startGuardedLB runs a one-loop Server with the edge defences of gc on a
// UDP leg in front of uas.
func startGuardedLB(t *testing.T, gc guard.Config, uas *testUAS) (netip.AddrPort, *Server) {
	t.Helper()
	g, err := guard.New(gc)
	if err != nil {
		t.Fatal(err)
	}
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: uas.addr}}}})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: legs, Guard: g}, bal)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(f, 1, nil)
	runServerT(t, srv)
	return legs[0].Addr, srv
}

// A flood from one source is cut at the door while another source and the
// backends' own traffic pass; real sockets, the batched UDP path.
func TestServerFloodBlocked(t *testing.T) {
	uas := startUAS(t)
	lb, srv := startGuardedLB(t, guard.Config{Flood: guard.FloodConfig{Window: time.Second, Density: 50}}, uas)

	flooder, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.2:0")))
	if err != nil {
		t.Fatalf("bind 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux): %v", err)
	}
	defer flooder.Close()
	const sent = 2000
	for i := range sent {
		flooder.WriteToUDPAddrPort(invite("flood-"+itoa(i)+"@x", "z9hG4bKfl"+itoa(i)), lb)
	}
	// A legitimate client still gets its calls through during the block.
	c := newUAC(t, lb)
	for i := range 5 {
		if _, err := c.call("legit-" + itoa(i)); err != nil {
			t.Fatalf("legitimate call %d during the flood: %v", i, err)
		}
	}
	reached := 0
	time.Sleep(200 * time.Millisecond) // what is queued drains
	uas.mu.Lock()
	for id := range uas.seen {
		if len(id) > 6 && id[:6] == "flood-" {
			reached++
		}
	}
	uas.mu.Unlock()
	// Windows are aligned (now / window): a flood that starts just before
	// a window ends gets up to the density in that window and again in the
	// next before the block, so 2 × 50 and a few, not 50 (a loaded machine
	// sending the 2000 slowly failed a bound of 60 with 67).
	if reached > 110 {
		t.Errorf("%d of %d flood INVITEs reached the backend, want at most twice the density (50) and a few", reached, sent)
	}
	// Dropped in user space until the kernel filter is set, then in the
	// kernel (kfilter_linux.go), uncounted.
	if d := srv.Stats().Drop(DropFlood); d == 0 {
		t.Errorf("no flood drop counted")
	}
}

// A listener's deny list closes a connection at accept, before a loop or a
// handshake spends anything on it.
func TestAcceptDenied(t *testing.T) {
	uas := startTCPUAS(t)
	acl, err := guard.NewACL("listen[0]", guard.ACLConfig{Deny: []string{"127.0.0.4"}})
	if err != nil {
		t.Fatal(err)
	}
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{tcpMember(uas)}}})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{{Transport: balance.TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0"), ACL: acl}}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	legs = append(legs, LegConfig{Transport: balance.UDP, Addr: legs[0].Addr})
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServerWith(f, Options{Loops: 1})
	runServerT(t, srv)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 4)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp4", legs[0].Addr.String())
	if err != nil {
		t.Fatalf("dial from 127.0.0.4 (all of 127.0.0.0/8 is loopback on Linux): %v", err)
	}
	defer c.Close()
	c.Write(optionsReq(c.LocalAddr().String(), "deny@x", 1))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 512)
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("a denied source was served: %q", buf[:n])
	}
	if srv.Stats().Drop(DropDenied) == 0 {
		t.Error("the refused connection was not counted")
	}
	// An admitted source is served on the same listener.
	ok := dialTCP(t, legs[0].Addr)
	ok.Write(optionsReq(ok.LocalAddr().String(), "allow@x", 1))
	if got := readResponses(t, ok, 1, 3*time.Second); len(got) != 1 {
		t.Error("an admitted client got no answer")
	}
}

// TestCoarseClockParks checks that the coarse clock stops ticking once
// nobody reads it (an idle instance wakes for no tick), that a read of a
// parked clock gets the wall clock and restarts it, and that it keeps
// ticking while read.
func TestCoarseClockParks(t *testing.T) {
	f := newTestForwarder(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { f.runClock(stop); close(done) }()
	defer func() { close(stop); <-done }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("the clock parks unread", func() bool { return f.clock.Load() == 0 })
	before := time.Now().UnixNano()
	if got := f.now(); got < before {
		t.Fatalf("a parked clock's read = %d, before the wall clock's %d", got, before)
	}
	waitFor("a read restarts it", func() bool { return f.clock.Load() != 0 })
	// Read it every millisecond for 40 ticks' time: it must not park.
	for end := time.Now().Add(40 * clockTick); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if f.now() == 0 {
			t.Fatal("now() returned 0")
		}
		if f.clock.Load() == 0 && f.clockUsed.Load() {
			// Parked although read within the last tick: allowed only
			// in the instant between a read and the ticker seeing it.
			time.Sleep(2 * clockTick)
			if f.clock.Load() == 0 {
				t.Fatal("the clock parked while read every millisecond")
			}
		}
	}
	a := f.clock.Load()
	time.Sleep(3 * clockTick)
	f.now()
	if b := f.clock.Load(); b == 0 || b == a {
		t.Fatalf("the clock does not advance while read: %d then %d", a, b)
	}
}
