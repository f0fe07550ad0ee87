package parser

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// URI is a parsed SIP, SIPS or tel URI (RFC 3261 §19.1, RFC 3966). Every
// slice aliases the bytes it was parsed from and is nil when absent. For a
// URI of another scheme only Scheme and Raw are set.
type URI struct {
	Scheme    []byte // "sip", "sips", "tel", ... as written
	User      []byte // nil if no user part; for tel, the telephone-subscriber number
	Host      []byte // IPv6 reference WITHOUT brackets; nil for tel
	Port      uint16 // 0 when absent
	Params    []byte // raw ";..." uri-parameters, nil if none
	Transport []byte // transport= value
	Maddr     []byte // maddr= value
	LR        bool   // lr present
	Raw       []byte // the whole URI (inside <> for a name-addr)
}

// ParseURI parses b into u. b is an addr-spec ("sip:alice@example.com;lr"),
// whose parameters are all uri-parameters, or a name-addr ("Alice"
// <sip:alice@example.com;lr>;tag=1) whose parameters after ">" are header
// parameters and are ignored. u holds sub-slices of b. The error is
// ErrMalformedURI.
func ParseURI(u *URI, b []byte) error {
	*u = URI{}
	s, e := trimWS(b, 0, len(b))
	if s < e && b[s] != '"' {
		// An addr-spec first, the common case: parseURI fails on a "<"
		// anywhere (not a scheme character before the colon, a byte no
		// URI holds after it), so where it succeeds there is none and
		// the value is no name-addr.
		if parseURI(u, b[:e], s) {
			return nil
		}
		*u = URI{}
		if bytes.IndexByte(b[s:e], '<') < 0 {
			return ErrMalformedURI
		}
	}
	if s < e {
		na, ok := parseNameAddr(b, s, e)
		if !ok {
			return ErrMalformedURI
		}
		s, e = na.uri.off, na.uri.end
	}
	if !parseURI(u, b[:e], s) {
		*u = URI{}
		return ErrMalformedURI
	}
	return nil
}

// Param returns the value of the uri-parameter name (compared without regard
// to case) and whether it is present; a parameter without "=" has a nil value.
func (u *URI) Param(name string) ([]byte, bool) {
	p := u.Params
	for len(p) > 0 {
		if p[0] == ';' {
			p = p[1:]
			continue
		}
		end := bytes.IndexByte(p, ';')
		if end < 0 {
			end = len(p)
		}
		kv := p[:end]
		k, v := kv, []byte(nil)
		if eq := bytes.IndexByte(kv, '='); eq >= 0 {
			k, v = kv[:eq], kv[eq+1:]
		}
		if foldEq(k, name) {
			return v, true
		}
		p = p[end:]
	}
	return nil, false
}

// foldEq compares b and s ignoring ASCII case.
func foldEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower[b[i]] != lower[s[i]] {
			return false
		}
	}
	return true
}

// parseURI parses the URI b[s:] (no LWS, no enclosing <>).
//
//	SIP-URI  = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
//	userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
func parseURI(u *URI, b []byte, s int) bool {
	e := len(b)
	u.Raw = b[s:e:e]
	c := s
	sip := e-s > 4 && string(b[s:s+4]) == "sip:" // the scheme nearly every URI has, as written
	if sip {
		c = s + 3
	} else {
		for c < e && isSchemeChar[b[c]] {
			c++
		}
		if c == s || c >= e || b[c] != ':' || !isAlpha[b[s]] {
			return false
		}
	}
	u.Scheme = b[s:c:c]
	i := c + 1
	at, colon, q, ok := scanURI(b, i, e)
	if !ok {
		return false
	}
	scheme := b[s:c]
	switch {
	case sip, equalFold(scheme, "sip"), equalFold(scheme, "sips"):
	case equalFold(scheme, "tel"):
		j := i
		for j < e && b[j] != ';' {
			j++
		}
		if j == i {
			return false
		}
		u.User = b[i:j:j]
		if j < e {
			u.Params = b[j:e:e]
		}
		return true
	default:
		return i < e
	}
	// The user part ends at the only "@": neither hostport, parameters
	// nor headers may contain one unescaped.
	if at >= 0 {
		ue := at // the user ends at a ":" (a password follows) or the "@"
		if colon >= 0 && colon < at {
			ue = colon
		}
		if ue == i {
			return false
		}
		u.User = b[i:ue:ue]
		i = at + 1
	}
	host, port, next, ok := parseHostPort(b, i, e, false)
	if !ok {
		return false
	}
	u.Host, u.Port = host.bytes(b), port
	i = next
	// The headers start at the first "?" past the hostport; one in the
	// user part (escaped it should be, but it is not rejected) comes
	// before it.
	pe := e
	if q >= i {
		pe = q
	} else if q >= 0 {
		pe = i
		for pe < e && b[pe] != '?' {
			pe++
		}
	}
	if i < pe {
		if b[i] != ';' {
			return false
		}
		u.Params = b[i:pe:pe]
		if !u.scanParams() {
			return false
		}
	}
	return true
}

// scanURI checks b[i:e], a URI past its scheme's colon, for the bytes no
// URI holds (CTL, SP, DEL, non-ASCII, "<", ">", a quote) and finds the
// first "@", ":" and "?" in it (-1 where there is none), eight bytes a
// step.
func scanURI(b []byte, i, e int) (at, colon, q int, ok bool) {
	at, colon, q = -1, -1, -1
	for ; i+8 <= e; i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// ctlMask flags no byte falsely but above a true flag, and a
		// word with a true flag fails whole.
		if ctlMask(x)|x&highs|byteEq(x, '<')|byteEq(x, '>')|byteEq(x, '"') != 0 {
			return at, colon, q, false
		}
		if m := byteEq(x, '@'); m != 0 && at < 0 {
			at = i + bits.TrailingZeros64(m)>>3
		}
		if m := byteEq(x, ':'); m != 0 && colon < 0 {
			colon = i + bits.TrailingZeros64(m)>>3
		}
		if m := byteEq(x, '?'); m != 0 && q < 0 {
			q = i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < e; i++ {
		switch c := b[i]; {
		case c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"':
			return at, colon, q, false
		case c == '@':
			if at < 0 {
				at = i
			}
		case c == ':':
			if colon < 0 {
				colon = i
			}
		case c == '?':
			if q < 0 {
				q = i
			}
		}
	}
	return at, colon, q, true
}

// scanParams checks the uri-parameters and picks out transport, maddr, lr.
func (u *URI) scanParams() bool {
	p := u.Params
	for len(p) > 0 {
		// p[0] == ';'
		p = p[1:]
		end := bytes.IndexByte(p, ';')
		if end < 0 {
			end = len(p)
		}
		kv := p[:end:end]
		if len(kv) == 0 {
			return false
		}
		k, v := kv, []byte(nil)
		if eq := bytes.IndexByte(kv, '='); eq >= 0 {
			k, v = kv[:eq], kv[eq+1:]
		}
		if len(k) == 0 {
			return false
		}
		switch {
		case equalFold(k, "transport"):
			u.Transport = v
		case equalFold(k, "maddr"):
			u.Maddr = v
		case equalFold(k, "lr"):
			u.LR = true
		}
		p = p[end:]
	}
	return true
}

// nameAddr is a name-addr or addr-spec value: the URI and the header
// parameters that follow it.
type nameAddr struct {
	uri    span
	params span // from the first ";" after the URI, zero if none
	angle  bool // the URI was enclosed in <>
}

// parseNameAddr parses b[s:e]:
//
//	( name-addr / addr-spec ) *( SEMI generic-param )
//	name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
//	display-name = *(token LWS) / quoted-string
//
// An addr-spec ends at LWS or ";" and may not contain "?", "," (RFC 3261
// §20: then it must be enclosed in <>). LWS is not allowed just inside the
// brackets (RFC 4475 §3.1.2.14); an unquoted display name is tokens only
// (RFC 4475 §3.1.2.15); quotes must balance (RFC 4475 §3.1.2.6).
func parseNameAddr(b []byte, s, e int) (na nameAddr, ok bool) {
	na.uri.off, na.uri.end, na.params.off, na.params.end, na.angle, ok = nameAddrSpans(b, s, e)
	return na, ok
}

// nameAddrSpans is parseNameAddr with scalar results, for the hot path:
// a struct result is copied with wide loads that stall on the narrower
// stores that built it.
func nameAddrSpans(b []byte, s, e int) (uriOff, uriEnd, paramsOff, paramsEnd int, angle, ok bool) {
	i := skipWS(b, s, e)
	if i >= e {
		return 0, 0, 0, 0, false, false
	}
	if b[i] == '"' {
		j := skipQuoted(b, i, e)
		if j < 0 {
			return 0, 0, 0, 0, false, false
		}
		i = skipWS(b, j, e)
		if i >= e || b[i] != '<' {
			return 0, 0, 0, 0, false, false
		}
	} else {
		k := i
		for k < e && (isToken[b[k]] || isWS[b[k]]) {
			k++
		}
		if k < e && b[k] == '<' {
			i = k
		}
	}
	var rest int
	if b[i] == '<' {
		i++
		j := bytes.IndexByte(b[i:e], '>')
		if j <= 0 {
			return 0, 0, 0, 0, false, false
		}
		j += i
		if isWS[b[i]] || isWS[b[j-1]] {
			return 0, 0, 0, 0, false, false
		}
		uriOff, uriEnd, angle = i, j, true
		rest = j + 1
	} else {
		j := i
		for j < e && !isWS[b[j]] && b[j] != ';' {
			switch b[j] {
			case '?', ',', '<', '>', '"':
				return 0, 0, 0, 0, false, false
			}
			j++
		}
		c := bytes.IndexByte(b[i:j], ':')
		if c <= 0 || !isAlpha[b[i]] {
			return 0, 0, 0, 0, false, false
		}
		for _, ch := range b[i : i+c] {
			if !isSchemeChar[ch] {
				return 0, 0, 0, 0, false, false
			}
		}
		uriOff, uriEnd = i, j
		rest = j
	}
	k := skipWS(b, rest, e)
	if k < e {
		if b[k] != ';' {
			return 0, 0, 0, 0, false, false
		}
		paramsOff, paramsEnd = k, e
	}
	return uriOff, uriEnd, paramsOff, paramsEnd, angle, true
}
