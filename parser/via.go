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
	end                    int
}

// ParseVia parses one Via value (not a comma list) into v, with sub-slices of b.
//
//	via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
//	sent-protocol = protocol-name SLASH protocol-version SLASH transport
//	sent-by       = host [ COLON port ]
func ParseVia(v *Via, b []byte) error {
	s, ok := parseVia(b, 0, len(b))
	if !ok {
		*v = Via{}
		return ErrMalformedVia
	}
	s.fill(v, b)
	return nil
}

func (s *viaSpans) fill(v *Via, b []byte) {
	*v = Via{
		Protocol:  s.proto.bytes(b),
		Transport: s.transport.bytes(b),
		Host:      s.host.bytes(b),
		Port:      s.port,
		Branch:    s.branch.bytes(b),
		Received:  s.received.bytes(b),
		RPort:     s.rport,
		HasRPort:  s.rportName.present(),
		Maddr:     s.maddr.bytes(b),
		Params:    s.params.bytes(b),
	}
}

func scanToken(b []byte, i, e int) int {
	for i < e && isToken[b[i]] {
		i++
	}
	return i
}

// parseVia parses the Via value b[s:e] (LWS trimmed by the caller or not).
func parseVia(b []byte, s, e int) (v viaSpans, ok bool) {
	i := skipWS(b, s, e)
	p := i
	i = scanToken(b, i, e)
	if i == p {
		return v, false
	}
	i = skipWS(b, i, e)
	if i >= e || b[i] != '/' {
		return v, false
	}
	i = skipWS(b, i+1, e)
	k := i
	i = scanToken(b, i, e)
	if i == k {
		return v, false
	}
	v.proto = span{p, i}
	i = skipWS(b, i, e)
	if i >= e || b[i] != '/' {
		return v, false
	}
	i = skipWS(b, i+1, e)
	k = i
	i = scanToken(b, i, e)
	if i == k {
		return v, false
	}
	v.transport = span{k, i}
	k = i
	i = skipWS(b, i, e)
	if i == k || i >= e {
		return v, false
	}
	h, port, next, ok := parseHostPort(b, i, e, true)
	if !ok {
		return v, false
	}
	v.host, v.port = h, port
	i = skipWS(b, next, e)
	if i < e {
		if b[i] != ';' {
			return v, false
		}
		v.params = span{i, e}
		for e > i && isWS[b[e-1]] {
			e--
		}
		v.params.end = e
	}
	for i < e {
		name, val, next, ok := nextParam(b, i, e)
		if !ok {
			return v, false
		}
		switch n := b[name.off:name.end]; {
		case equalFold(n, "branch"):
			if !val.present() {
				return v, false
			}
			v.branch = val
		case equalFold(n, "received"):
			if !val.present() {
				return v, false
			}
			v.received = val
		case equalFold(n, "maddr"):
			v.maddr = val
		case equalFold(n, "rport"):
			v.rportName = name
			if val.present() {
				r, ok := parseUint(b[val.off:val.end], 65535)
				if !ok {
					return v, false
				}
				v.rportVal, v.rport = val, uint16(r)
			}
		case equalFold(n, "ttl"):
			if !val.present() {
				return v, false
			}
			if _, ok := parseUint(b[val.off:val.end], 255); !ok {
				return v, false
			}
		}
		i = next
	}
	v.end = e
	return v, true
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

// nextParam parses one parameter at b[i:e], where b[i] is ";":
//
//	SEMI generic-param = SWS ";" SWS token [ EQUAL gen-value ]
//
// It returns the name and value spans (the value's zero span when there is
// no "="), and the index of the next ";" or e.
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
			for j < e && isParamValue[b[j]] {
				j++
			}
		}
		if j == vs {
			return name, val, j, false
		}
		val = span{vs, j}
		i = j
	}
	i = skipWS(b, i, e)
	if i < e && b[i] != ';' {
		return name, val, i, false
	}
	return name, val, i, true
}
