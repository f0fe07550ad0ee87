package parser

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

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
// Contact). A bad value stands for the defect that ended the splitting of
// its list: v runs from where the defect's value starts to the end of its
// header, and no value follows it in the list.
type hval struct {
	hdr int32 // index into Message.hdrs
	bad bool
	v   span
}

// Message is a parsed SIP message: spans into Buf, which it does not own.
// Keep one per event loop; Parse resets it and keeps the capacity of its
// slices, so that parsing allocates only until the slices have grown to the
// largest message seen. Every []byte an accessor returns aliases Buf and is
// valid until the next Parse into m or until the caller reuses Buf.
// A Message is not safe for concurrent use, not even by readers only: the
// comma lists (Via, Route, Record-Route, Contact) are split on first use by
// an accessor and cached in m.
type Message struct {
	Limits Limits // set once by the owner; zero fields mean the defaults
	Buf    []byte // the parsed input, as given to Parse

	hdrs  []header
	lists [numLists][]hval    // the comma lists, valid where split has their bit
	split uint8               // bit k: lists[k] has been split
	first [numHeaderIDs]int32 // 1 + index of the first header with each ID, 0 if absent
	other int32               // 1 + index of the first header with no known ID (HdrOther), 0 if none
	top   hval                // the top Via value, checked by Parse
	topNx int32               // where parsing the top Via stopped: its comma, or the header's end

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
	topVia     viaSpans // the parsed top value
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
//
// The values a proxy reads only on some paths are checked when they are
// read: the Via values below the top one, Route, Record-Route and Contact.
// Their accessors (Via, Route, RecordRoute, Contact) return
// ErrMalformedVia, ErrMalformedRoute, ErrMalformedRecordRoute or
// ErrMalformedContact for the value where the comma list stops making
// sense (an unterminated quote or "<", an empty value or parameter, a "?"
// outside "<>"), and the list ends there.
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
	if err := m.parseHeaders(b, next, maxHdr); err != nil {
		return err
	}
	if err := m.checkRequired(b); err != nil {
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
	hdrs, lists := m.hdrs[:0], m.lists
	if cap(hdrs) == 0 {
		hdrs = make([]header, 0, 32)
	}
	for k := range lists {
		lists[k] = lists[k][:0]
	}
	lim := m.Limits
	// Zeroing m in place and then setting the kept fields is cheaper than
	// assigning a composite literal, which the compiler builds on the
	// stack and copies.
	*m = Message{}
	m.Limits, m.Buf, m.hdrs, m.lists = lim, b, hdrs, lists
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
	j := scanToken(b, i, e)
	if j == i || j >= e || b[j] != ' ' {
		return ErrMalformedRequestLine
	}
	m.methodName = span{i, j}
	m.method = lookupMethod(b[i:j])
	j++
	u := j
	j = visibleEnd(b, j, e)
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
	if len(v) == 7 && (string(v) == "SIP/2.0" || equalFold(v[:4], "sip/") && v[4] == '2' && v[5] == '.' && v[6] == '0') {
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
	if hasPrefix(u, "sip:") {
		return checkSIPHost(u[4:])
	}
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
		return checkSIPHost(u[c+1:])
	}
	return nil
}

// checkSIPHost checks what follows "sip:" in a Request-URI: a host part
// after the user part, with no headers.
func checkSIPHost(rest []byte) error {
	// One word-at-a-time pass finds the first "@" and the last "?": the
	// host part is what follows that "@" (or all of rest), and no "?" may
	// lie in it.
	at, q := -1, -1
	i := 0
	for ; i+8 <= len(rest); i += 8 {
		x := binary.LittleEndian.Uint64(rest[i:])
		if m := byteEq(x, '@'); m != 0 && at < 0 {
			at = i + bits.TrailingZeros64(m)>>3
		}
		if m := byteEq(x, '?'); m != 0 {
			q = i + (63-bits.LeadingZeros64(m))>>3
		}
	}
	for ; i < len(rest); i++ {
		switch rest[i] {
		case '@':
			if at < 0 {
				at = i
			}
		case '?':
			q = i
		}
	}
	if at+1 >= len(rest) || q > at {
		return ErrMalformedRequestURI
	}
	return nil
}

// checked marks the headers whose values Parse checks as it meets them.
var checked = [numHeaderIDs]bool{
	HdrCallID: true, HdrCSeq: true, HdrFrom: true, HdrTo: true,
	HdrMaxForwards: true, HdrContentLength: true, HdrDate: true,
}

// parseHeaders splits the header section starting at p into m.hdrs, joining
// folded lines (RFC 3261 §7.3.1), finds the blank line and checks the
// values of the headers a proxy relies on, in one pass. A datagram that ends
// without the blank line is taken to have no body. A defect in the framing
// of the section (a line that is no header, a limit) wins over a defect in
// a value; among values the first one in the message wins.
func (m *Message) parseHeaders(b []byte, p, maxHdr int) error {
	var bad error
	hdrs := m.hdrs
	for {
		if p > maxHdr {
			m.hdrs = hdrs
			return ErrTooLarge
		}
		if p >= len(b) {
			m.hdrEnd, m.bodyOff = len(b), len(b)
			break
		}
		c := b[p]
		if c == '\n' {
			m.hdrEnd, m.bodyOff = p, p+1
			break
		}
		if c == '\r' && p+1 < len(b) && b[p+1] == '\n' {
			m.hdrEnd, m.bodyOff = p, p+2
			break
		}
		// The line's end is searched for from its start, not from its
		// value: no LF can lie in the name, the colon or the LWS after
		// it, and so the search, the one serial chain from line to line,
		// does not wait for the name to be matched.
		lf := bytes.IndexByte(b[p:], '\n')
		id, nameEnd := knownName(b, p)
		q := nameEnd + 1 // past the colon
		if nameEnd == 0 {
			if c == ' ' || c == '\t' {
				// Continuation lines are taken with the header they
				// continue; this one follows the start line.
				m.hdrs = hdrs
				return ErrMalformedHeader
			}
			q = p
			for q < len(b) && isToken[b[q]] {
				q++
			}
			nameEnd = q
			for q < len(b) && (b[q] == ' ' || b[q] == '\t') {
				q++
			}
			if nameEnd == p || q >= len(b) || b[q] != ':' {
				m.hdrs = hdrs
				return ErrMalformedHeader
			}
			q++
			id = LookupHeader(b[p:nameEnd])
		}
		for q < len(b) && (b[q] == ' ' || b[q] == '\t') {
			q++
		}
		vs := q
		ve, next := len(b), len(b)
		if lf >= 0 {
			lf += p
			ve, next = lf, lf+1
			if ve > q && b[ve-1] == '\r' {
				ve--
			}
		}
		for ve > vs && (b[ve-1] == ' ' || b[ve-1] == '\t') {
			ve--
		}
		// RFC 3261 §7.3.1: a line that starts with SP or HTAB continues
		// the header above it.
		for next < len(b) && (b[next] == ' ' || b[next] == '\t') {
			if next > maxHdr {
				m.hdrs = hdrs
				return ErrTooLarge
			}
			le, nn := lineEnd(b, next)
			s, e := trimWS(b, next, le)
			if s < e {
				if vs == ve {
					vs = s
				}
				ve = e
			}
			next = nn
		}
		n := len(hdrs)
		if n >= maxHeaders {
			m.hdrs = hdrs
			return ErrTooLarge
		}
		if n < cap(hdrs) {
			hdrs = hdrs[:n+1]
		} else {
			hdrs = append(hdrs, header{})
		}
		// Field by field: a composite literal is built on the stack and
		// copied with wide loads that stall on its narrower stores.
		h := &hdrs[n]
		h.id = id
		h.name.off, h.name.end = p, nameEnd
		h.value.off, h.value.end = vs, ve
		h.line.off, h.line.end = p, next
		p = next
		if id == HdrOther {
			if m.other == 0 {
				m.other = int32(n + 1)
			}
			continue
		}
		if m.first[id] == 0 {
			m.first[id] = int32(n + 1)
		} else if singleValued[id] {
			if bad == nil {
				bad = ErrDuplicateHeader
			}
			continue
		}
		if checked[id] && bad == nil {
			bad = m.checkValue(b, id, vs, ve)
		}
	}
	m.hdrs = hdrs
	if m.bodyOff > maxHdr {
		return ErrTooLarge
	}
	return bad
}

// checkValue checks the value b[vs:ve] of a header marked in checked and
// keeps what the accessors return.
func (m *Message) checkValue(b []byte, id HeaderID, vs, ve int) error {
	var err error
	switch id {
	case HdrCallID:
		err = m.parseCallID(b, span{vs, ve})
	case HdrCSeq:
		err = m.parseCSeq(b, span{vs, ve})
	case HdrFrom:
		m.fromTag, err = parseFromTo(b, span{vs, ve}, ErrMalformedFrom)
	case HdrTo:
		m.toTag, err = parseFromTo(b, span{vs, ve}, ErrMalformedTo)
	case HdrMaxForwards:
		n, ok := parseUint(b[vs:ve], 255)
		if !ok {
			return ErrMalformedMaxForwards
		}
		m.maxFwd = int(n)
	case HdrContentLength:
		n, ok := parseUint(b[vs:ve], 1<<31-1)
		if !ok {
			return ErrMalformedContentLength
		}
		m.clen = int(n)
	case HdrDate:
		// RFC 3261 §20.17: the rfc1123-date is always in "GMT"
		// (RFC 4475 §3.1.2.12).
		if !bytes.HasSuffix(b[vs:ve], []byte("GMT")) {
			return ErrMalformedDate
		}
	}
	return err
}

// checkRequired checks that the headers a proxy relies on are present and
// parses the top Via value.
func (m *Message) checkRequired(b []byte) error {
	vi := m.first[HdrVia]
	if vi == 0 {
		return ErrMissingVia
	}
	h := &m.hdrs[vi-1]
	vs, ve, nx, ok := parseVia(&m.topVia, b, h.value.off, h.value.end)
	if !ok {
		return ErrMalformedVia
	}
	m.top = hval{hdr: vi - 1, v: span{vs, ve}}
	m.topNx = int32(nx)
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
	if !isWordChars(b[v.off:v.end]) {
		return ErrMalformedCallID
	}
	m.callID = v
	return nil
}

// parseCSeq: CSeq = 1*DIGIT LWS Method, the number below 2**31 (RFC 3261 §8.1.1.5).
func (m *Message) parseCSeq(b []byte, v span) error {
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
	if mn := m.methodName; mn.end > mn.off && i < v.end && b[i] == ' ' && mn.end-mn.off == v.end-i-1 && string(b[mn.off:mn.end]) == string(b[i+1:v.end]) {
		// One SP and the request's own method, the usual case: a
		// token already (the Request-Line's), so nothing to scan.
		m.cseqNum, m.cseqName, m.cseqMethod = uint32(n), span{i + 1, v.end}, m.method
		return nil
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

// parseFromTo checks a From or To value (name-addr or addr-spec followed by
// parameters) and returns the span of its tag parameter.
func parseFromTo(b []byte, v span, bad *Error) (tag span, err error) {
	_, _, i, end, _, ok := nameAddrSpans(b, v.off, v.end)
	if !ok {
		return span{}, bad
	}
	for i < end {
		if end-i > 5 && string(b[i:i+5]) == ";tag=" && isParamValue[b[i+5]] {
			// The tag as nearly everyone writes it: nextParam would
			// find the same spans.
			j := scanParamValue(b, i+6, end)
			tag = span{i + 5, j}
			if i = skipWS(b, j, end); i < end && b[i] != ';' {
				return span{}, bad
			}
			continue
		}
		name, val, next, ok := nextParam(b, i, end)
		if !ok || (next < end && b[next] != ';') {
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
