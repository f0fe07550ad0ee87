package parser

import "bytes"

// The parser as it was before its fast paths (commit aeeae37), kept as the
// plainly written reference the differential tests compare against.

func refParseVia(v *viaSpans, b []byte, s, e int) (vs, ve, next int, ok bool) {
	i := skipWS(b, s, e)
	vs = i
	if e-i > 8 && string(b[i:i+8]) == "SIP/2.0/" {
		// The spelling nearly every implementation sends.
		v.proto = span{i, i + 7}
		i += 8
	} else {
		p := i
		i = scanToken(b, i, e)
		if i == p {
			return vs, ve, i, false
		}
		i = skipWS(b, i, e)
		if i >= e || b[i] != '/' {
			return vs, ve, i, false
		}
		i = skipWS(b, i+1, e)
		k := i
		i = scanToken(b, i, e)
		if i == k {
			return vs, ve, i, false
		}
		v.proto = span{p, i}
		i = skipWS(b, i, e)
		if i >= e || b[i] != '/' {
			return vs, ve, i, false
		}
		i = skipWS(b, i+1, e)
	}
	k := i
	i = scanToken(b, i, e)
	if i == k {
		return vs, ve, i, false
	}
	v.transport = span{k, i}
	k = i
	i = skipWS(b, i, e)
	if i == k || i >= e {
		return vs, ve, i, false
	}
	h, port, hpEnd, ok := refParseHostPort(b, i, e, true)
	if !ok {
		return vs, ve, i, false
	}
	v.host, v.port = h, port
	ve = hpEnd
	i = skipWS(b, hpEnd, e)
	ps := i
	for i < e && b[i] == ';' {
		name, val, pe, ok := refNextParam(b, i, e)
		if !ok || !v.refParam(b, name, val) {
			return vs, ve, pe, false
		}
		ve = max(val.end, name.end)
		i = pe
	}
	if i < e && b[i] != ',' {
		return vs, ve, i, false
	}
	if ps < ve {
		v.params = span{ps, ve}
	}
	return vs, ve, i, true
}
func (v *viaSpans) refParam(b []byte, name, val span) bool {
	n := b[name.off:name.end]
	switch len(n) {
	case 6:
		if string(n) == "branch" || equalFold(n, "branch") {
			if !val.present() {
				return false
			}
			v.branch = val
		}
	case 5:
		if string(n) == "rport" || equalFold(n, "rport") {
			v.rportName = name
			if val.present() {
				r, ok := parseUint(b[val.off:val.end], 65535)
				if !ok {
					return false
				}
				v.rportVal, v.rport = val, uint16(r)
			}
		} else if equalFold(n, "maddr") {
			v.maddr = val
		}
	case 8:
		if equalFold(n, "received") {
			if !val.present() {
				return false
			}
			v.received = val
		}
	case 3:
		if equalFold(n, "ttl") {
			if !val.present() {
				return false
			}
			if _, ok := parseUint(b[val.off:val.end], 255); !ok {
				return false
			}
		}
	}
	return true
}
func refParseHostPort(b []byte, i, e int, lws bool) (host span, port uint16, next int, ok bool) {
	if i >= e {
		return host, 0, i, false
	}
	if b[i] == '[' {
		j := i + 1
		for j < e && (isHex[b[j]] || b[j] == ':' || b[j] == '.') {
			j++
		}
		if j >= e || b[j] != ']' || j == i+1 {
			return host, 0, i, false
		}
		host = span{i + 1, j}
		i = j + 1
	} else {
		j := i
		for j < e && isHostChar[b[j]] {
			j++
		}
		if j == i {
			return host, 0, i, false
		}
		host = span{i, j}
		i = j
	}
	k := i
	if lws {
		k = skipWS(b, i, e)
	}
	if k < e && b[k] == ':' {
		k++
		if lws {
			k = skipWS(b, k, e)
		}
		d := k
		for k < e && isDigit[b[k]] {
			k++
		}
		n, ok := parseUint(b[d:k], 65535)
		if !ok {
			return host, 0, i, false
		}
		return host, uint16(n), k, true
	}
	return host, 0, i, true
}
func refNextParam(b []byte, i, e int) (name, val span, next int, ok bool) {
	if i >= e || b[i] != ';' {
		return name, val, i, false
	}
	i = skipWS(b, i+1, e)
	ns := i
	i = scanToken(b, i, e)
	if i == ns {
		return name, val, i, false
	}
	name = span{ns, i}
	j := skipWS(b, i, e)
	if j < e && b[j] == '=' {
		j = skipWS(b, j+1, e)
		vs := j
		if j < e && b[j] == '"' {
			j = skipQuoted(b, j, e)
			if j < 0 {
				return name, val, e, false
			}
		} else {
			for _, c := range b[j:e] {
				if !isParamValue[c] {
					break
				}
				j++
			}
		}
		if j == vs {
			return name, val, j, false
		}
		val = span{vs, j}
		i = j
	}
	return name, val, skipWS(b, i, e), true
}
func refParseFromTo(b []byte, v span, bad *Error) (tag span, err error) {
	na, ok := parseNameAddr(b, v.off, v.end)
	if !ok {
		return span{}, bad
	}
	for i := na.params.off; i < na.params.end; {
		name, val, next, ok := refNextParam(b, i, na.params.end)
		if !ok || (next < na.params.end && b[next] != ';') {
			return span{}, bad
		}
		if equalFold(b[name.off:name.end], "tag") {
			if !val.present() {
				return span{}, bad
			}
			tag = val
		}
		i = next
	}
	return tag, nil
}
func refCheckSIPHost(rest []byte) error {
	if at := bytes.IndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	if len(rest) == 0 || bytes.IndexByte(rest, '?') >= 0 {
		return ErrMalformedRequestURI
	}
	return nil
}
func (m *Message) refParseCSeq(b []byte, v span) error {
	i := v.off
	var n uint64
	for i < v.end && isDigit[b[i]] {
		n = n*10 + uint64(b[i]-'0')
		if n > 1<<31-1 {
			return ErrMalformedCSeq
		}
		i++
	}
	if i == v.off {
		return ErrMalformedCSeq
	}
	j := skipWS(b, i, v.end)
	if j == i {
		return ErrMalformedCSeq
	}
	k := scanToken(b, j, v.end)
	if k == j || k != v.end {
		return ErrMalformedCSeq
	}
	m.cseqNum = uint32(n)
	m.cseqName = span{j, k}
	if mn := m.methodName; mn.end-mn.off == k-j && string(b[mn.off:mn.end]) == string(b[j:k]) {
		m.cseqMethod = m.method // the request's own method, the usual case
	} else {
		m.cseqMethod = lookupMethod(b[j:k])
	}
	return nil
}

// refParseURIFull and refParseURI are ParseURI and parseURI before the
// addr-spec first and word-at-a-time scan (commit b03ad0d).
func refParseURIFull(u *URI, b []byte) error {
	*u = URI{}
	s, e := trimWS(b, 0, len(b))
	if s < e && (b[s] == '"' || bytes.IndexByte(b[s:e], '<') >= 0) {
		na, ok := parseNameAddr(b, s, e)
		if !ok {
			return ErrMalformedURI
		}
		s, e = na.uri.off, na.uri.end
	}
	if !refParseURI(u, b[:e], s) {
		*u = URI{}
		return ErrMalformedURI
	}
	return nil
}
func refParseURI(u *URI, b []byte, s int) bool {
	e := len(b)
	u.Raw = b[s:e:e]
	c := s
	for c < e && isSchemeChar[b[c]] {
		c++
	}
	if c == s || c >= e || b[c] != ':' || !isAlpha[b[s]] {
		return false
	}
	u.Scheme = b[s:c:c]
	i := c + 1
	for k := i; k < e; k++ {
		if b[k] <= ' ' || b[k] >= 0x7f || b[k] == '<' || b[k] == '>' || b[k] == '"' {
			return false
		}
	}
	scheme := b[s:c]
	switch {
	case equalFold(scheme, "sip"), equalFold(scheme, "sips"):
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
	if at := bytes.IndexByte(b[i:e], '@'); at >= 0 {
		ui := b[i : i+at]
		if colon := bytes.IndexByte(ui, ':'); colon >= 0 {
			ui = ui[:colon]
		}
		if len(ui) == 0 {
			return false
		}
		u.User = ui[:len(ui):len(ui)]
		i += at + 1
	}
	host, port, next, ok := parseHostPort(b, i, e, false)
	if !ok {
		return false
	}
	u.Host, u.Port = host.bytes(b), port
	i = next
	pe := i
	for pe < e && b[pe] != '?' {
		pe++
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
