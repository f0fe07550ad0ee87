package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strconv"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/guard"
	siptls "github.com/siplb/siplb/tls"
)

// DefaultSIPPort is the port a SIP URI or Via sent-by means when it names none
// (RFC 3261 §19.1.2); DefaultSIPSPort is the one for TLS.
const (
	DefaultSIPPort  = balance.DefaultSIPPort
	DefaultSIPSPort = balance.DefaultSIPSPort
)

// LegConfig describes one listening socket of the balancer (a Net::SIP Leg).
type LegConfig struct {
	Name      string            // for logs and metrics; defaults to the address
	Transport balance.Transport // UDP, TCP, TLS, or WS/WSS for browsers (RFC 7118)
	Addr      netip.AddrPort    // the address to bind
	// Advertise is the host[:port] written into Via and Record-Route. It
	// defaults to Addr; it is required when Addr is unspecified (0.0.0.0, ::)
	// and useful for a balancer behind NAT.
	Advertise string
	// Pool names the backend pool that requests from outside arriving on this
	// leg go to. Empty means the first pool.
	Pool string
	// TLS holds the certificates of a TLS or WSS leg: served to clients,
	// and (a TLS leg's, with its CA) used when siplb opens TLS connections
	// to backends.
	TLS *siptls.Store
	// ACL, if set, admits only the sources it permits: others are dropped
	// before parsing (datagrams) or closed at accept (connections).
	ACL *guard.ACL
	// Origins, on a WS or WSS leg, are the web origins whose pages may open
	// a WebSocket to it (the handshake's Origin header): an entry
	// "scheme://host[:port]" is one origin, matched exactly (ASCII case
	// ignored); "*.example.com" is every origin whose host ends in
	// ".example.com". Empty: any origin, or none. A handshake with an
	// Origin not listed is refused with 403.
	Origins []string
	// ProxyFrom, on a TCP, TLS, WS or WSS leg, are the sources (load
	// balancers) whose connections start with a PROXY protocol header
	// (v1 or v2), whose source then stands for the connection's peer
	// (proxy.go). A connection from them without a header, or with a
	// header from any other source, is closed. Empty: no PROXY protocol.
	ProxyFrom []netip.Prefix
}

// Leg is a configured listening socket as the forwarding rules see it:
// immutable after NewForwarder.
type Leg struct {
	Index     int
	Name      string
	Transport balance.Transport
	Addr      netip.AddrPort
	Pool      balance.PoolID

	tls     *siptls.Store
	acl     *guard.ACL
	origins *originList    // WS and WSS legs: the origins allowed; nil allows any
	proxy   *guard.CIDRSet // the sources that send PROXY headers; nil: none
	host    []byte         // advertised host; IPv6 without brackets
	port    uint16         // advertised port
	hostIP  netip.Addr
	sentBy  []byte // "host:port" as written in Via and Record-Route, IPv6 bracketed
	tag     [legTagLen]byte
	viaHead []byte // "SIP/2.0/UDP host:port;branch=z9hG4bK<tag>" (TCP, TLS, WS, WSS)
	rrHead  []byte // "<sip:host:port;lr", "<sip:host:port;transport=tcp;lr" (ws, wss) or "<sips:host:port;lr": a Record-Route value less its ">"
}

// legTagLen is the length of the hex tag that names a leg inside a branch.
const legTagLen = 8

// newLeg resolves the advertised address and precomputes what the hot path
// writes. The tag is a hash of what the leg advertises, so several instances
// with the same configuration accept each other's responses (anycast, ECMP).
func newLeg(i int, c LegConfig, pool balance.PoolID) (*Leg, error) {
	if !c.Addr.IsValid() {
		return nil, errors.New("address is not set")
	}
	l := &Leg{Index: i, Name: c.Name, Transport: c.Transport, Addr: c.Addr, Pool: pool, tls: c.TLS, acl: c.ACL}
	if c.Transport.Secure() && c.TLS == nil {
		return nil, fmt.Errorf("a %s listener needs certificates", c.Transport)
	}
	if len(c.Origins) > 0 {
		if !c.Transport.WebSocket() {
			return nil, errors.New("origins apply to ws and wss listeners only")
		}
		o, err := parseOrigins(c.Origins)
		if err != nil {
			return nil, err
		}
		l.origins = o
	}
	if len(c.ProxyFrom) > 0 {
		if c.Transport == balance.UDP {
			return nil, errors.New("proxy_protocol applies to tcp, tls, ws and wss listeners only")
		}
		for _, p := range c.ProxyFrom {
			if !p.IsValid() {
				return nil, errors.New("proxy_protocol: an invalid prefix")
			}
		}
		l.proxy = guard.NewCIDRSet(c.ProxyFrom...)
	}
	if l.Name == "" {
		l.Name = c.Transport.String() + "://" + c.Addr.String()
	}
	host, port := c.Addr.Addr().Unmap().String(), c.Addr.Port()
	if c.Advertise != "" {
		h, p, err := splitHostPort(c.Advertise)
		if err != nil {
			return nil, fmt.Errorf("advertise %q: %w", c.Advertise, err)
		}
		host = h
		if p != 0 {
			port = p
		}
	} else if c.Addr.Addr().IsUnspecified() {
		return nil, fmt.Errorf("address %s is unspecified: set advertise to the host that peers should reach", c.Addr)
	}
	l.host = []byte(host)
	l.port = port
	if ip, err := netip.ParseAddr(host); err == nil {
		l.hostIP = ip.Unmap()
	}
	sentBy := host
	if l.hostIP.Is6() {
		sentBy = "[" + host + "]"
	}
	sentBy += ":" + strconv.Itoa(int(port))
	l.sentBy = []byte(sentBy)

	th := fnv.New32a()
	th.Write([]byte(c.Transport.String() + "/" + sentBy))
	h := th.Sum32()
	const hexdigits = "0123456789abcdef"
	for j := legTagLen - 1; j >= 0; j-- {
		l.tag[j] = hexdigits[h&15]
		h >>= 4
	}
	if i > 255 {
		return nil, errors.New("more than 256 legs")
	}
	l.viaHead = fmt.Appendf(nil, "SIP/2.0/%s %s;branch=%s%s", c.Transport.ViaName(), sentBy, branchCookie, l.tag[:])
	switch c.Transport {
	case balance.UDP:
		l.rrHead = fmt.Appendf(nil, "<sip:%s;lr", sentBy)
	case balance.TLS:
		l.rrHead = fmt.Appendf(nil, "<sips:%s;lr", sentBy)
	default: // tcp; ws and wss as RFC 7118 §5.2 writes them
		l.rrHead = fmt.Appendf(nil, "<sip:%s;transport=%s;lr", sentBy, c.Transport)
	}
	return l, nil
}

// Tag is the leg's branch tag: the 8 hex digits after "z9hG4bK" in every
// branch this leg writes (Net::SIP Leg's unique branch tag).
func (l *Leg) Tag() string { return string(l.tag[:]) }

// SentBy is the host:port the leg writes into Via and Record-Route.
func (l *Leg) SentBy() string { return string(l.sentBy) }

// RecordRoute is the Record-Route value the leg inserts, less the flow.
func (l *Leg) RecordRoute() string { return string(l.rrHead) + ">" }

// isMe reports whether a URI host and port name this leg: its advertised host
// or its bound address, and its port (5060 when the URI names none).
func (l *Leg) isMe(host []byte, port uint16) bool {
	if port == 0 {
		port = l.Transport.DefaultPort()
	}
	if port != l.port && port != l.Addr.Port() {
		return false
	}
	if equalFold(host, l.host) {
		return true
	}
	ip, ok := parseIP(host)
	return ok && (ip == l.Addr.Addr().Unmap() || (l.hostIP.IsValid() && ip == l.hostIP))
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(s string) (string, uint16, error) {
	if s == "" {
		return "", 0, errors.New("empty host")
	}
	if s[0] == '[' {
		end := -1
		for i := range len(s) {
			if s[i] == ']' {
				end = i
				break
			}
		}
		if end < 0 {
			return "", 0, errors.New("missing ]")
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		if rest[0] != ':' {
			return "", 0, errors.New("junk after ]")
		}
		p, err := strconv.ParseUint(rest[1:], 10, 16)
		if err != nil || p == 0 {
			return "", 0, fmt.Errorf("bad port %q", rest[1:])
		}
		return host, uint16(p), nil
	}
	colons := 0
	last := -1
	for i := range len(s) {
		if s[i] == ':' {
			colons++
			last = i
		}
	}
	switch {
	case colons == 0:
		return s, 0, nil
	case colons > 1: // a bare IPv6 address
		return s, 0, nil
	}
	p, err := strconv.ParseUint(s[last+1:], 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("bad port %q", s[last+1:])
	}
	return s[:last], uint16(p), nil
}

// ResolvePorts replaces port 0 in legs with a free port of the same address,
// so every event loop's SO_REUSEPORT socket binds the same port and the
// advertised Via names it. Meant for tests and demos on loopback.
func ResolvePorts(legs []LegConfig) error {
	for i := range legs {
		if legs[i].Addr.Port() != 0 {
			continue
		}
		var port int
		if legs[i].Transport == balance.UDP {
			pc, err := net.ListenPacket("udp", legs[i].Addr.String())
			if err != nil {
				return fmt.Errorf("listener %d: %w", i, err)
			}
			port = pc.LocalAddr().(*net.UDPAddr).Port
			pc.Close()
		} else {
			ln, err := net.Listen("tcp", legs[i].Addr.String())
			if err != nil {
				return fmt.Errorf("listener %d: %w", i, err)
			}
			port = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		}
		legs[i].Addr = netip.AddrPortFrom(legs[i].Addr.Addr(), uint16(port))
	}
	return nil
}
