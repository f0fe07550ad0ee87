package parser

// Via is one parsed Via value. Every slice aliases Message.Buf (or the
// bytes given to ParseVia) and is nil when the part is absent.
type Via struct {
	Protocol  []byte // "SIP/2.0" as written (LWS around "/" kept)
	Transport []byte // "UDP", "TCP", "TLS", "SCTP", "WS", "WSS" as written
	Host      []byte // sent-by host; an IPv6 reference without brackets
	Port      uint16 // 0 when absent
	Branch    []byte
	Received  []byte
	RPort     uint16 // value of rport=N, 0 when absent or bare
	HasRPort  bool   // rport present (with or without value)
	Maddr     []byte
	Params    []byte // the raw ";..." parameter list, nil if none
}

// viaSpans is a parsed Via value as offsets, kept by Parse for the top Via
// and used by the edits.
type viaSpans struct {
	proto, transport, host span
	port                   uint16
	branch, received       span
	rportName, rportVal    span
	rport                  uint16
	maddr                  span
	params                 span
}

// ParseVia parses one Via value (not a comma list) into v, with sub-slices of b.
//
//	via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
//	sent-protocol = protocol-name SLASH protocol-version SLASH transport
//	sent-by       = host [ COLON port ]
func ParseVia(v *Via, b []byte) error {
	var s viaSpans
	_, _, next, ok := parseVia(&s, b, 0, len(b))
	if !ok || next != len(b) {
		*v = Via{}
		return ErrMalformedVia
	}
	s.fill(v, b)
	return nil
}

func (s *viaSpans) fill(v *Via, b []byte) {
	// Field by field: a composite literal is built on the stack and then
	// copied, 200 bytes twice per Via read.
	v.Protocol = s.proto.bytes(b)
	v.Transport = s.transport.bytes(b)
	v.Host = s.host.bytes(b)
	v.Port = s.port
	v.Branch = s.branch.bytes(b)
	v.Received = s.received.bytes(b)
	v.RPort = s.rport
	v.HasRPort = s.rportName.present()
	v.Maddr = s.maddr.bytes(b)
	v.Params = s.params.bytes(b)
}

// scanToken returns the index of the first byte of b[i:e] that is not a
// token character, or e.
func scanToken(b []byte, i, e int) int {
	for _, c := range b[i:e] {
		if !isToken[c] {
			break
		}
		i++
	}
	return i
}

// scanParamValue returns the index of the first byte of b[i:e] that
// cannot stand in an unquoted gen-value, or e.
func scanParamValue(b []byte, i, e int) int { return scanClass(b, i, e, clsParamValue) }

// parseVia parses into v, which must be zero, the Via value that starts in
// b[s:e], which may be the first of a comma list. The value is b[vs:ve], LWS
// trimmed; next is e, or the index of the comma that ends the value. Any
// other byte where a parameter or the value should end makes it malformed.
func parseVia(v *viaSpans, b []byte, s, e int) (vs, ve, next int, ok bool) {
	i := skipWS(b, s, e)
	vs = i
	if e-i > 8 && string(b[i:i+8]) == "SIP/2.0/" {
		// The spelling nearly every implementation sends.
		v.proto = span{i, i + 7}
		i += 8
	} else {
		var ok bool
		if v.proto, i, ok = parseProtocol(b, i, e); !ok {
			return vs, ve, i, false
		}
	}
	k := i
	if e-i > 4 && b[i+3] == ' ' && isToken[b[i]] && isToken[b[i+1]] && isToken[b[i+2]] {
		// "UDP", "TCP", "TLS", "WSS" and one SP: the token ends
		// where a scan would stop, without the scan's exit branch.
		i += 3
	} else if i = scanToken(b, i, e); i == k {
		return vs, ve, i, false
	}
	v.transport = span{k, i}
	k = i
	i = skipWS(b, i, e)
	if i == k || i >= e {
		return vs, ve, i, false
	}
	h, port, hpEnd, ok := parseHostPort(b, i, e, true)
	if !ok {
		return vs, ve, i, false
	}
	v.host, v.port = h, port
	ve = hpEnd
	i = skipWS(b, hpEnd, e)
	ps := i
	for i < e && b[i] == ';' {
		// The parameters every top Via carries, spelled as sent, are
		// matched whole; anything else goes through nextParam, which
		// finds the same spans for these.
		if e-i > 8 && string(b[i:i+8]) == ";branch=" && isParamValue[b[i+8]] {
			j := scanParamValue(b, i+9, e)
			v.branch = span{i + 8, j}
			ve, i = j, skipWS(b, j, e)
			continue
		}
		if e-i >= 6 && string(b[i:i+6]) == ";rport" && (e-i == 6 || b[i+6] == ';' || b[i+6] == ',') {
			v.rportName = span{i + 1, i + 6}
			ve, i = i+6, i+6
			continue
		}
		if e-i > 7 && string(b[i:i+7]) == ";rport=" {
			// The port a response's Via carries back (RFC 3581 §4),
			// digits that a non-value byte ends; any other value goes
			// through param, which rejects what this does not take.
			j, n := i+7, 0
			for j < e && j < i+12 && isDigit[b[j]] {
				n = n*10 + int(b[j]-'0')
				j++
			}
			if j > i+7 && n <= 65535 && (j == e || !isParamValue[b[j]]) {
				v.rportName, v.rportVal, v.rport = span{i + 1, i + 6}, span{i + 7, j}, uint16(n)
				ve, i = j, skipWS(b, j, e)
				continue
			}
		}
		if e-i > 10 && string(b[i:i+10]) == ";received=" && isParamValue[b[i+10]] {
			j := scanParamValue(b, i+11, e)
			v.received = span{i + 10, j}
			ve, i = j, skipWS(b, j, e)
			continue
		}
		name, val, pe, ok := nextParam(b, i, e)
		if !ok || !v.param(b, name, val) {
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

// parseProtocol parses the protocol-name and protocol-version of a
// sent-protocol spelled other than "SIP/2.0/", at b[i:e]: their span, and
// the index past the "/" and LWS that follow, where the transport starts;
// ok false, with the index where it failed, when they are malformed. It
// stays out of parseVia, which is inlined where Via values are walked,
// so that the spelling nearly everyone sends costs that code no room.
func parseProtocol(b []byte, i, e int) (proto span, next int, ok bool) {
	p := i
	i = scanToken(b, i, e)
	if i == p {
		return proto, i, false
	}
	i = skipWS(b, i, e)
	if i >= e || b[i] != '/' {
		return proto, i, false
	}
	i = skipWS(b, i+1, e)
	k := i
	i = scanToken(b, i, e)
	if i == k {
		return proto, i, false
	}
	proto = span{p, i}
	i = skipWS(b, i, e)
	if i >= e || b[i] != '/' {
		return proto, i, false
	}
	return proto, skipWS(b, i+1, e), true
}

// param keeps the via-params a proxy reads (RFC 3261 §20.42, RFC 3581) and
// checks their values.
func (v *viaSpans) param(b []byte, name, val span) bool {
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

// parseHostPort parses host [ COLON port ] at b[i:e]; host is a host name,
// an IPv4 address or an IPv6 reference (returned without brackets). With
// lws, LWS may surround the colon (sent-by); in a URI it may not.
func parseHostPort(b []byte, i, e int, lws bool) (host span, port uint16, next int, ok bool) {
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
		j := scanClass(b, i, e, clsHost)
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
		// port = 1*DIGIT, at most 65535: converted as it is scanned.
		d := k
		n := 0
		for k < e && isDigit[b[k]] {
			if n = n*10 + int(b[k]-'0'); n > 65535 {
				return host, 0, i, false
			}
			k++
		}
		if k == d {
			return host, 0, i, false
		}
		return host, uint16(n), k, true
	}
	return host, 0, i, true
}

// nextParam parses one parameter at b[i:e], where b[i] is ";":
//
//	SEMI generic-param = SWS ";" SWS token [ EQUAL gen-value ]
//
// It returns the name and value spans (the value's zero span when there is
// no "=") and the index of the first byte past them and the LWS after them:
// e, or where the caller's syntax goes on (";" for another parameter).
func nextParam(b []byte, i, e int) (name, val span, next int, ok bool) {
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
			j = scanParamValue(b, j, e)
		}
		if j == vs {
			return name, val, j, false
		}
		val = span{vs, j}
		i = j
	}
	return name, val, skipWS(b, i, e), true
}
