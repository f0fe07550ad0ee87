package engine

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
)

// Where a request goes: next hops by domain (RFC 3263, domain2proxy, the
// outgoing proxy), pool members named by a URI, and the legs that are ours.

// nextHop applies domain2proxy and the outgoing proxy to a backend's
// target: a domain the map names goes to its proxy; a destination that is
// not a pool member goes to the outgoing proxy, if one is set.
func (f *Forwarder) nextHop(t *balance.Table, target *parser.URI) *parser.URI {
	if f.domains != nil {
		if p, ok := f.domains.Lookup(target.Host); ok {
			if u := f.domainHop(p); u != nil {
				return u
			}
		}
	}
	if f.proxy.Host != nil && usableMember(t, target) == nil {
		return &f.proxy
	}
	return target
}

// domainHops caches the domain2proxy values as parsed next hops, so a
// request to a mapped domain parses and allocates nothing. Its keys are
// values of the configured map (never bytes from the network), so it
// holds at most one entry per configured proxy. Copied on write: readers
// take no lock.
type domainHops struct {
	m  atomic.Pointer[map[string]*parser.URI] // a nil value: the proxy does not parse as a URI
	mu sync.Mutex                             // serialises writers
}

// domainHop returns the next hop a domain2proxy value p names, parsed
// once; nil when it is not a URI.
func (f *Forwarder) domainHop(p string) *parser.URI {
	if m := f.hops.m.Load(); m != nil {
		if u, ok := (*m)[p]; ok {
			return u
		}
	}
	var pu *parser.URI
	if raw, err := proxyURI(p); err == nil {
		pu = new(parser.URI)
		if parser.ParseURI(pu, raw) != nil {
			pu = nil
		}
	}
	f.hops.mu.Lock()
	defer f.hops.mu.Unlock()
	next := make(map[string]*parser.URI)
	if m := f.hops.m.Load(); m != nil {
		maps.Copy(next, *m)
	}
	next[p] = pu
	f.hops.m.Store(&next)
	return pu
}

// resolveHop turns a next-hop URI into an address and the leg to send from:
// an IP literal at once, a domain from the resolver's cache (RFC 3263). When
// the answer is not cached it returns, with done set, a Result asking the
// server to resolve and process the message again; an unresolvable domain
// gets a 503.
func (f *Forwarder) resolveHop(s *Scratch, src netip.AddrPort, in *Leg, hop *parser.URI, out *Leg) (dst netip.AddrPort, leg *Leg, r Result, done bool) {
	if ip, ok := parseIP(hop.Host); ok {
		port := hop.Port
		if port == 0 {
			port = uriTransport(hop).DefaultPort()
		}
		return netip.AddrPortFrom(ip, port), out, Result{}, false
	}
	if f.resolver == nil || len(hop.Host) == 0 {
		return netip.AddrPort{}, out, s.drop(DropUnresolvable), true
	}
	secure := equalFold(hop.Scheme, []byte("sips"))
	ts, err, ok := f.resolver.ResolveCached(string(hop.Host), hop.Port, string(hop.Transport), secure)
	if !ok {
		s.Counters.DNSMisses.Add(1)
		q := &DNSQuestion{Host: string(hop.Host), Port: hop.Port, Transport: string(hop.Transport), Secure: secure}
		return netip.AddrPort{}, out, Result{Resolve: q}, true
	}
	for _, tg := range ts {
		if l := f.byTransport[tg.Transport]; l != nil && err == nil {
			return tg.Addr, l, Result{}, false
		}
	}
	return netip.AddrPort{}, out, f.reply(s, src, in, parser.ErrDestinationUnresolvable, nil), true
}

// proxyURI turns "udp://host:port", "sip:host:port;transport=tcp" or
// "host[:port]" into a SIP URI.
func proxyURI(p string) ([]byte, error) {
	if p == "" {
		return nil, errors.New("empty")
	}
	if scheme, rest, ok := strings.Cut(p, "://"); ok {
		switch strings.ToLower(scheme) {
		case "udp":
			return []byte("sip:" + rest), nil
		case "tcp":
			return []byte("sip:" + rest + ";transport=tcp"), nil
		case "tls":
			return []byte("sips:" + rest), nil
		}
		return nil, fmt.Errorf("unknown transport %q", scheme)
	}
	if strings.HasPrefix(p, "sip:") || strings.HasPrefix(p, "sips:") {
		return []byte(p), nil
	}
	return []byte("sip:" + p), nil
}

// uriTransport is the transport a URI asks for: transport=ws/wss (RFC
// 7118 §5.2, a WebSocket even in a sips URI), transport=tcp/tls, or sips.
func uriTransport(u *parser.URI) balance.Transport {
	switch {
	case equalFold(u.Transport, []byte("ws")):
		return balance.WS
	case equalFold(u.Transport, []byte("wss")):
		return balance.WSS
	case equalFold(u.Scheme, []byte("sips")) || equalFold(u.Transport, []byte("tls")):
		return balance.TLS
	case equalFold(u.Transport, []byte("tcp")):
		return balance.TCP
	}
	return balance.UDP
}

// usableMember returns the pool member a URI names, if it may take an
// in-dialog request (up or draining).
func usableMember(t *balance.Table, u *parser.URI) *balance.Backend {
	ip, ok := parseIP(u.Host)
	if !ok {
		return nil
	}
	port := u.Port
	if port == 0 {
		port = DefaultSIPPort
	}
	b, ok := t.Lookup(netip.AddrPortFrom(ip, port))
	if !ok || !b.Usable() {
		return nil
	}
	return b
}

// legFor returns the leg a URI names (host, port and transport), or nil.
// Legs of different transports may share an address and port; the URI's
// transport tells them apart, and an address of ours with another transport
// still counts as ours.
func (f *Forwarder) legFor(u *parser.URI) *Leg {
	t := uriTransport(u)
	var any *Leg
	for _, l := range f.legs {
		if l.isMe(u.Host, u.Port) {
			if l.Transport == t {
				return l
			}
			if any == nil {
				any = l
			}
		}
	}
	return any
}
