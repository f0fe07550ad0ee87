package balance

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// farmZone is a domain with NAPTR records for every transport (and two that
// siplb must skip), SRV records with several priorities and weights, and
// hosts with A and AAAA records.
var farmZone = []string{
	`example.com. 300 IN NAPTR 20 10 "s" "SIP+D2U" "" _sip._udp.example.com.`,
	`example.com. 300 IN NAPTR 10 20 "s" "SIP+D2T" "" _sip._tcp.example.com.`,
	`example.com. 300 IN NAPTR 10 10 "s" "SIPS+D2T" "" _sips._tcp.example.com.`,
	`example.com. 300 IN NAPTR 5 10 "s" "SIP+D2S" "" _sip._sctp.example.com.`,
	`example.com. 300 IN NAPTR 5 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .`,
	`_sips._tcp.example.com. 300 IN SRV 0 0 5061 tls.example.com.`,
	`_sip._tcp.example.com. 300 IN SRV 10 10 5060 b.example.com.`,
	`_sip._tcp.example.com. 300 IN SRV 10 60 5060 a.example.com.`,
	`_sip._tcp.example.com. 300 IN SRV 5 0 5070 c.example.com.`,
	`_sip._udp.example.com. 300 IN SRV 0 0 5060 a.example.com.`,
	`_sip._sctp.example.com. 300 IN SRV 0 0 5060 a.example.com.`,
	`a.example.com. 120 IN A 192.0.2.1`,
	`a.example.com. 120 IN AAAA 2001:db8::1`,
	`b.example.com. 300 IN A 192.0.2.2`,
	`c.example.com. 300 IN A 192.0.2.3`,
	`tls.example.com. 300 IN A 192.0.2.4`,
}

// srvOnlyZone has SRV records for the three SIP services but no NAPTR.
var srvOnlyZone = []string{
	`_sip._udp.example.com. 300 IN SRV 0 0 5060 a.example.com.`,
	`_sip._tcp.example.com. 300 IN SRV 0 0 5060 b.example.com.`,
	`_sips._tcp.example.com. 300 IN SRV 0 0 5061 c.example.com.`,
	`a.example.com. 300 IN A 192.0.2.1`,
	`b.example.com. 300 IN A 192.0.2.2`,
	`c.example.com. 300 IN A 192.0.2.3`,
}

// hostOnlyZone has only A and AAAA records.
var hostOnlyZone = []string{
	`example.com. 300 IN A 192.0.2.7`,
	`example.com. 300 IN AAAA 2001:db8::7`,
}

type question struct {
	name  string
	qtype uint16
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name      string
		zone      []string
		servfail  string // a name answered with SERVFAIL
		host      string
		port      uint16
		transport string
		secure    bool
		want      []string
		wantTTL   time.Duration
		wantErr   error
		notAsked  []question // questions RFC 3263 says not to ask here
	}{
		{
			name: "naptr order and preference then srv priority and weight",
			zone: farmZone, host: "example.com",
			want: []string{
				"192.0.2.4:5061/tls p=0 w=0",
				"192.0.2.3:5070/tcp p=5 w=0",
				"192.0.2.1:5060/tcp p=10 w=60",
				"[2001:db8::1]:5060/tcp p=10 w=60",
				"192.0.2.2:5060/tcp p=10 w=10",
				"192.0.2.1:5060/udp p=0 w=0",
				"[2001:db8::1]:5060/udp p=0 w=0",
			},
			wantTTL:  60 * time.Second, // NODATA for AAAA of b, c, tls: SOA minimum 60
			notAsked: []question{{"_sip._sctp.example.com", dns.TypeSRV}},
		},
		{
			name: "sips uses only SIPS+D2T naptr",
			zone: farmZone, host: "example.com", secure: true,
			want:     []string{"192.0.2.4:5061/tls p=0 w=0"},
			notAsked: []question{{"_sip._tcp.example.com", dns.TypeSRV}, {"_sip._udp.example.com", dns.TypeSRV}},
		},
		{
			name: "name is case-insensitive and may end in a dot",
			zone: farmZone, host: "EXAMPLE.com.", secure: true,
			want: []string{"192.0.2.4:5061/tls p=0 w=0"},
		},
		{
			name: "no usable naptr falls back to srv",
			zone: append([]string{`example.com. 300 IN NAPTR 10 10 "s" "SIP+D2S" "" _sip._sctp.example.com.`}, srvOnlyZone...),
			host: "example.com",
			want: []string{"192.0.2.1:5060/udp p=0 w=0", "192.0.2.2:5060/tcp p=0 w=0", "192.0.2.3:5061/tls p=0 w=0"},
		},
		{
			name: "no naptr: srv for udp, tcp, sips in that order",
			zone: srvOnlyZone, host: "example.com",
			want: []string{"192.0.2.1:5060/udp p=0 w=0", "192.0.2.2:5060/tcp p=0 w=0", "192.0.2.3:5061/tls p=0 w=0"},
		},
		{
			name: "naptr servfail falls back to srv",
			zone: srvOnlyZone, servfail: "example.com", host: "example.com",
			want: []string{"192.0.2.1:5060/udp p=0 w=0", "192.0.2.2:5060/tcp p=0 w=0", "192.0.2.3:5061/tls p=0 w=0"},
		},
		{
			name: "no naptr, sips: _sips._tcp only",
			zone: srvOnlyZone, host: "example.com", secure: true,
			want:     []string{"192.0.2.3:5061/tls p=0 w=0"},
			notAsked: []question{{"_sip._udp.example.com", dns.TypeSRV}, {"_sip._tcp.example.com", dns.TypeSRV}},
		},
		{
			name: "no naptr, no srv: A and AAAA on 5060 over udp",
			zone: hostOnlyZone, host: "example.com",
			want: []string{"192.0.2.7:5060/udp p=0 w=0", "[2001:db8::7]:5060/udp p=0 w=0"},
		},
		{
			name: "no naptr, no srv, sips: A and AAAA on 5061 over tls",
			zone: hostOnlyZone, host: "example.com", secure: true,
			want: []string{"192.0.2.7:5061/tls p=0 w=0", "[2001:db8::7]:5061/tls p=0 w=0"},
		},
		{
			name: "ipv4 literal", host: "192.0.2.9",
			want: []string{"192.0.2.9:5060/udp p=0 w=0"},
		},
		{
			name: "ipv6 literal with port and transport", host: "[2001:db8::9]", port: 5080, transport: "TCP",
			want: []string{"[2001:db8::9]:5080/tcp p=0 w=0"},
		},
		{
			name: "ip literal sips", host: "192.0.2.9", secure: true,
			want: []string{"192.0.2.9:5061/tls p=0 w=0"},
		},
		{
			name: "explicit port: A and AAAA only",
			zone: append(slices.Clone(farmZone), hostOnlyZone...), host: "example.com", port: 5099,
			want: []string{"192.0.2.7:5099/udp p=0 w=0", "[2001:db8::7]:5099/udp p=0 w=0"},
			notAsked: []question{
				{"example.com", dns.TypeNAPTR}, {"_sip._udp.example.com", dns.TypeSRV},
				{"_sip._tcp.example.com", dns.TypeSRV}, {"_sips._tcp.example.com", dns.TypeSRV},
			},
		},
		{
			name: "explicit transport: its srv only, no naptr",
			zone: farmZone, host: "example.com", transport: "tcp",
			want: []string{
				"192.0.2.3:5070/tcp p=5 w=0",
				"192.0.2.1:5060/tcp p=10 w=60",
				"[2001:db8::1]:5060/tcp p=10 w=60",
				"192.0.2.2:5060/tcp p=10 w=10",
			},
			notAsked: []question{{"example.com", dns.TypeNAPTR}, {"_sip._udp.example.com", dns.TypeSRV}},
		},
		{
			name: "explicit tls transport without srv: A and AAAA on 5061",
			zone: hostOnlyZone, host: "example.com", transport: "tls",
			want:     []string{"192.0.2.7:5061/tls p=0 w=0", "[2001:db8::7]:5061/tls p=0 w=0"},
			notAsked: []question{{"example.com", dns.TypeNAPTR}},
		},
		{
			name: "sips with transport tcp means tls",
			zone: farmZone, host: "example.com", transport: "tcp", secure: true,
			want: []string{"192.0.2.4:5061/tls p=0 w=0"},
		},
		{
			name: "srv target dot: service not available, no A fallback",
			zone: append([]string{`_sip._udp.example.com. 300 IN SRV 0 0 0 .`}, hostOnlyZone...),
			host: "example.com", transport: "udp",
			wantErr:  ErrNotFound,
			notAsked: []question{{"example.com", dns.TypeA}},
		},
		{
			name: "srv target without address is skipped",
			zone: []string{
				`_sip._udp.example.com. 300 IN SRV 0 0 5060 gone.example.com.`,
				`_sip._udp.example.com. 300 IN SRV 1 0 5060 b.example.com.`,
				`b.example.com. 300 IN A 192.0.2.2`,
			},
			host: "example.com", transport: "udp",
			want: []string{"192.0.2.2:5060/udp p=1 w=0"},
		},
		{name: "nxdomain", host: "nowhere.example.com", wantErr: ErrNotFound},
		{name: "servfail", servfail: "example.com", host: "example.com", port: 5060, wantErr: ErrServerFailure},
		{name: "invalid name", host: "bad..name", port: 5060, wantErr: ErrInvalidName},
		{name: "unknown transport", host: "example.com", transport: "sctp", wantErr: ErrTransport},
		{name: "sips over udp", host: "example.com", transport: "udp", secure: true, wantErr: ErrTransport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestDNS(t)
			srv.set(t, tc.zone...)
			if tc.servfail != "" {
				srv.failName(tc.servfail)
			}
			r := testResolver(t, nil, ResolverConfig{}, srv)
			got, err := r.Resolve(t.Context(), tc.host, tc.port, tc.transport, tc.secure)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Resolve(%q, %d, %q, %v): err = %v, want %v", tc.host, tc.port, tc.transport, tc.secure, err, tc.wantErr)
			}
			if gs := targetStrings(got); !slices.Equal(gs, tc.want) {
				t.Errorf("Resolve(%q, %d, %q, %v):\n got %q\nwant %q", tc.host, tc.port, tc.transport, tc.secure, gs, tc.want)
			}
			if tc.wantTTL != 0 && len(got) > 0 && got[0].TTL != tc.wantTTL {
				t.Errorf("TTL = %v, want %v", got[0].TTL, tc.wantTTL)
			}
			for _, q := range tc.notAsked {
				if n := srv.count(q.name, q.qtype); n != 0 {
					t.Errorf("%s %s asked %d times, want never", q.name, dns.TypeToString[q.qtype], n)
				}
			}
			if tc.port == 0 && tc.transport == "" && tc.want != nil && parseIPLiteralOK(tc.host) && srv.total() != 0 {
				t.Errorf("IP literal: %d questions sent, want none", srv.total())
			}
		})
	}
}

func parseIPLiteralOK(h string) bool { _, ok := parseIPLiteral(h); return ok }

// TestResolveCached: a second Resolve within the TTL sends no question.
func TestResolveCached(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t, farmZone...)
	r := testResolver(t, newFakeClock(), ResolverConfig{}, srv)
	first, err := r.Resolve(t.Context(), "example.com", 0, "", false)
	if err != nil {
		t.Fatal(err)
	}
	n := srv.total()
	second, err := r.Resolve(t.Context(), "example.com", 0, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if srv.total() != n {
		t.Errorf("second Resolve sent %d questions, want 0", srv.total()-n)
	}
	if !slices.Equal(first, second) {
		t.Errorf("second Resolve = %v, want %v", second, first)
	}
}

// TestResolverNegativeCache: a negative answer is cached for RFC 2308's
// min(SOA TTL, SOA MINIMUM), or NegativeTTL without an SOA, clamped; the
// question is not asked again before that, and is after.
func TestResolverNegativeCache(t *testing.T) {
	tests := []struct {
		name           string
		soaTTL, soaMin uint32
		cfg            ResolverConfig
		rrs            []string // records that make the name exist (NODATA rather than NXDOMAIN)
		want           time.Duration
	}{
		{name: "nxdomain soa minimum", soaTTL: 3600, soaMin: 60, want: 60 * time.Second},
		{name: "nodata soa minimum", soaTTL: 3600, soaMin: 90, rrs: []string{`host.example.com. 60 IN TXT "x"`}, want: 90 * time.Second},
		{name: "soa ttl below minimum", soaTTL: 20, soaMin: 60, want: 20 * time.Second},
		{name: "no soa", cfg: ResolverConfig{NegativeTTL: 45 * time.Second}, want: 45 * time.Second},
		{name: "no soa default", want: DefaultNegativeTTL},
		{name: "floor", soaTTL: 3600, soaMin: 1, cfg: ResolverConfig{MinTTL: 5 * time.Second}, want: 5 * time.Second},
		{name: "ceiling", soaTTL: 86400, soaMin: 86400, cfg: ResolverConfig{MaxTTL: 10 * time.Minute}, want: 10 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestDNS(t)
			srv.setSOA(tc.soaTTL, tc.soaMin)
			srv.set(t, tc.rrs...)
			clk := newFakeClock()
			r := testResolver(t, clk, tc.cfg, srv)
			lookup := func(step string, wantAsked int) {
				t.Helper()
				_, ttl, err := r.LookupHost(t.Context(), "host.example.com", 5060)
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("%s: err = %v, want ErrNotFound", step, err)
				}
				if step == "first" && ttl != tc.want {
					t.Errorf("%s: negative TTL = %v, want %v", step, ttl, tc.want)
				}
				if n := srv.count("host.example.com", dns.TypeA); n != wantAsked {
					t.Errorf("%s: A asked %d times, want %d", step, n, wantAsked)
				}
				if _, err := r.Resolve(t.Context(), "host.example.com", 5060, "", false); !errors.Is(err, ErrNotFound) {
					t.Errorf("%s: Resolve err = %v, want ErrNotFound", step, err)
				}
				if n := srv.count("host.example.com", dns.TypeA); n != wantAsked {
					t.Errorf("%s: after Resolve A asked %d times, want %d", step, n, wantAsked)
				}
			}
			lookup("first", 1)
			clk.Advance(tc.want - time.Second)
			lookup("within negative TTL", 1)
			clk.Advance(2 * time.Second)
			lookup("after negative TTL", 2)
		})
	}
}

// TestResolverTTLExpiry: an answer is used until its TTL (clamped) runs
// out, then asked again, and a changed record is seen.
func TestResolverTTLExpiry(t *testing.T) {
	tests := []struct {
		name string
		ttl  string
		cfg  ResolverConfig
		want time.Duration
	}{
		{name: "record ttl", ttl: "10", want: 10 * time.Second},
		{name: "floor", ttl: "1", cfg: ResolverConfig{MinTTL: 5 * time.Second}, want: 5 * time.Second},
		{name: "ceiling", ttl: "86400", cfg: ResolverConfig{MaxTTL: time.Minute}, want: time.Minute},
		{name: "default ceiling", ttl: "604800", want: DefaultMaxTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestDNS(t)
			srv.set(t, "sip.example.com. "+tc.ttl+" IN A 192.0.2.1",
				"_sip._udp.example.com. 86400 IN SRV 0 0 5060 sip.example.com.")
			srv.setSOA(86400, 86400) // keep AAAA's NODATA out of the way
			clk := newFakeClock()
			r := testResolver(t, clk, tc.cfg, srv)
			check := func(step, wantAddr string, wantAsked int) {
				t.Helper()
				for _, resolve := range []func() ([]Target, error){
					func() ([]Target, error) {
						ts, _, err := r.LookupSRV(t.Context(), "_sip._udp.example.com")
						return ts, err
					},
					func() ([]Target, error) { return r.Resolve(t.Context(), "example.com", 0, "udp", false) },
				} {
					ts, err := resolve()
					if err != nil {
						t.Fatalf("%s: %v", step, err)
					}
					if len(ts) != 1 || ts[0].Addr.Addr().String() != wantAddr {
						t.Errorf("%s: targets %v, want %s", step, targetStrings(ts), wantAddr)
					}
				}
				if n := srv.count("sip.example.com", dns.TypeA); n != wantAsked {
					t.Errorf("%s: A asked %d times, want %d", step, n, wantAsked)
				}
			}
			check("first", "192.0.2.1", 1)
			srv.set(t, "sip.example.com. "+tc.ttl+" IN A 192.0.2.2")
			clk.Advance(tc.want - time.Second)
			check("within TTL", "192.0.2.1", 1)
			clk.Advance(2 * time.Second)
			check("after TTL", "192.0.2.2", 2)
		})
	}
}

// TestResolverServerFailover: a server that fails is skipped for the next.
func TestResolverServerFailover(t *testing.T) {
	bad, good := newTestDNS(t), newTestDNS(t)
	bad.failName("sip.example.com")
	good.set(t, "sip.example.com. 60 IN A 192.0.2.1")
	r := testResolver(t, nil, ResolverConfig{}, bad, good)
	ts, _, err := r.LookupHost(t.Context(), "sip.example.com", 5060)
	if err != nil {
		t.Fatal(err)
	}
	if got := targetStrings(ts); !slices.Equal(got, []string{"192.0.2.1:5060/udp p=0 w=0"}) {
		t.Errorf("LookupHost = %q", got)
	}
	if bad.count("sip.example.com", dns.TypeA) != 1 || good.count("sip.example.com", dns.TypeA) != 1 {
		t.Errorf("asked bad %d, good %d times; want 1 and 1", bad.count("sip.example.com", dns.TypeA), good.count("sip.example.com", dns.TypeA))
	}
}

// TestResolverTruncated: a truncated UDP answer is asked again over TCP.
func TestResolverTruncated(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t, "sip.example.com. 60 IN A 192.0.2.1")
	srv.truncateName("sip.example.com")
	r := testResolver(t, nil, ResolverConfig{}, srv)
	ts, _, err := r.LookupHost(t.Context(), "sip.example.com", 5060)
	if err != nil {
		t.Fatal(err)
	}
	if got := targetStrings(ts); !slices.Equal(got, []string{"192.0.2.1:5060/udp p=0 w=0"}) {
		t.Errorf("LookupHost = %q", got)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.overTCP != 2 { // A and AAAA
		t.Errorf("%d questions over TCP, want 2", srv.overTCP)
	}
}

// TestResolverFailureCached: a server failure is remembered for MinTTL, so
// the data path does not wait on a failing server for every message.
func TestResolverFailureCached(t *testing.T) {
	srv := newTestDNS(t)
	srv.failName("sip.example.com")
	clk := newFakeClock()
	r := testResolver(t, clk, ResolverConfig{MinTTL: 5 * time.Second}, srv)
	for i, step := range []struct {
		advance time.Duration
		asked   int
	}{{0, 1}, {4 * time.Second, 1}, {2 * time.Second, 2}} {
		clk.Advance(step.advance)
		if _, err := r.Resolve(t.Context(), "sip.example.com", 5060, "", false); !errors.Is(err, ErrServerFailure) {
			t.Fatalf("step %d: err = %v, want ErrServerFailure", i, err)
		}
		if n := srv.count("sip.example.com", dns.TypeA); n != step.asked {
			t.Errorf("step %d: asked %d times, want %d", i, n, step.asked)
		}
	}
}

// TestResolverCoalesce: concurrent lookups of one name send one question.
func TestResolverCoalesce(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t, "sip.example.com. 60 IN A 192.0.2.1", "sip.example.com. 60 IN AAAA 2001:db8::1")
	srv.setDelay(20 * time.Millisecond)
	r := testResolver(t, nil, ResolverConfig{}, srv)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			ts, err := r.Resolve(t.Context(), "sip.example.com", 5060, "", false)
			if err != nil || len(ts) != 2 {
				t.Errorf("Resolve = %v, %v", ts, err)
			}
		})
	}
	wg.Wait()
	if n := srv.count("sip.example.com", dns.TypeA); n != 1 {
		t.Errorf("A asked %d times, want 1", n)
	}
}

// TestResolverCacheBound: the caches never hold more than MaxEntries.
func TestResolverCacheBound(t *testing.T) {
	srv := newTestDNS(t)
	r := testResolver(t, nil, ResolverConfig{MaxEntries: 8}, srv)
	for i := range 50 {
		_, _ = r.Resolve(t.Context(), "h"+strconv.Itoa(i)+".example.com", 5060, "", false)
		if n := r.rrs.len(); n > 8 {
			t.Fatalf("after %d names: %d DNS entries cached, want at most 8", i+1, n)
		}
		if n := r.results.len(); n > 8 {
			t.Fatalf("after %d names: %d results cached, want at most 8", i+1, n)
		}
	}
}

func TestResolverConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("search example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(empty, []byte("search example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		servers []string
		file    string
		want    []string
		wantErr error
	}{
		{name: "from resolv.conf", file: conf, want: []string{"192.0.2.53:53", "[2001:db8::53]:53"}},
		{name: "resolv.conf without nameserver", file: empty, wantErr: ErrNoServers},
		{name: "no resolv.conf", file: filepath.Join(dir, "missing"), wantErr: ErrNoServers},
		{name: "configured", servers: []string{"127.0.0.1:5353", "10.0.0.53", "[::1]:53", "::1"}, want: []string{"127.0.0.1:5353", "10.0.0.53:53", "[::1]:53", "[::1]:53"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolverServers(tc.servers, tc.file)
			if !errors.Is(err, tc.wantErr) || !slices.Equal(got, tc.want) {
				t.Errorf("resolverServers(%q, %s) = %q, %v; want %q, %v", tc.servers, tc.file, got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := resolverServers([]string{"dns.example.com"}, conf); err == nil {
		t.Error("a server given by name was accepted")
	}
	r, err := NewResolver(ResolverConfig{Servers: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config()
	if c.Timeout != DefaultDNSTimeout || c.MinTTL != DefaultMinTTL || c.MaxTTL != DefaultMaxTTL ||
		c.NegativeTTL != DefaultNegativeTTL || c.MaxEntries != DefaultMaxCacheEntries {
		t.Errorf("defaults: %+v", c)
	}
}

// ResolveCached answers from the cache only: nothing before a Resolve, the
// same targets after, and no question sent either way.
func TestResolveCachedOnly(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t, farmZone...)
	r := testResolver(t, newFakeClock(), ResolverConfig{}, srv)
	if _, _, ok := r.ResolveCached("example.com", 0, "", false); ok {
		t.Fatal("answer cached before any Resolve")
	}
	if srv.total() != 0 {
		t.Fatalf("ResolveCached sent %d questions", srv.total())
	}
	want, err := r.Resolve(t.Context(), "example.com", 0, "", false)
	if err != nil {
		t.Fatal(err)
	}
	n := srv.total()
	got, err, ok := r.ResolveCached("example.com", 0, "", false)
	if !ok || err != nil || len(got) != len(want) || got[0] != want[0] {
		t.Errorf("ResolveCached = %v, %v, %v; want %v from the cache", got, err, ok, want)
	}
	if srv.total() != n {
		t.Errorf("ResolveCached sent a question")
	}
}
