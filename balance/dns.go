package balance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults of ResolverConfig.
const (
	DefaultResolvConf  = "/etc/resolv.conf"
	DefaultDNSTimeout  = 2 * time.Second  // per query and server
	DefaultMinTTL      = 5 * time.Second  // floor on every cached answer
	DefaultMaxTTL      = time.Hour        // ceiling on every cached answer
	DefaultNegativeTTL = 30 * time.Second // negative answer without an SOA (RFC 2308 §5)
	// ednsBufSize is the UDP payload size advertised with EDNS0 (RFC 6891), so
	// that SRV and NAPTR sets of a farm fit in one datagram; a truncated
	// answer is retried over TCP.
	ednsBufSize = 1232
)

// Errors of the Resolver. Lookups wrap them with the name and type; test
// with errors.Is.
var (
	// ErrNotFound: the name does not exist or has no record of the type
	// (NXDOMAIN or NODATA). It is cached for the negative TTL (RFC 2308).
	ErrNotFound = errors.New("no such DNS record")
	// ErrServerFailure: no server gave a usable answer (timeout, SERVFAIL,
	// REFUSED …). It is cached for MinTTL, so that the data path does not
	// wait on a dead resolver for every message (RFC 2308 §7 allows up to 5
	// minutes).
	ErrServerFailure = errors.New("DNS server failure")
	// ErrNoServers: no resolver address configured nor found in resolv.conf.
	ErrNoServers = errors.New("no DNS servers")
	// ErrInvalidName: the host is neither an IP literal nor a domain name.
	ErrInvalidName = errors.New("invalid domain name")
	// ErrTransport: the URI asks for a transport siplb does not speak (sctp,
	// ws …), or for UDP with a SIPS URI.
	ErrTransport = errors.New("unsupported transport")

	// errNoService: the SRV set exists but says "." (RFC 2782: the service
	// is decidedly not available), so there is no fallback to A/AAAA.
	errNoService = fmt.Errorf("service not available: %w", ErrNotFound)
)

// ResolverConfig configures a Resolver. The zero value means the documented
// defaults.
type ResolverConfig struct {
	// Servers are the recursive resolvers to ask, "host:port" or "host"
	// (port 53), tried in order. Empty: the nameservers of /etc/resolv.conf.
	Servers []string
	// Timeout bounds one query to one server (default 2s); a truncated UDP
	// answer is retried over TCP within the same bound.
	Timeout time.Duration
	// MinTTL and MaxTTL clamp the TTL of every cached answer, positive or
	// negative (defaults 5s and 1h). MinTTL also bounds how often a failing
	// server is asked again.
	MinTTL, MaxTTL time.Duration
	// NegativeTTL is how long a negative answer is cached when it carries no
	// SOA to take the TTL from (default 30s); with an SOA, RFC 2308 §5's
	// min(SOA TTL, SOA MINIMUM) is used.
	NegativeTTL time.Duration
	// MaxEntries bounds each cache (default DefaultMaxCacheEntries). When a
	// cache is full, expired entries are dropped, and if that is not enough,
	// all of them.
	MaxEntries int
}

func (c *ResolverConfig) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = DefaultDNSTimeout
	}
	if c.MinTTL <= 0 {
		c.MinTTL = DefaultMinTTL
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	if c.MaxTTL < c.MinTTL {
		c.MaxTTL = c.MinTTL
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxCacheEntries
	}
}

// Resolver does RFC 3263 lookups (NAPTR, SRV, A/AAAA) with a cache that
// honours TTLs and negative answers. It is safe for concurrent use;
// concurrent lookups of the same name and type share one query. Results come
// from the cache while it holds them, so a caller on the data path pays a
// read lock and a map lookup per call.
type Resolver struct {
	cfg     ResolverConfig
	servers []string
	udp     *dns.Client
	tcp     *dns.Client
	now     func() time.Time // time.Now; tests inject a fake clock

	rrs     *ttlCache[rrKey, []dns.RR]
	results *ttlCache[resolveKey, []Target]
}

// rrKey is one question: a lower-case FQDN and a type.
type rrKey struct {
	name  string
	qtype uint16
}

// NewResolver returns a Resolver for cfg. Without Servers it reads
// /etc/resolv.conf and fails with ErrNoServers if that names none.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	cfg.setDefaults()
	servers, err := resolverServers(cfg.Servers, DefaultResolvConf)
	if err != nil {
		return nil, err
	}
	cfg.Servers = servers
	return &Resolver{
		cfg:     cfg,
		servers: servers,
		udp:     &dns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: ednsBufSize},
		tcp:     &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
		now:     time.Now,
		rrs:     newTTLCache[rrKey, []dns.RR](cfg.MaxEntries),
		results: newTTLCache[resolveKey, []Target](cfg.MaxEntries),
	}, nil
}

// Config returns the configuration in effect, defaults and servers filled in.
func (r *Resolver) Config() ResolverConfig {
	c := r.cfg
	c.Servers = slices.Clone(c.Servers)
	return c
}

// Target is one resolved next hop. Priority and Weight are those of the SRV
// record it came from (0 when there was none); TTL is how long the answer
// that produced it stays valid (the smallest TTL along the chain, clamped).
type Target struct {
	Addr      netip.AddrPort
	Transport Transport
	Priority  int
	Weight    int
	TTL       time.Duration
}

// LookupSRV looks up the SRV records of name (e.g. "_sip._udp.example.com")
// and the A and AAAA records of each target. Targets come in RFC 2782 order,
// made deterministic so that every instance agrees: Priority ascending, then
// Weight descending, then target name and port; each target's IPv4
// addresses before its IPv6 ones. Their Transport follows the service and
// protocol labels (_sips._tcp: TLS, _sip._tcp: TCP, otherwise UDP). Targets
// whose address lookup fails are left out; a target "." (RFC 2782: service
// decidedly not available) yields none. The returned TTL is the smallest of
// the chain (or the negative TTL with ErrNotFound); the slice is the
// caller's.
func (r *Resolver) LookupSRV(ctx context.Context, name string) ([]Target, time.Duration, error) {
	return r.lookupSRV(ctx, name, srvTransport(name))
}

func (r *Resolver) lookupSRV(ctx context.Context, name string, tr Transport) ([]Target, time.Duration, error) {
	rrs, ttl, err := r.lookup(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, ttl, err
	}
	srvs := make([]*dns.SRV, 0, len(rrs))
	for _, rr := range rrs {
		if s, ok := rr.(*dns.SRV); ok && s.Target != "." {
			srvs = append(srvs, s)
		}
	}
	if len(srvs) == 0 {
		return nil, ttl, fmt.Errorf("lookup %s SRV: %w", name, errNoService)
	}
	slices.SortStableFunc(srvs, func(a, b *dns.SRV) int {
		return cmp.Or(
			cmp.Compare(a.Priority, b.Priority),
			cmp.Compare(b.Weight, a.Weight),
			strings.Compare(strings.ToLower(a.Target), strings.ToLower(b.Target)),
			cmp.Compare(a.Port, b.Port))
	})
	var out []Target
	var lastErr error
	for _, s := range srvs {
		hosts, hostTTL, err := r.LookupHost(ctx, s.Target, s.Port)
		if err != nil {
			if isContextErr(err) {
				return nil, 0, err
			}
			lastErr = err
			continue
		}
		ttl = min(ttl, hostTTL)
		for _, h := range hosts {
			h.Transport, h.Priority, h.Weight = tr, int(s.Priority), int(s.Weight)
			out = appendTarget(out, h)
		}
	}
	if len(out) == 0 {
		return nil, ttl, fmt.Errorf("lookup %s SRV: no target resolved: %w", name, lastErr)
	}
	for i := range out {
		out[i].TTL = ttl
	}
	return out, ttl, nil
}

// LookupHost returns the IPv4 then the IPv6 addresses of name with the given
// port (Transport UDP, Priority and Weight 0; the caller sets what it
// needs). An IP literal, bracketed or not, resolves to itself with MaxTTL.
// It fails with ErrNotFound only when neither A nor AAAA records exist; a
// server failure for one type does not hide the other's addresses.
func (r *Resolver) LookupHost(ctx context.Context, name string, port uint16) ([]Target, time.Duration, error) {
	if a, ok := parseIPLiteral(name); ok {
		return []Target{{Addr: netip.AddrPortFrom(a, port), TTL: r.cfg.MaxTTL}}, r.cfg.MaxTTL, nil
	}
	var out []Target
	ttl := r.cfg.MaxTTL
	var errs [2]error
	for i, qtype := range [2]uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, t, err := r.lookup(ctx, name, qtype)
		if err != nil {
			if isContextErr(err) {
				return nil, 0, err
			}
			errs[i] = err
		}
		ttl = min(ttl, t)
		for _, rr := range rrs {
			var a netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				a, _ = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				a, _ = netip.AddrFromSlice(rr.AAAA.To16())
			}
			if a.IsValid() {
				out = appendTarget(out, Target{Addr: netip.AddrPortFrom(a.Unmap(), port)})
			}
		}
	}
	if len(out) == 0 {
		// Report a server failure before a negative answer: it is the one
		// an operator can act on.
		if errs[0] != nil && !errors.Is(errs[0], ErrNotFound) {
			return nil, ttl, errs[0]
		}
		if errs[1] != nil && !errors.Is(errs[1], ErrNotFound) {
			return nil, ttl, errs[1]
		}
		return nil, ttl, cmp.Or(errs[0], errs[1], fmt.Errorf("lookup %s: %w", name, ErrNotFound))
	}
	for i := range out {
		out[i].TTL = ttl
	}
	return out, ttl, nil
}

// lookup returns the records of type qtype for name from the cache or from
// the servers, with their remaining TTL. The records belong to the cache.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, time.Duration, error) {
	fqdn, err := canonicalName(name)
	if err != nil {
		return nil, r.cfg.MinTTL, err
	}
	return r.rrs.get(ctx, rrKey{name: fqdn, qtype: qtype}, r.now, func() ([]dns.RR, time.Duration, error) {
		return r.query(ctx, fqdn, qtype)
	})
}

// query asks the servers in turn and turns the answer into records, a TTL
// and an error: the TTL is the smallest in the answer (CNAMEs included),
// or the negative TTL of RFC 2308 §5 for NXDOMAIN and NODATA, clamped to
// [MinTTL, MaxTTL]; ErrServerFailure gets MinTTL, context errors 0 (not
// cached).
func (r *Resolver) query(ctx context.Context, fqdn string, qtype uint16) ([]dns.RR, time.Duration, error) {
	resp, err := r.exchange(ctx, fqdn, qtype)
	if err != nil {
		if isContextErr(err) {
			return nil, 0, err
		}
		return nil, r.cfg.MinTTL, fmt.Errorf("lookup %s %s: %w", fqdn, dns.TypeToString[qtype], err)
	}
	var rrs []dns.RR
	var ttl uint32 = 1<<32 - 1
	for _, rr := range resp.Answer {
		h := rr.Header()
		if h.Rrtype != qtype && h.Rrtype != dns.TypeCNAME {
			continue
		}
		ttl = min(ttl, h.Ttl)
		if h.Rrtype == qtype {
			rrs = append(rrs, rr)
		}
	}
	if resp.Rcode == dns.RcodeNameError || len(rrs) == 0 {
		kind := "no data"
		if resp.Rcode == dns.RcodeNameError {
			kind = "no such name"
		}
		return nil, r.negativeTTL(resp), fmt.Errorf("lookup %s %s: %s: %w", fqdn, dns.TypeToString[qtype], kind, ErrNotFound)
	}
	return rrs, r.clamp(time.Duration(ttl) * time.Second), nil
}

// negativeTTL is RFC 2308 §5: the TTL of a negative answer is the smaller of
// the SOA record's own TTL and its MINIMUM field; NegativeTTL when the
// authority section carries no SOA.
func (r *Resolver) negativeTTL(resp *dns.Msg) time.Duration {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return r.clamp(time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second)
		}
	}
	return r.clamp(r.cfg.NegativeTTL)
}

func (r *Resolver) clamp(d time.Duration) time.Duration {
	return min(max(d, r.cfg.MinTTL), r.cfg.MaxTTL)
}

// exchange sends one question to each server in turn until one answers with
// NOERROR or NXDOMAIN. A truncated UDP answer is asked again over TCP.
func (r *Resolver) exchange(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, error) {
	var lastErr error
	for _, srv := range r.servers {
		m := new(dns.Msg)
		m.SetQuestion(fqdn, qtype)
		m.SetEdns0(ednsBufSize, false)
		qctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		resp, _, err := r.udp.ExchangeContext(qctx, m, srv)
		if err == nil && resp.Truncated {
			resp, _, err = r.tcp.ExchangeContext(qctx, m, srv)
		}
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			lastErr = fmt.Errorf("%w: %s: %v", ErrServerFailure, srv, err)
			continue
		}
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			return resp, nil
		}
		lastErr = fmt.Errorf("%w: %s: %s", ErrServerFailure, srv, dns.RcodeToString[resp.Rcode])
	}
	return nil, lastErr
}

// resolverServers returns "host:port" for each configured server, or the
// nameservers of the resolv.conf file when none is configured.
func resolverServers(cfg []string, resolvConf string) ([]string, error) {
	if len(cfg) == 0 {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoServers, err)
		}
		for _, s := range cc.Servers {
			cfg = append(cfg, net.JoinHostPort(s, cc.Port))
		}
		if len(cfg) == 0 {
			return nil, fmt.Errorf("%w: none in %s", ErrNoServers, resolvConf)
		}
		return cfg, nil
	}
	out := make([]string, len(cfg))
	for i, s := range cfg {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), "53"
		}
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return nil, fmt.Errorf("dns server %q: not an IP address", s)
		}
		out[i] = net.JoinHostPort(host, port)
	}
	return out, nil
}

// canonicalName returns name as a lower-case FQDN, or ErrInvalidName.
func canonicalName(name string) (string, error) {
	if _, ok := dns.IsDomainName(name); !ok || name == "" || name == "." {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return dns.CanonicalName(name), nil
}

// parseIPLiteral parses "192.0.2.1", "2001:db8::1" or "[2001:db8::1]".
func parseIPLiteral(host string) (netip.Addr, bool) {
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if len(host) == 0 || (host[0] != ':' && (host[0] < '0' || host[0] > '9') && !strings.ContainsRune(host, ':')) {
		return netip.Addr{}, false // a name: spare ParseAddr's error allocation
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// srvTransport maps an SRV owner name's labels to a Transport (RFC 3263
// §4.1): _sips._tcp and _sip._tls are TLS, _sip._tcp TCP, anything else UDP.
func srvTransport(name string) Transport {
	n := strings.ToLower(name)
	switch {
	case strings.HasPrefix(n, "_sips._tcp."), strings.HasPrefix(n, "_sip._tls."):
		return TLS
	case strings.HasPrefix(n, "_sip._tcp."):
		return TCP
	}
	return UDP
}

// appendTarget appends t unless a target with the same address and
// transport is already in ts (a host listed by two SRV records or NAPTR
// branches is tried once, at its first place).
func appendTarget(ts []Target, t Target) []Target {
	for _, o := range ts {
		if o.Addr == t.Addr && o.Transport == t.Transport {
			return ts
		}
	}
	return append(ts, t)
}
