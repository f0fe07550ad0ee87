package engine

import (
	"encoding/binary"
	"net/netip"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// A client's flow (RFC 5626's idea) travels in what siplb writes, a
// Record-Route parameter or a rewritten Contact, instead of a table, so a
// backend's request in a dialog or to a registered client reaches the
// client through its NAT binding or its very TCP/TLS connection.

// flowParam is the Record-Route parameter that carries a client's flow.
const flowParam = "lbf"

// flowMACLen is the length of the MAC that ends every flow token: 16 hex.
const flowMACLen = 16

// appendFlow appends ";lbf=" and the client's flow token, signed for the
// dialog callID.
func appendFlow(dst []byte, k macKey, src netip.AddrPort, conn pool.ConnID, t balance.Transport, callID []byte) []byte {
	dst = append(dst, ";"+flowParam+"="...)
	start := len(dst)
	dst = appendFlowToken(dst, src, conn, t)
	return appendHex16(dst, k.flowMAC(dst[start:], callID))
}

// appendFlowToken appends a flow (RFC 5626's idea, kept in what siplb
// writes instead of a table): the connection's transport, "t" (TCP), "s"
// (TLS), "w" (WebSocket) or "x" (secure WebSocket), and its id, or "u" and
// the UDP source address and port, in hex. The letter names the leg a
// request to the client leaves by when nothing else names it (a Contact
// siplb rewrote); the id names the very connection. It is not signed: a
// caller appends the MAC its context needs.
func appendFlowToken(dst []byte, src netip.AddrPort, conn pool.ConnID, t balance.Transport) []byte {
	if conn != 0 {
		switch t {
		case balance.TLS:
			dst = append(dst, 's')
		case balance.WS:
			dst = append(dst, 'w')
		case balance.WSS:
			dst = append(dst, 'x')
		default:
			dst = append(dst, 't')
		}
		return appendHex16(dst, uint64(conn))
	}
	dst = append(dst, 'u')
	a := src.Addr().Unmap()
	if a.Is4() {
		b := a.As4()
		dst = appendHex8(dst, binary.BigEndian.Uint32(b[:]))
	} else {
		b := a.As16()
		dst = appendHex16(dst, binary.BigEndian.Uint64(b[:8]))
		dst = appendHex16(dst, binary.BigEndian.Uint64(b[8:]))
	}
	return appendHex4(dst, src.Port())
}

// pathParam is the Path parameter (RFC 3327) that carries the flow of a
// client that registered through siplb, signed with no dialog (pathMAC):
// the registrar's later requests to the contact, whatever their Call-ID,
// name it in their Route and reach the client through siplb by its NAT
// binding or connection.
const pathParam = "lbp"

// appendPathFlow appends ";lbp=" and the client's flow token, signed for
// a Path.
func appendPathFlow(dst []byte, k macKey, src netip.AddrPort, conn pool.ConnID, t balance.Transport) []byte {
	dst = append(dst, ";"+pathParam+"="...)
	start := len(dst)
	dst = appendFlowToken(dst, src, conn, t)
	return appendHex16(dst, k.pathMAC(dst[start:]))
}

// flow is a parsed flow token.
type flow struct {
	addr      netip.AddrPort // UDP flows
	conn      pool.ConnID    // stream flows
	transport balance.Transport
}

// verifyFlow checks the MAC of a signed flow token v (an lbf value) for the
// dialog callID under every key of the ring, then parses it. bad reports a
// value that looked like a token but failed, for the counters.
func (r *keyRing) verifyFlow(v, callID []byte) (fl flow, ok, bad bool) {
	body, mac, ok := splitToken(v)
	if !ok {
		return flow{}, false, true
	}
	for i := range r.keys {
		if r.keys[i].flow.flowMAC(body, callID) == mac {
			fl, ok = parseFlow(body)
			return fl, ok, !ok
		}
	}
	return flow{}, false, true
}

// verifyPath is verifyFlow for the token of a Path value (an lbp value),
// which no dialog binds.
func (r *keyRing) verifyPath(v []byte) (fl flow, ok, bad bool) {
	body, mac, ok := splitToken(v)
	if !ok {
		return flow{}, false, true
	}
	for i := range r.keys {
		if r.keys[i].path.pathMAC(body) == mac {
			fl, ok = parseFlow(body)
			return fl, ok, !ok
		}
	}
	return flow{}, false, true
}

// splitToken splits a signed token into its body and its MAC.
func splitToken(v []byte) (body []byte, mac uint64, ok bool) {
	// flowMAC signs at most maxTokenBody bytes: a longer body is no token
	// of ours, and must not pass on a MAC over its first bytes alone.
	if len(v) <= flowMACLen || len(v)-flowMACLen > maxTokenBody {
		return nil, 0, false
	}
	mac, ok = parseHex(v[len(v)-flowMACLen:])
	return v[:len(v)-flowMACLen], mac, ok
}

// parseFlow reads a flow token written by appendFlowToken (without a MAC).
func parseFlow(v []byte) (flow, bool) {
	if len(v) < 2 {
		return flow{}, false
	}
	switch v[0] {
	case 't', 's', 'w', 'x':
		c, ok := parseHex(v[1:])
		if !ok || len(v) != 17 || c == 0 {
			return flow{}, false
		}
		t := balance.TCP
		switch v[0] {
		case 's':
			t = balance.TLS
		case 'w':
			t = balance.WS
		case 'x':
			t = balance.WSS
		}
		return flow{conn: pool.ConnID(c), transport: t}, true
	case 'u':
		h := v[1:]
		var a netip.Addr
		switch len(h) {
		case 12:
			x, ok := parseHex(h[:8])
			if !ok {
				return flow{}, false
			}
			a = netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
			h = h[8:]
		case 36:
			var b [16]byte
			for i := range b {
				x, ok := hexByte(h[2*i], h[2*i+1])
				if !ok {
					return flow{}, false
				}
				b[i] = x
			}
			a = netip.AddrFrom16(b)
			h = h[32:]
		default:
			return flow{}, false
		}
		p, ok := parseHex(h)
		if !ok || p == 0 {
			return flow{}, false
		}
		return flow{addr: netip.AddrPortFrom(a, uint16(p)), transport: balance.UDP}, true
	}
	return flow{}, false
}

// contactPrefix starts the user part of a Contact siplb rewrote:
// "lbc." flow "." hex(original URI) "@" our leg (the StatelessProxy page's
// rewrite_contact, reversible with no table).
const contactPrefix = "lbc."

// appendRewrittenContact appends the rewritten form of a client's Contact
// URI orig: a URI of the out leg whose user part carries the flow and orig.
func appendRewrittenContact(dst []byte, k macKey, out *Leg, orig []byte, src netip.AddrPort, conn pool.ConnID, t balance.Transport) []byte {
	if out.Transport == balance.TLS {
		dst = append(dst, "sips:"...)
	} else {
		dst = append(dst, "sip:"...)
	}
	dst = append(dst, contactPrefix...)
	start := len(dst)
	dst = appendFlowToken(dst, src, conn, t)
	dst = append(dst, '.')
	for _, c := range orig {
		dst = appendHex(dst, uint64(c), 2)
	}
	dst = append(dst, '.')
	dst = appendHex16(dst, k.sum(dst[start:len(dst)-1]))
	dst = append(dst, '@')
	dst = append(dst, out.sentBy...)
	if out.Transport == balance.TCP {
		dst = append(dst, ";transport=tcp"...)
	}
	return dst
}

// unrewriteContact undoes appendRewrittenContact for a URI of ours: the
// flow and the original URI, decoded into dst.
func (r *keyRing) unrewriteContact(dst []byte, u *parser.URI) (flow, []byte, bool) {
	user := u.User
	if len(user) < len(contactPrefix)+contactMACLen+4 || string(user[:len(contactPrefix)]) != contactPrefix {
		return flow{}, nil, false
	}
	rest := user[len(contactPrefix):]
	// flow "." hex(original) "." mac: the mac is the last 16 digits, checked
	// first, so a client cannot write a Contact of ours naming another's flow.
	body, macHex := rest[:len(rest)-contactMACLen-1], rest[len(rest)-contactMACLen:]
	mac, ok := parseHex(macHex)
	if !ok || rest[len(rest)-contactMACLen-1] != '.' {
		return flow{}, nil, false
	}
	signed := false
	for i := range r.keys {
		if r.keys[i].contact.sum(body) == mac {
			signed = true
			break
		}
	}
	if !signed {
		return flow{}, nil, false
	}
	dot := -1
	for i, c := range body {
		if c == '.' {
			dot = i
			break
		}
	}
	if dot < 0 || (len(body)-dot-1)%2 != 0 {
		return flow{}, nil, false
	}
	fl, ok := parseFlow(body[:dot])
	if !ok {
		return flow{}, nil, false
	}
	h := body[dot+1:]
	dst = dst[:0]
	for i := 0; i+1 < len(h); i += 2 {
		b, ok := hexByte(h[i], h[i+1])
		if !ok {
			return flow{}, nil, false
		}
		dst = append(dst, b)
	}
	return fl, dst, true
}

// contactMACLen is the length of a rewritten Contact's MAC: 16 hex.
const contactMACLen = 16
