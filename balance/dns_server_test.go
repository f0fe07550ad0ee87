package balance

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNS is an authoritative DNS server on 127.0.0.1 whose records a test
// sets and changes, and which counts the questions it is asked. Names it has
// no record for get NXDOMAIN; names with records of other types get NODATA;
// both with the zone's SOA in the authority section unless noSOA is set.
type testDNS struct {
	addr string

	mu       sync.Mutex
	records  map[rrKey][]dns.RR
	names    map[string]bool
	asked    map[rrKey]int
	servfail map[string]bool
	truncate map[string]bool // names answered with TC over UDP
	overTCP  int             // questions received over TCP
	soa      *dns.SOA
	delay    time.Duration
}

// newTestDNS starts a testDNS stopped by t.Cleanup. Its SOA has TTL 3600
// and MINIMUM 60 unless the test changes it with setSOA.
func newTestDNS(t testing.TB) *testDNS {
	t.Helper()
	s := &testDNS{
		records:  make(map[rrKey][]dns.RR),
		names:    make(map[string]bool),
		asked:    make(map[rrKey]int),
		servfail: make(map[string]bool),
		truncate: make(map[string]bool),
	}
	s.setSOA(3600, 60)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("test DNS server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	s.addr = pc.LocalAddr().String()
	// The same port over TCP, for answers truncated over UDP.
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Logf("no TCP listener on %s: %v", s.addr, err)
		return s
	}
	tcpStarted := make(chan struct{})
	tcpSrv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(tcpStarted) }}
	go func() { errc <- tcpSrv.ActivateAndServe() }()
	select {
	case <-tcpStarted:
	case err := <-errc:
		t.Fatalf("test DNS server over TCP: %v", err)
	}
	t.Cleanup(func() { _ = tcpSrv.Shutdown() })
	return s
}

// set replaces the records of every (name, type) among rrs, given in zone
// file syntax ("_sip._udp.farm.example. 60 IN SRV 10 5 5060 a.farm.example.").
func (s *testDNS) set(t testing.TB, rrs ...string) {
	t.Helper()
	parsed := make(map[rrKey][]dns.RR)
	for _, z := range rrs {
		rr, err := dns.NewRR(z)
		if err != nil {
			t.Fatalf("bad test record %q: %v", z, err)
		}
		k := rrKey{name: dns.CanonicalName(rr.Header().Name), qtype: rr.Header().Rrtype}
		parsed[k] = append(parsed[k], rr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range parsed {
		s.records[k] = v
		s.names[k.name] = true
	}
}

// remove deletes the records of name and type.
func (s *testDNS) remove(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, rrKey{name: dns.CanonicalName(name), qtype: qtype})
}

// setSOA sets the TTL and MINIMUM of the SOA sent with negative answers; a
// TTL of 0 with minimum 0 sends none.
func (s *testDNS) setSOA(ttl, minimum uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ttl == 0 && minimum == 0 {
		s.soa = nil
		return
	}
	s.soa = &dns.SOA{
		Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  "ns.example.", Mbox: "hostmaster.example.", Serial: 1,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: minimum,
	}
}

// setDelay makes the server wait d before each answer.
func (s *testDNS) setDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// truncateName makes UDP answers about name empty and truncated (TC).
func (s *testDNS) truncateName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate[dns.CanonicalName(name)] = true
}

// failName makes questions about name get SERVFAIL.
func (s *testDNS) failName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[dns.CanonicalName(name)] = true
}

// count returns how often (name, type) was asked.
func (s *testDNS) count(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[rrKey{name: dns.CanonicalName(name), qtype: qtype}]
}

// total returns the number of questions asked.
func (s *testDNS) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.asked {
		n += c
	}
	return n
}

func (s *testDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	k := rrKey{name: dns.CanonicalName(q.Name), qtype: q.Qtype}
	s.mu.Lock()
	s.asked[k]++
	delay := s.delay
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	if !udp {
		s.overTCP++
	}
	switch {
	case udp && s.truncate[k.name]:
		resp.Truncated = true
	case s.servfail[k.name]:
		resp.Rcode = dns.RcodeServerFailure
	case len(s.records[k]) > 0:
		for _, rr := range s.records[k] {
			resp.Answer = append(resp.Answer, dns.Copy(rr))
		}
	default:
		if !s.names[k.name] {
			resp.Rcode = dns.RcodeNameError
		}
		if s.soa != nil {
			resp.Ns = append(resp.Ns, dns.Copy(s.soa))
		}
	}
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	_ = w.WriteMsg(resp)
}

// fakeClock is a settable clock for the Resolver's cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testResolver returns a Resolver asking the given servers, with cfg's other
// fields, reading the fake clock clk when it is not nil.
func testResolver(t testing.TB, clk *fakeClock, cfg ResolverConfig, servers ...*testDNS) *Resolver {
	t.Helper()
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, s.addr)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	r, err := NewResolver(cfg)
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}
	if clk != nil {
		r.now = clk.Now
	}
	return r
}

// targetStrings renders targets as "addr/transport p=P w=W" for comparison.
func targetStrings(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = fmt.Sprintf("%v/%v p=%d w=%d", t.Addr, t.Transport, t.Priority, t.Weight)
	}
	return out
}
