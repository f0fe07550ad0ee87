package parser

import "bytes"

// Limits bounds what Parse and Frame accept. Zero fields mean the defaults.
type Limits struct {
	MaxHeader int // bytes of start line and header section, blank line included (default DefaultMaxHeader)
	MaxBody   int // bytes of body (default DefaultMaxBody)
}

// The default limits, as in Net::SIP.
const (
	DefaultMaxHeader = 16 << 10 // Net::SIP
	DefaultMaxBody   = 64 << 10 // Net::SIP
)

// maxHeaders bounds the number of header lines of one message, so that
// header indexes fit an int32 and a flood of empty headers costs little.
const maxHeaders = 4096

func (l Limits) values() (hdr, body int) {
	hdr, body = l.MaxHeader, l.MaxBody
	if hdr <= 0 {
		hdr = DefaultMaxHeader
	}
	if body <= 0 {
		body = DefaultMaxBody
	}
	return hdr, body
}

// span is the half-open range [off, end) of Message.Buf. The zero span is
// absent: offset 0 always belongs to the start line, never to a value.
type span struct{ off, end int }

func (s span) bytes(b []byte) []byte {
	if s.end == 0 {
		return nil
	}
	return b[s.off:s.end:s.end]
}

func (s span) present() bool { return s.end != 0 }

// header is one header field: its name, its value with LWS trimmed at both
// ends (folded lines included, their CRLF kept), and the whole line from the
// name to past the line terminator of its last continuation line.
type header struct {
	id    HeaderID
	name  span
	value span
	line  span
}

// hval is one value of a comma-separated header (Via, Route, Record-Route,
// Contact).
type hval struct {
	hdr int32 // index into Message.hdrs
	v   span
}

// Message is a parsed SIP message: spans into Buf, which it does not own.
// Keep one per event loop; Parse resets it and keeps the capacity of its
// slices, so that parsing allocates only until the slices have grown to the
// largest message seen. Every []byte an accessor returns aliases Buf and is
// valid until the next Parse into m or until the caller reuses Buf.
// A Message is not safe for concurrent use.
type Message struct {
	Limits Limits // set once by the owner; zero fields mean the defaults
	Buf    []byte // the parsed input, as given to Parse

	hdrs     []header
	vias     []hval
	routes   []hval
	rrs      []hval
	contacts []hval
	first    [numHeaderIDs]int32 // 1 + index of the first header with each ID, 0 if absent

	method     Method
	methodName span
	ruri       span
	status     int
	reason     span
	startOff   int // offset of the start line (past ignored leading CRLFs)
	startEnd   int // offset past the start line's terminator
	hdrEnd     int // offset of the blank line (or of the end of input without one)
	body       span
	bodyOff    int
	callID     span
	cseqNum    uint32
	cseqMethod Method
	cseqName   span
	fromTag    span
	toTag      span
	maxFwd     int
	clen       int
	topVia     viaSpans
}

// singleValued marks the headers RFC 3261 §7.3.1 allows once only; a second
// one makes the message ambiguous (RFC 4475 §3.1.2.19 is in this spirit).
var singleValued = [numHeaderIDs]bool{
	HdrCallID: true, HdrCSeq: true, HdrFrom: true, HdrTo: true,
	HdrMaxForwards: true, HdrContentLength: true,
}

// Parse parses the complete message b (one datagram, or one message framed
// by Frame) into m. m keeps spans into b and sets m.Buf = b; b must not be
// modified while m is in use. On error m is in an undefined state except
// that Buf is set; the error is always one of the package's *Error
// sentinels, so rejecting a message allocates nothing.
//
// Parse checks what a stateless proxy relies on: the start line with version
// SIP/2.0, one Call-ID, one CSeq whose number fits 31 bits and whose method
// equals a request's method, one From and one To (name-addr or addr-spec,
// quotes balanced), at least one Via with a well-formed top value,
// Max-Forwards 0-255, Content-Length not beyond the bytes present, and the
// limits. A datagram without Content-Length takes the rest as its body; a
// shorter Content-Length truncates the body and the rest is ignored.
func Parse(m *Message, b []byte) error {
	m.reset(b)
	maxHdr, maxBody := m.Limits.values()
	if len(b) > maxHdr+maxBody {
		return ErrTooLarge
	}
	i := 0
	// RFC 3261 §7.5: CRLFs ahead of the start line are ignored.
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	m.startOff = i
	le, next := lineEnd(b, i)
	if err := m.parseStartLine(b, i, le); err != nil {
		return err
	}
	m.startEnd = next
	if err := m.scanHeaders(b, next, maxHdr); err != nil {
		return err
	}
	if err := m.checkHeaders(b); err != nil {
		return err
	}
	avail := len(b) - m.bodyOff
	if m.first[HdrContentLength] != 0 {
		if m.clen > maxBody {
			return ErrTooLarge
		}
		if m.clen > avail {
			return ErrBodyTruncated
		}
		m.body = span{m.bodyOff, m.bodyOff + m.clen}
	} else {
		if avail > maxBody {
			return ErrTooLarge
		}
		m.body = span{m.bodyOff, len(b)}
	}
	return nil
}

func (m *Message) reset(b []byte) {
	hdrs, vias, routes, rrs, contacts := m.hdrs[:0], m.vias[:0], m.routes[:0], m.rrs[:0], m.contacts[:0]
	if cap(hdrs) == 0 {
		hdrs = make([]header, 0, 32)
	}
	lim := m.Limits
	*m = Message{Limits: lim, Buf: b, hdrs: hdrs, vias: vias, routes: routes, rrs: rrs, contacts: contacts}
}

// lineEnd returns the end of the line starting at i without its terminator
// (LF or CRLF; a bare LF is tolerated) and the start of the next line.
func lineEnd(b []byte, i int) (end, next int) {
	lf := bytes.IndexByte(b[i:], '\n')
	if lf < 0 {
		return len(b), len(b)
	}
	end, next = i+lf, i+lf+1
	if end > i && b[end-1] == '\r' {
		end--
	}
	return end, next
}

// parseStartLine parses b[i:e]:
//
//	Request-Line = Method SP Request-URI SP SIP-Version
//	Status-Line  = SIP-Version SP Status-Code SP Reason-Phrase
func (m *Message) parseStartLine(b []byte, i, e int) error {
	if e-i >= 4 && equalFold(b[i:i+4], "sip/") {
		return m.parseStatusLine(b, i, e)
	}
	j := i
	for j < e && isToken[b[j]] {
		j++
	}
	if j == i || j >= e || b[j] != ' ' {
		return ErrMalformedRequestLine
	}
	m.methodName = span{i, j}
	m.method = lookupMethod(b[i:j])
	j++
	u := j
	for j < e && b[j] > ' ' && b[j] != 0x7f {
		j++
	}
	if j == u || j >= e || b[j] != ' ' {
		// Empty, ends the line, or LWS other than one SP inside it
		// (RFC 4475 §3.1.2.8, §3.1.2.9).
		return ErrMalformedRequestLine
	}
	m.ruri = span{u, j}
	if err := checkVersion(b[j+1 : e]); err != nil {
		return err
	}
	return checkRequestURI(b[u:j])
}

func (m *Message) parseStatusLine(b []byte, i, e int) error {
	j := i
	for j < e && b[j] != ' ' {
		j++
	}
	if err := checkVersion(b[i:j]); err != nil {
		if err == ErrMalformedRequestLine {
			return ErrMalformedStatusLine
		}
		return err
	}
	// Status-Code = 3DIGIT (RFC 4475 §3.1.2.19: no more).
	if e-j < 4 || !isDigit[b[j+1]] || !isDigit[b[j+2]] || !isDigit[b[j+3]] {
		return ErrMalformedStatusLine
	}
	code := int(b[j+1]-'0')*100 + int(b[j+2]-'0')*10 + int(b[j+3]-'0')
	if code < 100 || code > 699 {
		return ErrMalformedStatusLine
	}
	k := j + 4
	if k < e && b[k] != ' ' {
		return ErrMalformedStatusLine
	}
	m.status = code
	if k < e {
		k++
	}
	m.reason = span{k, e}
	if m.reason.end == 0 {
		m.reason = span{}
	}
	return nil
}

// checkVersion accepts "SIP/2.0" and answers 505 for another well-formed
// SIP-Version ("SIP" "/" 1*DIGIT "." 1*DIGIT, RFC 3261 §7.1).
func checkVersion(v []byte) error {
	if len(v) == 7 && equalFold(v[:4], "sip/") && v[4] == '2' && v[5] == '.' && v[6] == '0' {
		return nil
	}
	if len(v) < 7 || !equalFold(v[:4], "sip/") {
		return ErrMalformedRequestLine
	}
	k := 4
	d := k
	for k < len(v) && isDigit[v[k]] {
		k++
	}
	if k == d || k >= len(v) || v[k] != '.' {
		return ErrMalformedRequestLine
	}
	k++
	d = k
	for k < len(v) && isDigit[v[k]] {
		k++
	}
	if k == d || k != len(v) {
		return ErrMalformedRequestLine
	}
	return ErrVersionNotSupported
}

// checkRequestURI rejects what cannot be a Request-URI: no scheme, a
// name-addr (RFC 4475 §3.1.2.7), or a SIP URI carrying headers (RFC 3261
// §19.1.5; RFC 4475 §3.1.2.11).
func checkRequestURI(u []byte) error {
	c := bytes.IndexByte(u, ':')
	if c <= 0 {
		return ErrMalformedRequestURI
	}
	for k, ch := range u[:c] {
		if !isSchemeChar[ch] || (k == 0 && !isAlpha[ch]) {
			return ErrMalformedRequestURI
		}
	}
	scheme := u[:c]
	if equalFold(scheme, "sip") || equalFold(scheme, "sips") {
		rest := u[c+1:]
		if at := bytes.IndexByte(rest, '@'); at >= 0 {
			rest = rest[at+1:]
		}
		if len(rest) == 0 || bytes.IndexByte(rest, '?') >= 0 {
			return ErrMalformedRequestURI
		}
	}
	return nil
}

// scanHeaders splits the header section starting at p into m.hdrs, joining
// folded lines (RFC 3261 §7.3.1), and finds the blank line. A datagram that
// ends without the blank line is taken to have no body.
func (m *Message) scanHeaders(b []byte, p, maxHdr int) error {
	for {
		if p > maxHdr {
			return ErrTooLarge
		}
		if p >= len(b) {
			m.hdrEnd, m.bodyOff = len(b), len(b)
			return nil
		}
		if b[p] == '\n' {
			m.hdrEnd, m.bodyOff = p, p+1
			break
		}
		if b[p] == '\r' && p+1 < len(b) && b[p+1] == '\n' {
			m.hdrEnd, m.bodyOff = p, p+2
			break
		}
		le, next := lineEnd(b, p)
		if b[p] == ' ' || b[p] == '\t' {
			n := len(m.hdrs)
			if n == 0 {
				return ErrMalformedHeader
			}
			h := &m.hdrs[n-1]
			s, e := trimWS(b, p, le)
			if s < e {
				if h.value.off == h.value.end {
					h.value.off = s
				}
				h.value.end = e
			}
			h.line.end = next
			p = next
			continue
		}
		q := p
		for q < le && isToken[b[q]] {
			q++
		}
		nameEnd := q
		for q < le && (b[q] == ' ' || b[q] == '\t') {
			q++
		}
		if nameEnd == p || q >= le || b[q] != ':' {
			return ErrMalformedHeader
		}
		q++
		for q < le && (b[q] == ' ' || b[q] == '\t') {
			q++
		}
		ve := le
		for ve > q && (b[ve-1] == ' ' || b[ve-1] == '\t') {
			ve--
		}
		if len(m.hdrs) >= maxHeaders {
			return ErrTooLarge
		}
		m.hdrs = append(m.hdrs, header{
			id:    LookupHeader(b[p:nameEnd]),
			name:  span{p, nameEnd},
			value: span{q, ve},
			line:  span{p, next},
		})
		p = next
	}
	if m.bodyOff > maxHdr {
		return ErrTooLarge
	}
	return nil
}

// checkHeaders indexes the headers, splits the comma lists and checks the
// headers a proxy relies on.
func (m *Message) checkHeaders(b []byte) error {
	for i := range m.hdrs {
		h := &m.hdrs[i]
		id := h.id
		if id == HdrOther {
			continue
		}
		if m.first[id] == 0 {
			m.first[id] = int32(i + 1)
		} else if singleValued[id] {
			return ErrDuplicateHeader
		}
		var err error
		switch id {
		case HdrVia:
			m.vias, err = m.split(m.vias, i, ErrMalformedVia)
		case HdrRoute:
			m.routes, err = m.split(m.routes, i, ErrMalformedRoute)
		case HdrRecordRoute:
			m.rrs, err = m.split(m.rrs, i, ErrMalformedRecordRoute)
		case HdrContact:
			m.contacts, err = m.split(m.contacts, i, ErrMalformedContact)
		case HdrCallID:
			err = m.parseCallID(b, h.value)
		case HdrCSeq:
			err = m.parseCSeq(b, h.value)
		case HdrFrom:
			m.fromTag, err = parseFromTo(b, h.value, ErrMalformedFrom)
		case HdrTo:
			m.toTag, err = parseFromTo(b, h.value, ErrMalformedTo)
		case HdrMaxForwards:
			n, ok := parseUint(b[h.value.off:h.value.end], 255)
			if !ok {
				return ErrMalformedMaxForwards
			}
			m.maxFwd = int(n)
		case HdrContentLength:
			n, ok := parseUint(b[h.value.off:h.value.end], 1<<31-1)
			if !ok {
				return ErrMalformedContentLength
			}
			m.clen = int(n)
		case HdrDate:
			// RFC 3261 §20.17: the rfc1123-date is always in "GMT"
			// (RFC 4475 §3.1.2.12).
			if v := b[h.value.off:h.value.end]; !bytes.HasSuffix(v, []byte("GMT")) {
				return ErrMalformedDate
			}
		}
		if err != nil {
			return err
		}
	}
	if len(m.vias) == 0 {
		return ErrMissingVia
	}
	v, ok := parseVia(b, m.vias[0].v.off, m.vias[0].v.end)
	if !ok {
		return ErrMalformedVia
	}
	m.topVia = v
	if m.first[HdrFrom] == 0 {
		return ErrMissingFrom
	}
	if m.first[HdrTo] == 0 {
		return ErrMissingTo
	}
	if m.first[HdrCallID] == 0 {
		return ErrMissingCallID
	}
	if m.first[HdrCSeq] == 0 {
		return ErrMissingCSeq
	}
	if m.status == 0 && !bytes.Equal(b[m.cseqName.off:m.cseqName.end], b[m.methodName.off:m.methodName.end]) {
		return ErrCSeqMethodMismatch
	}
	return nil
}

// parseCallID: Call-ID = word [ "@" word ], no LWS inside.
func (m *Message) parseCallID(b []byte, v span) error {
	if v.off == v.end {
		return ErrMalformedCallID
	}
	for _, c := range b[v.off:v.end] {
		if c <= ' ' || c >= 0x7f {
			return ErrMalformedCallID
		}
	}
	m.callID = v
	return nil
}

// parseCSeq: CSeq = 1*DIGIT LWS Method, the number below 2**31 (RFC 3261 §8.1.1.5).
func (m *Message) parseCSeq(b []byte, v span) error {
	i := v.off
	for i < v.end && isDigit[b[i]] {
		i++
	}
	n, ok := parseUint(b[v.off:i], 1<<31-1)
	if !ok {
		return ErrMalformedCSeq
	}
	j := skipWS(b, i, v.end)
	if j == i {
		return ErrMalformedCSeq
	}
	k := j
	for k < v.end && isToken[b[k]] {
		k++
	}
	if k == j || k != v.end {
		return ErrMalformedCSeq
	}
	m.cseqNum = uint32(n)
	m.cseqName = span{j, k}
	m.cseqMethod = lookupMethod(b[j:k])
	return nil
}

// parseFromTo checks a From or To value (name-addr or addr-spec followed by
// parameters) and returns the span of its tag parameter.
func parseFromTo(b []byte, v span, bad *Error) (tag span, err error) {
	na, ok := parseNameAddr(b, v.off, v.end)
	if !ok {
		return span{}, bad
	}
	for i := na.params.off; i < na.params.end; {
		name, val, next, ok := nextParam(b, i, na.params.end)
		if !ok {
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

// splitStop marks the bytes split must look at.
var splitStop = func() (t [256]bool) {
	for _, c := range []byte("\"<>,;?") {
		t[c] = true
	}
	return t
}()

// split appends the top-level comma-separated values of header hi to dst.
// Quoted strings and <> enclosures are respected. Empty values, empty
// parameters (RFC 4475 §3.1.2.1), unterminated quotes or brackets, and a "?"
// outside <> (RFC 3261 §20: such a URI must be enclosed; RFC 4475 §3.1.2.13)
// are rejected with bad.
func (m *Message) split(dst []hval, hi int, bad *Error) ([]hval, error) {
	b := m.Buf
	h := m.hdrs[hi]
	i, end := h.value.off, h.value.end
	if i == end {
		return dst, bad
	}
	for {
		s := skipWS(b, i, end)
		j := s
	scan:
		for j < end {
			for j < end && !splitStop[b[j]] {
				j++
			}
			if j >= end {
				break
			}
			switch b[j] {
			case '"':
				j = skipQuoted(b, j, end)
				if j < 0 {
					return dst, bad
				}
				continue
			case '<':
				k := bytes.IndexByte(b[j:end], '>')
				if k < 0 {
					return dst, bad
				}
				j += k
			case '>', '?':
				return dst, bad
			case ',':
				break scan
			case ';':
				k := skipWS(b, j+1, end)
				if k >= end || b[k] == ';' || b[k] == ',' {
					return dst, bad
				}
			}
			j++
		}
		vs, ve := trimWS(b, s, j)
		if vs == ve {
			return dst, bad
		}
		dst = append(dst, hval{hdr: int32(hi), v: span{vs, ve}})
		if j >= end {
			return dst, nil
		}
		i = j + 1
	}
}
