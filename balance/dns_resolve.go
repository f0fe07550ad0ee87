package balance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Default SIP ports (RFC 3261 §19.1.2), used when neither the URI nor an SRV
// record gives one.
const (
	DefaultSIPPort  = 5060
	DefaultSIPSPort = 5061
)

// resolveKey is one Resolve question, as the caller wrote it.
type resolveKey struct {
	host      string
	transport string
	port      uint16
	secure    bool
}

// Resolve finds the next hops for a SIP or SIPS URI per RFC 3263 §4: host
// is the URI's host part (a domain name, an IPv4 address or a bracketed or
// bare IPv6 address), port its port (0 when absent), transport its
// transport parameter ("" when absent; "udp", "tcp" or "tls", any case) and
// secure whether it is a SIPS URI.
//
//   - An IP literal is its own target, on the given port or 5060 (5061 for
//     TLS), with the given transport or UDP (TLS for SIPS).
//   - With a port, the name's A/AAAA records on that port: no NAPTR, no SRV.
//   - With a transport but no port, the SRV records of _sip._udp, _sip._tcp
//     or _sips._tcp (TLS or SIPS) of the name; without any, its A/AAAA
//     records on 5060 (5061 for TLS).
//   - With neither, the name's NAPTR records with flag "s" and a service
//     siplb speaks (SIP+D2U, SIP+D2T, SIPS+D2T; only SIPS+D2T for SIPS),
//     in order then preference, each followed to its SRV records; if that
//     yields nothing, the SRV records of _sip._udp, _sip._tcp and _sips._tcp
//     in that order (_sips._tcp alone for SIPS); if none, the A/AAAA
//     records on 5060 over UDP (5061 over TLS for SIPS).
//
// Targets come in the order to try them: NAPTR order, then SRV priority and
// weight as LookupSRV orders them; a target reached twice is listed once.
// Each Target's TTL is that of the whole result. Results, errors included,
// are cached for that TTL, so repeated calls are a read-locked map lookup
// that does not allocate; the returned slice is shared with the cache and
// must not be modified. Errors wrap ErrNotFound, ErrServerFailure,
// ErrInvalidName, ErrTransport or the context's error.
func (r *Resolver) Resolve(ctx context.Context, host string, port uint16, transport string, secure bool) ([]Target, error) {
	k := resolveKey{host: host, transport: transport, port: port, secure: secure}
	if ts, _, err, ok := r.results.lookup(k, r.now()); ok {
		return ts, err
	}
	ts, _, err := r.results.get(ctx, k, r.now, func() ([]Target, time.Duration, error) {
		return r.resolve(ctx, host, port, transport, secure)
	})
	return ts, err
}

// resolve is Resolve without the result cache. It returns the result's TTL:
// the smallest TTL of every answer consulted, negative ones included, since
// a record that appears later would change the result.
func (r *Resolver) resolve(ctx context.Context, host string, port uint16, transport string, secure bool) ([]Target, time.Duration, error) {
	tr, given, err := uriTransport(transport, secure)
	if err != nil {
		return nil, r.cfg.MaxTTL, fmt.Errorf("resolve %s: %w: %q", host, err, transport)
	}
	if !given && secure {
		tr = TLS
	}
	if a, ok := parseIPLiteral(host); ok {
		if port == 0 {
			port = tr.DefaultPort()
		}
		return []Target{{Addr: netip.AddrPortFrom(a, port), Transport: tr, TTL: r.cfg.MaxTTL}}, r.cfg.MaxTTL, nil
	}
	if port != 0 {
		return r.hostTargets(ctx, host, port, tr)
	}
	if given {
		ts, ttl, err := r.lookupSRV(ctx, srvName(tr, host), tr)
		if err == nil || !errors.Is(err, ErrNotFound) || errors.Is(err, errNoService) {
			return ts, ttl, err
		}
		hs, hostTTL, err := r.hostTargets(ctx, host, tr.DefaultPort(), tr)
		return hs, min(ttl, hostTTL), err
	}

	ts, ttl, err := r.naptrTargets(ctx, host, secure)
	if len(ts) > 0 || isContextErr(err) {
		return ts, ttl, err
	}
	var noService error // an SRV set said "."
	services := [...]Transport{UDP, TCP, TLS}
	for _, t := range services {
		if secure && t != TLS {
			continue
		}
		srvs, srvTTL, err := r.lookupSRV(ctx, srvName(t, host), t)
		if isContextErr(err) {
			return nil, 0, err
		}
		if errors.Is(err, errNoService) {
			noService = err
		}
		ttl = min(ttl, srvTTL)
		for _, s := range srvs {
			ts = appendTarget(ts, s)
		}
	}
	if len(ts) == 0 && noService != nil {
		return nil, ttl, noService
	}
	if len(ts) == 0 {
		hs, hostTTL, err := r.hostTargets(ctx, host, tr.DefaultPort(), tr)
		return hs, min(ttl, hostTTL), err
	}
	return withTTL(ts, ttl), ttl, nil
}

// naptrTargets follows the usable NAPTR records of host (RFC 3263 §4.1) to
// their SRV targets. It returns no targets, and the TTL of what it saw, when
// there are no NAPTR records, none usable, or none whose SRV resolves; the
// caller then falls back to SRV queries of its own (a resolver that refuses
// NAPTR queries, or fails them, does not stop resolution).
func (r *Resolver) naptrTargets(ctx context.Context, host string, secure bool) ([]Target, time.Duration, error) {
	rrs, ttl, err := r.lookup(ctx, host, dns.TypeNAPTR)
	if err != nil {
		return nil, ttl, err
	}
	type usable struct {
		n  *dns.NAPTR
		tr Transport
	}
	var ns []usable
	for _, rr := range rrs {
		n, ok := rr.(*dns.NAPTR)
		if !ok || !strings.EqualFold(n.Flags, "s") || n.Regexp != "" || n.Replacement == "." || n.Replacement == "" {
			continue
		}
		tr, ok := naptrService(n.Service)
		if !ok || (secure && tr != TLS) {
			continue
		}
		ns = append(ns, usable{n, tr})
	}
	slices.SortStableFunc(ns, func(a, b usable) int {
		return cmp.Or(cmp.Compare(a.n.Order, b.n.Order), cmp.Compare(a.n.Preference, b.n.Preference))
	})
	var ts []Target
	for _, u := range ns {
		srvs, srvTTL, err := r.lookupSRV(ctx, u.n.Replacement, u.tr)
		if isContextErr(err) {
			return nil, 0, err
		}
		ttl = min(ttl, srvTTL)
		for _, s := range srvs {
			ts = appendTarget(ts, s)
		}
	}
	return withTTL(ts, ttl), ttl, nil
}

// hostTargets is LookupHost with the transport set.
func (r *Resolver) hostTargets(ctx context.Context, host string, port uint16, tr Transport) ([]Target, time.Duration, error) {
	ts, ttl, err := r.LookupHost(ctx, host, port)
	for i := range ts {
		ts[i].Transport = tr
	}
	return ts, ttl, err
}

// uriTransport maps a URI's transport parameter to a Transport, and reports
// whether one was given. TCP with SIPS means TLS (RFC 3261 §26.2.2); UDP
// with SIPS, and any transport siplb does not speak, is ErrTransport.
func uriTransport(s string, secure bool) (Transport, bool, error) {
	if s == "" {
		return UDP, false, nil
	}
	tr, err := ParseTransport(s)
	if err != nil {
		return 0, true, ErrTransport
	}
	if secure {
		if tr == UDP {
			return 0, true, ErrTransport
		}
		tr = TLS
	}
	return tr, true, nil
}

// naptrService maps a NAPTR service field (RFC 3263 §4.1) to a Transport.
func naptrService(s string) (Transport, bool) {
	switch {
	case strings.EqualFold(s, "SIP+D2U"):
		return UDP, true
	case strings.EqualFold(s, "SIP+D2T"):
		return TCP, true
	case strings.EqualFold(s, "SIPS+D2T"):
		return TLS, true
	}
	return 0, false
}

// srvName is the SRV owner name for a transport (RFC 3263 §4.1).
func srvName(tr Transport, host string) string {
	switch tr {
	case TCP:
		return "_sip._tcp." + host
	case TLS:
		return "_sips._tcp." + host
	}
	return "_sip._udp." + host
}

// DefaultPort is the port a SIP URI or Via sent-by over t means when it
// names none (RFC 3261 §19.1.2): 5061 for TLS, else 5060; for WebSocket
// the HTTP ports a WebSocket URI means (RFC 6455 §3, as RFC 7118 reaches
// its servers): 80 for WS, 443 for WSS.
func (t Transport) DefaultPort() uint16 {
	switch t {
	case TLS:
		return DefaultSIPSPort
	case WS:
		return DefaultWSPort
	case WSS:
		return DefaultWSSPort
	}
	return DefaultSIPPort
}

func withTTL(ts []Target, ttl time.Duration) []Target {
	for i := range ts {
		ts[i].TTL = ttl
	}
	return ts
}
