package parser

import "strconv"

// Edits are the changes a stateless proxy makes while forwarding, applied in
// one pass by AppendForward. The zero Edits copies the message (with its
// body cut to Content-Length and the blank line written as CRLF).
type Edits struct {
	Received      []byte // non-nil: set received=<value> on the top Via (replace an existing one)
	RPort         int    // 1-65535: the top Via's ";rport" gets the value N (only where rport is present)
	RemoveTopVia  bool   // drop the top Via value (the whole line if it was the only value)
	PushVia       []byte // non-nil: a complete Via value ("SIP/2.0/UDP h:p;branch=..."), written as a new first Via line, above every header
	MaxForwards   bool   // decrement Max-Forwards (not below 0; the caller has checked > 0) or insert "Max-Forwards: 70" when absent
	PopRoute      bool   // remove the top Route value (as PopRoutes: 1)
	PopRoutes     int    // remove this many Route values from the top (two after a double Record-Route)
	DropLastRoute bool   // remove the last Route value (strict routing, RFC 3261 §16.4: it became the Request-URI)
	RecordRoute   []byte // non-nil: a Record-Route value ("<sip:h:p;lr>") inserted as the first Record-Route
	RecordRoute2  []byte // non-nil: a second one, placed after RecordRoute (RFC 5658 double Record-Route)
	Path          []byte // non-nil: a Path value ("<sip:h:p;lr>", RFC 3327) inserted as the first Path
	Path2         []byte // non-nil: a second one, placed after Path (one per leg, as RecordRoute2)
	RequestURI    []byte // non-nil: replaces the Request-URI
	AppendRoute   []byte // non-nil: a Route value added as the last Route (strict routing, RFC 3261 §16.6 step 6)
	Contact       []byte // non-nil: replaces the URI (inside <>, or the addr-spec, then enclosed in <>) of the first Contact value
	ContentLength bool   // ensure a Content-Length header ("Content-Length: N", N the body length, when absent)
}

// DefaultMaxForwards is the Max-Forwards a proxy inserts when a request has
// none (RFC 3261 §16.6 step 3).
const DefaultMaxForwards = 70

// AppendForward appends m, edited as e says, to dst and returns the extended
// slice. Untouched lines are copied byte for byte; new lines end in CRLF and
// use the long header names. The values in e are written as given: the
// caller makes sure they are well-formed. m must have been parsed without
// error. It allocates nothing when dst has room for the result.
func (m *Message) AppendForward(dst []byte, e *Edits) []byte {
	b := m.Buf
	if e.RequestURI != nil && m.ruri.present() {
		dst = append(dst, b[m.startOff:m.ruri.off]...)
		dst = append(dst, e.RequestURI...)
		dst = append(dst, b[m.ruri.end:m.startEnd]...)
	} else {
		dst = append(dst, b[m.startOff:m.startEnd]...)
	}
	dst = endLine(dst)
	if e.PushVia != nil {
		dst = appendHeader(dst, "Via: ", e.PushVia)
	}
	viaHdr, contactHdr, lastRoute := -1, -1, -1
	pops := e.PopRoutes
	if e.PopRoute && pops == 0 {
		pops = 1
	}
	editRoutes := pops > 0 || e.DropLastRoute
	if m.top.v.present() && (e.RemoveTopVia || e.Received != nil || (e.RPort > 0 && e.RPort <= 65535)) {
		viaHdr = int(m.top.hdr)
	}
	if e.AppendRoute != nil {
		// Only appending needs the last Route's header: the list is
		// split here only then (or by appendRouteLine when editing it).
		if routes := m.routes(); len(routes) > 0 {
			lastRoute = int(routes[len(routes)-1].hdr)
		}
	}
	if e.Contact != nil {
		if l := m.contacts(); len(l) > 0 {
			contactHdr = int(l[0].hdr)
		}
	}
	mfHdr := int(m.first[HdrMaxForwards]) - 1
	firstRR := int(m.first[HdrRecordRoute]) - 1
	addRR := e.RecordRoute != nil || e.RecordRoute2 != nil
	firstPath := int(m.first[HdrPath]) - 1
	addPath := e.Path != nil || e.Path2 != nil
	// Lines copied as they are lie end to end in b: a run of them goes
	// out in one append, flushed before anything else is written.
	rs, re := 0, 0
	if !addRR && !addPath && !editRoutes && contactHdr < 0 && !e.MaxForwards && e.AppendRoute == nil {
		// At most the top Via's line changes (a response's edits): the
		// runs either side of it need no walk over the lines, which
		// follow each other with no gap (parseHeaders).
		if n := len(m.hdrs); n > 0 {
			rs, re = m.hdrs[0].line.off, m.hdrs[n-1].line.end
			if viaHdr >= 0 {
				h := &m.hdrs[viaHdr]
				dst = appendRun(dst, b, rs, h.line.off)
				dst = m.appendTopVia(dst, e)
				rs = h.line.end
			}
		}
		dst = appendRun(dst, b, rs, re)
		return m.appendTail(dst, e, mfHdr, firstRR, firstPath, addRR, addPath, lastRoute)
	}
	if !editRoutes && contactHdr < 0 && e.AppendRoute == nil && (!addRR || firstRR < 0) && (!addPath || firstPath < 0) {
		// The top Via's line and the Max-Forwards line change, and the
		// Record-Route or Path siplb adds goes after the headers (a new
		// request's edits): the runs around the two lines need no walk
		// over the lines either.
		return m.appendViaAndMaxForwards(dst, e, viaHdr, mfHdr, firstRR, firstPath, addRR, addPath)
	}
	for i := range m.hdrs {
		h := &m.hdrs[i]
		if !(i == firstRR && addRR) && !(i == firstPath && addPath) && !(editRoutes && h.id == HdrRoute) &&
			i != viaHdr && i != contactHdr && !(i == mfHdr && e.MaxForwards) && !(i == lastRoute && e.AppendRoute != nil) {
			if h.line.off != re {
				dst = appendRun(dst, b, rs, re)
				rs = h.line.off
			}
			re = h.line.end
			continue
		}
		dst = appendRun(dst, b, rs, re)
		rs, re = 0, 0
		if i == firstRR && addRR {
			dst = m.appendRecordRoutes(dst, e)
		}
		if i == firstPath && addPath {
			dst = appendPaths(dst, e)
		}
		if editRoutes && h.id == HdrRoute {
			dst = m.appendRouteLine(dst, i, pops, e.DropLastRoute)
			if i == lastRoute && e.AppendRoute != nil {
				dst = appendHeader(dst, "Route: ", e.AppendRoute)
			}
			continue
		}
		switch i {
		case viaHdr:
			dst = m.appendTopVia(dst, e)
		case mfHdr:
			if !e.MaxForwards {
				dst = appendLine(dst, b[h.line.off:h.line.end])
				break
			}
			dst = append(dst, b[h.line.off:h.value.off]...)
			dst = appendUint(dst, max(m.maxFwd-1, 0))
			dst = appendLine(dst, b[h.value.end:h.line.end])
		case contactHdr:
			dst = m.appendContact(dst, e.Contact)
		default:
			dst = appendLine(dst, b[h.line.off:h.line.end])
		}
		if i == lastRoute && e.AppendRoute != nil {
			dst = appendHeader(dst, "Route: ", e.AppendRoute)
		}
	}
	dst = appendRun(dst, b, rs, re)
	return m.appendTail(dst, e, mfHdr, firstRR, firstPath, addRR, addPath, lastRoute)
}

// appendViaAndMaxForwards is AppendForward past the start line and the
// pushed Via for edits that change no line but the top Via's (viaHdr, -1
// for none) and Max-Forwards (mfHdr, where e.MaxForwards): the runs of
// lines before, between and after them are copied whole, as the walk
// over the lines would copy them.
func (m *Message) appendViaAndMaxForwards(dst []byte, e *Edits, viaHdr, mfHdr, firstRR, firstPath int, addRR, addPath bool) []byte {
	b := m.Buf
	rs, re := 0, 0
	if n := len(m.hdrs); n > 0 {
		rs, re = m.hdrs[0].line.off, m.hdrs[n-1].line.end
		mf := -1
		if e.MaxForwards {
			mf = mfHdr
		}
		lines := [2]int{viaHdr, mf}
		if mf < viaHdr {
			lines = [2]int{mf, viaHdr}
		}
		for _, i := range lines {
			if i < 0 {
				continue
			}
			h := &m.hdrs[i]
			dst = appendRun(dst, b, rs, h.line.off)
			if i == viaHdr {
				dst = m.appendTopVia(dst, e)
			} else {
				dst = append(dst, b[h.line.off:h.value.off]...)
				dst = appendUint(dst, max(m.maxFwd-1, 0))
				dst = appendLine(dst, b[h.value.end:h.line.end])
			}
			rs = h.line.end
		}
	}
	dst = appendRun(dst, b, rs, re)
	return m.appendTail(dst, e, mfHdr, firstRR, firstPath, addRR, addPath, -1)
}

// appendTail writes what AppendForward adds after the header lines of m:
// the headers m lacks that e adds, the blank line and the body.
func (m *Message) appendTail(dst []byte, e *Edits, mfHdr, firstRR, firstPath int, addRR, addPath bool, lastRoute int) []byte {
	b := m.Buf
	if e.MaxForwards && mfHdr < 0 {
		dst = append(dst, "Max-Forwards: 70\r\n"...)
	}
	if addRR && firstRR < 0 {
		dst = m.appendRecordRoutes(dst, e)
	}
	if addPath && firstPath < 0 {
		dst = appendPaths(dst, e)
	}
	if e.AppendRoute != nil && lastRoute < 0 {
		dst = appendHeader(dst, "Route: ", e.AppendRoute)
	}
	if e.ContentLength && m.first[HdrContentLength] == 0 {
		dst = append(dst, "Content-Length: "...)
		dst = appendUint(dst, m.body.end-m.body.off)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, b[m.body.off:m.body.end]...)
}

func (m *Message) appendRecordRoutes(dst []byte, e *Edits) []byte {
	if e.RecordRoute != nil {
		dst = appendHeader(dst, "Record-Route: ", e.RecordRoute)
	}
	if e.RecordRoute2 != nil {
		dst = appendHeader(dst, "Record-Route: ", e.RecordRoute2)
	}
	return dst
}

// appendPaths writes the Path values of e, each on a line of its own.
func appendPaths(dst []byte, e *Edits) []byte {
	if e.Path != nil {
		dst = appendHeader(dst, "Path: ", e.Path)
	}
	if e.Path2 != nil {
		dst = appendHeader(dst, "Path: ", e.Path2)
	}
	return dst
}

// appendTopVia writes the header line holding the top Via with the Via
// edits of e applied.
func (m *Message) appendTopVia(dst []byte, e *Edits) []byte {
	if e.RemoveTopVia {
		// Parse stopped the top value at its comma or the line's end, so
		// the rest of the line needs no split.
		h := &m.hdrs[m.top.hdr]
		if int(m.topNx) >= h.value.end {
			return dst // the line's only value
		}
		rest := skipWS(m.Buf, int(m.topNx)+1, h.value.end)
		dst = append(dst, m.Buf[h.line.off:m.top.v.off]...)
		return appendLine(dst, m.Buf[rest:h.line.end])
	}
	b := m.Buf
	h := &m.hdrs[m.top.hdr]
	tv := &m.topVia
	type patch struct {
		off, end int
		kind     uint8 // 1 rport value, 2 "=" and rport value, 3 received value, 4 ";received=" and value
	}
	var ps [2]patch
	n := 0
	if e.RPort > 0 && e.RPort <= 65535 && tv.rportName.present() {
		if tv.rportVal.present() {
			ps[n] = patch{tv.rportVal.off, tv.rportVal.end, 1}
		} else {
			ps[n] = patch{tv.rportName.end, tv.rportName.end, 2}
		}
		n++
	}
	if e.Received != nil {
		if tv.received.present() {
			ps[n] = patch{tv.received.off, tv.received.end, 3}
		} else {
			end := m.top.v.end
			ps[n] = patch{end, end, 4}
		}
		n++
	}
	if n == 2 && ps[1].off < ps[0].off {
		ps[0], ps[1] = ps[1], ps[0]
	}
	pos := h.line.off
	for _, p := range ps[:n] {
		dst = append(dst, b[pos:p.off]...)
		switch p.kind {
		case 1:
			dst = appendUint(dst, e.RPort)
		case 2:
			dst = append(dst, '=')
			dst = appendUint(dst, e.RPort)
		case 3:
			dst = append(dst, e.Received...)
		case 4:
			dst = append(dst, ";received="...)
			dst = append(dst, e.Received...)
		}
		pos = p.end
	}
	return appendLine(dst, b[pos:h.line.end])
}

// appendRouteLine writes Route header line i less the values that the first
// pops values and, with dropLast, the last value of the message cover. A line
// left with no value is not written.
func (m *Message) appendRouteLine(dst []byte, i, pops int, dropLast bool) []byte {
	b := m.Buf
	h := &m.hdrs[i]
	routes := m.routes()
	first, last := -1, -1
	kept := 0
	for j := range routes {
		if int(routes[j].hdr) != i {
			continue
		}
		if first < 0 {
			first = j
		}
		last = j
		if j >= pops && !(dropLast && j == len(routes)-1) {
			kept++
		}
	}
	if first < 0 || kept == last-first+1 {
		return appendLine(dst, b[h.line.off:h.line.end])
	}
	if kept == 0 {
		return dst
	}
	dst = append(dst, b[h.line.off:routes[first].v.off]...)
	sep := false
	for j := first; j <= last; j++ {
		if j < pops || (dropLast && j == len(routes)-1) {
			continue
		}
		if sep {
			dst = append(dst, ", "...)
		}
		v := routes[j].v
		dst = append(dst, b[v.off:v.end]...)
		sep = true
	}
	return appendLine(dst, b[routes[last].v.end:h.line.end])
}

// appendContact writes the line of the first Contact with its URI replaced.
func (m *Message) appendContact(dst []byte, uri []byte) []byte {
	b := m.Buf
	c := m.contacts()[0]
	v, h := c.v, &m.hdrs[c.hdr]
	na, ok := parseNameAddr(b, v.off, v.end)
	if !ok {
		return appendLine(dst, b[h.line.off:h.line.end])
	}
	dst = append(dst, b[h.line.off:na.uri.off]...)
	if !na.angle {
		dst = append(dst, '<')
	}
	dst = append(dst, uri...)
	if !na.angle {
		dst = append(dst, '>')
	}
	return appendLine(dst, b[na.uri.end:h.line.end])
}

// appendUint appends n >= 0 in decimal, as strconv.AppendUint does; the
// values edits write (a Max-Forwards, a port, a length, a status) have at
// most five digits, written here with no call and no buffer to copy.
func appendUint(dst []byte, n int) []byte {
	switch {
	case n < 0:
		// Never the case: the callers write counts and ports.
	case n < 10:
		return append(dst, byte('0'+n))
	case n < 100:
		return append(dst, byte('0'+n/10), byte('0'+n%10))
	case n < 1000:
		return append(dst, byte('0'+n/100), byte('0'+n/10%10), byte('0'+n%10))
	case n < 10000:
		return append(dst, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
	case n < 100000:
		return append(dst, byte('0'+n/10000), byte('0'+n/1000%10), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
	}
	return strconv.AppendUint(dst, uint64(n), 10)
}

// appendHeader writes "name value CRLF"; name includes ": ".
func appendHeader(dst []byte, name string, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// appendLine copies a header line, adding CRLF when it lacks a terminator
// (the last line of a datagram that ends without the blank line).
// appendRun appends the header lines b[rs:re] (none when rs == re): only
// the last can lack its line terminator, the one appendLine adds.
func appendRun(dst, b []byte, rs, re int) []byte {
	if rs == re {
		return dst
	}
	return appendLine(dst, b[rs:re])
}

func appendLine(dst, line []byte) []byte {
	dst = append(dst, line...)
	return endLine(dst)
}

func endLine(dst []byte) []byte {
	if len(dst) == 0 || dst[len(dst)-1] != '\n' {
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// AppendResponse appends to dst a stateless response to req: the status
// line, every Via line of req, From, To (with ";tag=<toTag>" appended when
// req's To has no tag and toTag is not nil), Call-ID, CSeq, then extra (raw
// header lines each ending in CRLF, may be nil), then "Content-Length: 0"
// and the blank line (RFC 3261 §8.2.6.2, §16.7). req may be a message whose
// Parse failed: the headers found before the defect are echoed, so that a
// 400 reaches the sender.
func AppendResponse(dst []byte, req *Message, status int, reason string, toTag []byte, extra []byte) []byte {
	dst = append(dst, "SIP/2.0 "...)
	dst = appendUint(dst, status)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	dst = append(dst, "\r\n"...)
	b := req.Buf
	for i := range req.hdrs {
		if h := &req.hdrs[i]; h.id == HdrVia {
			dst = appendLine(dst, b[h.line.off:h.line.end])
		}
	}
	for _, id := range [...]HeaderID{HdrFrom, HdrTo, HdrCallID, HdrCSeq} {
		for i := range req.hdrs {
			h := &req.hdrs[i]
			if h.id != id {
				continue
			}
			if id == HdrTo && toTag != nil {
				if tag, err := parseFromTo(b, h.value, ErrMalformedTo); err == nil && !tag.present() {
					dst = append(dst, b[h.line.off:h.value.end]...)
					dst = append(dst, ";tag="...)
					dst = append(dst, toTag...)
					dst = append(dst, "\r\n"...)
					break
				}
			}
			dst = appendLine(dst, b[h.line.off:h.line.end])
			break
		}
	}
	dst = append(dst, extra...)
	return append(dst, "Content-Length: 0\r\n\r\n"...)
}
