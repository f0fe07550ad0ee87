// Package sipwire is the minimal SIP byte scanning shared by the benchmark
// tools (sipecho and sipload). It finds the start line and the few headers a
// UAC or a toy UAS needs, as sub-slices of the datagram, and allocates nothing
// once a Msg has grown its slices.
//
// It is deliberately not the product's parser: the tools must keep working
// while github.com/siplb/siplb/parser changes, and they only ever read traffic
// that sipload, sipecho or a proxy in between wrote. It accepts CRLF or bare LF
// line ends, long and compact header names, and ignores header folding.
//
// A Msg is owned by one goroutine; nothing in this package is shared.
package sipwire

import "bytes"

// Msg is one scanned SIP message. Every []byte field is a sub-slice of the
// buffer given to Scan and is valid until that buffer is reused; Scan resets
// the Msg and keeps the capacity of Vias and RecordRoutes.
type Msg struct {
	Request bool
	Method  []byte // request method, nil for a response
	URI     []byte // Request-URI, nil for a response
	Status  int    // status code, 0 for a request
	Reason  []byte // reason phrase of a response

	Vias         [][]byte // values of the Via headers, in order; one value may hold several vias
	RecordRoutes [][]byte // values of the Record-Route headers, in order
	From, To     []byte
	CallID       []byte
	CSeq         []byte // whole CSeq value
	CSeqNum      uint32
	CSeqMethod   []byte
	Contact      []byte // first Contact value
	Expires      []byte
	Server       []byte
	Body         []byte // bytes after the blank line, cut to Content-Length when present
}

// Scan parses b into m. It reports false when b is not a plausible SIP
// message (no start line, a header line without a colon, no Call-ID or
// CSeq); m is then in an unspecified state.
func Scan(m *Msg, b []byte) bool {
	vias, rrs := m.Vias[:0], m.RecordRoutes[:0]
	*m = Msg{Vias: vias, RecordRoutes: rrs}

	line, rest, ok := nextLine(b)
	if !ok || !startLine(m, line) {
		return false
	}
	contentLength := -1
	for {
		line, rest, ok = nextLine(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		name := trim(line[:colon])
		value := trim(line[colon+1:])
		switch headerOf(name) {
		case hVia:
			m.Vias = append(m.Vias, value)
		case hRecordRoute:
			m.RecordRoutes = append(m.RecordRoutes, value)
		case hFrom:
			m.From = value
		case hTo:
			m.To = value
		case hCallID:
			m.CallID = value
		case hCSeq:
			m.CSeq = value
			sp := bytes.IndexByte(value, ' ')
			if sp <= 0 {
				return false
			}
			n, ok := parseUint(value[:sp], 1<<32-1)
			if !ok {
				return false
			}
			m.CSeqNum = uint32(n)
			m.CSeqMethod = trim(value[sp+1:])
		case hContact:
			if m.Contact == nil {
				m.Contact = value
			}
		case hExpires:
			m.Expires = value
		case hServer:
			m.Server = value
		case hContentLength:
			n, ok := parseUint(value, 1<<24)
			if !ok {
				return false
			}
			contentLength = int(n)
		}
	}
	m.Body = rest
	if contentLength >= 0 && contentLength < len(rest) {
		m.Body = rest[:contentLength]
	}
	return len(m.CallID) > 0 && len(m.CSeqMethod) > 0
}

// startLine fills the request or status line fields of m.
func startLine(m *Msg, line []byte) bool {
	if len(line) >= 12 && string(line[:8]) == "SIP/2.0 " {
		code, ok := parseUint(line[8:11], 999)
		if !ok || code < 100 {
			return false
		}
		m.Status = int(code)
		m.Reason = trim(line[11:])
		return true
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	rest := line[sp+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 || string(rest[sp2+1:]) != "SIP/2.0" {
		return false
	}
	m.Request = true
	m.Method = line[:sp]
	m.URI = rest[:sp2]
	return true
}

// nextLine splits b at the first line end (CRLF or LF). ok is false when no
// line end is left.
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line = b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, b[i+1:], true
}

type header uint8

const (
	hOther header = iota
	hVia
	hRecordRoute
	hFrom
	hTo
	hCallID
	hCSeq
	hContact
	hExpires
	hServer
	hContentLength
)

// headerOf maps a header name, long or compact (RFC 3261 §7.3.3), to the
// headers Scan keeps.
func headerOf(name []byte) header {
	switch len(name) {
	case 1:
		switch name[0] | 0x20 {
		case 'v':
			return hVia
		case 'f':
			return hFrom
		case 't':
			return hTo
		case 'i':
			return hCallID
		case 'm':
			return hContact
		case 'l':
			return hContentLength
		}
	case 2:
		if EqualFold(name, "to") {
			return hTo
		}
	case 3:
		if EqualFold(name, "via") {
			return hVia
		}
	case 4:
		switch {
		case EqualFold(name, "from"):
			return hFrom
		case EqualFold(name, "cseq"):
			return hCSeq
		}
	case 6:
		if EqualFold(name, "server") {
			return hServer
		}
	case 7:
		switch {
		case EqualFold(name, "call-id"):
			return hCallID
		case EqualFold(name, "contact"):
			return hContact
		case EqualFold(name, "expires"):
			return hExpires
		}
	case 12:
		if EqualFold(name, "record-route") {
			return hRecordRoute
		}
	case 14:
		if EqualFold(name, "content-length") {
			return hContentLength
		}
	}
	return hOther
}

// EqualFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case in b.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseUint parses a decimal number no greater than max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > max {
			return 0, false
		}
	}
	return n, true
}

// ParseUint parses a decimal number no greater than max; it is exported for
// the tools' own fields (Expires, ports).
func ParseUint(b []byte, max uint64) (uint64, bool) { return parseUint(b, max) }

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
