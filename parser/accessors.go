package parser

// IsRequest reports whether m is a request (false for a response).
func (m *Message) IsRequest() bool { return m.status == 0 }

// Method returns the request method, MethodUnknown for an extension method
// and for a response.
func (m *Message) Method() Method { return m.method }

// MethodName returns the request method as written, nil for a response.
func (m *Message) MethodName() []byte { return m.methodName.bytes(m.Buf) }

// RequestURI returns the raw Request-URI, nil for a response.
func (m *Message) RequestURI() []byte { return m.ruri.bytes(m.Buf) }

// RURI parses the Request-URI. For a response it returns ErrMalformedURI.
func (m *Message) RURI() (URI, error) {
	var u URI
	if !m.ruri.present() || !parseURI(&u, m.Buf[:m.ruri.end], m.ruri.off) {
		return URI{}, ErrMalformedURI
	}
	return u, nil
}

// StatusCode returns the status code of a response, 0 for a request.
func (m *Message) StatusCode() int { return m.status }

// Reason returns the reason phrase of a response (possibly empty), nil for a request.
func (m *Message) Reason() []byte {
	if m.status == 0 {
		return nil
	}
	return m.Buf[m.reason.off:m.reason.end:m.reason.end]
}

// CallID returns the Call-ID value.
func (m *Message) CallID() []byte { return m.callID.bytes(m.Buf) }

// CSeq returns the CSeq number and method (MethodUnknown for an extension method).
func (m *Message) CSeq() (num uint32, method Method) { return m.cseqNum, m.cseqMethod }

// CSeqMethodName returns the CSeq method as written.
func (m *Message) CSeqMethodName() []byte { return m.cseqName.bytes(m.Buf) }

// FromTag returns the tag parameter of From, nil if none.
func (m *Message) FromTag() []byte { return m.fromTag.bytes(m.Buf) }

// ToTag returns the tag parameter of To, nil if none.
func (m *Message) ToTag() []byte { return m.toTag.bytes(m.Buf) }

// FromURI parses the URI of From.
func (m *Message) FromURI() (URI, error) { return m.headerURI(m.first[HdrFrom]) }

// ToURI parses the URI of To.
func (m *Message) ToURI() (URI, error) { return m.headerURI(m.first[HdrTo]) }

func (m *Message) headerURI(idx int32) (URI, error) {
	if idx == 0 {
		return URI{}, ErrNoSuchValue
	}
	return m.valueURI(m.hdrs[idx-1].value)
}

func (m *Message) valueURI(v span) (URI, error) {
	var u URI
	na, ok := parseNameAddr(m.Buf, v.off, v.end)
	if !ok || !parseURI(&u, m.Buf[:na.uri.end], na.uri.off) {
		return URI{}, ErrMalformedURI
	}
	return u, nil
}

// MaxForwards returns the Max-Forwards value and whether the header is present.
func (m *Message) MaxForwards() (n int, present bool) {
	return m.maxFwd, m.first[HdrMaxForwards] != 0
}

// ContentLength returns the Content-Length value and whether the header is present.
func (m *Message) ContentLength() (n int, present bool) {
	return m.clen, m.first[HdrContentLength] != 0
}

// NumVia returns the number of Via values, after splitting comma lists
// (a value where the list became malformed counts as one, see Via).
func (m *Message) NumVia() int { return len(m.vias()) }

// Via parses the i-th Via value, 0 being the top one, which Parse has
// checked. It returns ErrMalformedVia on bad syntax and ErrNoSuchValue when i
// is out of range.
func (m *Message) Via(i int) (Via, error) {
	var v Via
	if i == 0 && m.top.v.present() {
		m.topVia.fill(&v, m.Buf)
		return v, nil
	}
	l := m.vias()
	if i < 0 || i >= len(l) {
		return v, ErrNoSuchValue
	}
	if l[i].bad {
		return v, ErrMalformedVia
	}
	var s viaSpans
	_, _, next, ok := parseVia(&s, m.Buf, l[i].v.off, l[i].v.end)
	if !ok || next != l[i].v.end {
		return v, ErrMalformedVia
	}
	s.fill(&v, m.Buf)
	return v, nil
}

// ViaIter walks the Via values top first, parsing each as it comes. Unlike
// NumVia and Via(i) it never splits the whole list first, so a proxy that
// reads only the top one or two values (a response's next hop) pays for
// those alone. Make one with Message.Vias.
type ViaIter struct {
	m   *Message
	hdr int // the header holding the next value; -1 when done
	pos int // where the next value starts in it
	err error
}

// Vias returns an iterator at the top Via.
func (m *Message) Vias() ViaIter {
	if !m.top.v.present() {
		return ViaIter{m: m, hdr: -1}
	}
	return ViaIter{m: m, hdr: int(m.top.hdr), pos: m.hdrs[m.top.hdr].value.off}
}

// Next parses the next Via value into v. It returns false at the end of
// the list, and at a malformed value, after which Err returns
// ErrMalformedVia: the values Next accepts are those Via(i) accepts.
func (it *ViaIter) Next(v *Via) bool { return it.next(v) }

// Pass moves past the next Via value as Next does, without filling a Via:
// for the top value, which Parse has checked and TopVia returns, it costs
// no parsing. It returns what Next would.
func (it *ViaIter) Pass() bool { return it.next(nil) }

// next is Next, filling v unless it is nil.
func (it *ViaIter) next(v *Via) bool {
	if it.hdr < 0 {
		return false
	}
	m := it.m
	h := &m.hdrs[it.hdr]
	var next int
	if it.hdr == int(m.top.hdr) && it.pos == h.value.off {
		if v != nil {
			m.topVia.fill(v, m.Buf)
		}
		next = int(m.topNx)
	} else {
		var s viaSpans
		_, _, nx, ok := parseVia(&s, m.Buf, it.pos, h.value.end)
		if !ok {
			it.hdr, it.err = -1, ErrMalformedVia
			return false
		}
		if v != nil {
			s.fill(v, m.Buf)
		}
		next = nx
	}
	if next < h.value.end {
		it.pos = next + 1 // past the comma: the header holds another value
		return true
	}
	cur := it.hdr
	it.hdr = -1
	for i := cur + 1; i < len(m.hdrs); i++ {
		if m.hdrs[i].id == HdrVia {
			it.hdr, it.pos = i, m.hdrs[i].value.off
			break
		}
	}
	return true
}

// Err returns ErrMalformedVia if Next stopped at a malformed value, else nil.
func (it *ViaIter) Err() error { return it.err }

// TopVia returns the top Via, which Parse has checked.
func (m *Message) TopVia() Via {
	var v Via
	m.topVia.fill(&v, m.Buf)
	return v
}

// NumRoute returns the number of Route values (a value where the list
// became malformed counts as one, see Route).
func (m *Message) NumRoute() int { return len(m.routes()) }

// Route parses the URI of the i-th Route value, 0 being the top one. It
// returns ErrMalformedRoute for the value where the comma list became
// malformed (the last one), ErrMalformedURI for a value whose URI is bad and
// ErrNoSuchValue when i is out of range.
func (m *Message) Route(i int) (URI, error) { return m.listURI(listRoute, i) }

// NumRecordRoute returns the number of Record-Route values, counted as
// NumRoute counts.
func (m *Message) NumRecordRoute() int { return len(m.rrs()) }

// RecordRoute parses the URI of the i-th Record-Route value; its errors are
// those of Route, with ErrMalformedRecordRoute.
func (m *Message) RecordRoute(i int) (URI, error) { return m.listURI(listRecordRoute, i) }

// NumContact returns the number of Contact values ("*" counts as one),
// counted as NumRoute counts.
func (m *Message) NumContact() int { return len(m.contacts()) }

// Contact parses the URI of the i-th Contact value; its errors are those of
// Route, with ErrMalformedContact. For the wildcard "*" (REGISTER, RFC 3261
// §10.2.2) it returns ErrWildcardContact.
func (m *Message) Contact(i int) (URI, error) {
	l := m.contacts()
	if i >= 0 && i < len(l) && !l[i].bad {
		if v := l[i].v; v.end-v.off == 1 && m.Buf[v.off] == '*' {
			return URI{}, ErrWildcardContact
		}
	}
	return m.listURI(listContact, i)
}

func (m *Message) listURI(k, i int) (URI, error) {
	l := m.list(k)
	if i < 0 || i >= len(l) {
		return URI{}, ErrNoSuchValue
	}
	if l[i].bad {
		return URI{}, listErrs[k]
	}
	return m.valueURI(l[i].v)
}

// Body returns the body: Content-Length bytes after the blank line, or for
// a datagram without Content-Length everything after it. Empty, not nil,
// when there is no body.
func (m *Message) Body() []byte { return m.Buf[m.body.off:m.body.end:m.body.end] }

// Header returns the value of the first header with id (its first value for
// Via, Route, Record-Route and Contact; where that list is malformed from
// its first value on, the rest of the header's value), nil if absent. For
// HdrOther it returns nil: use HeaderAt or HeaderByName.
func (m *Message) Header(id HeaderID) []byte {
	if id == HdrOther || id >= numHeaderIDs {
		return nil
	}
	idx := m.first[id]
	if idx == 0 {
		return nil
	}
	var l []hval
	switch id {
	case HdrVia:
		if m.top.v.present() {
			return m.top.v.bytes(m.Buf)
		}
		l = m.vias()
	case HdrRoute:
		l = m.routes()
	case HdrRecordRoute:
		l = m.rrs()
	case HdrContact:
		l = m.contacts()
	default:
		return m.hdrs[idx-1].value.bytesEmpty(m.Buf)
	}
	return l[0].v.bytesEmpty(m.Buf)
}

// HeaderByName returns the value of the first header named name (compared
// without regard to case; compact forms match their long forms), nil if absent.
func (m *Message) HeaderByName(name []byte) []byte {
	id := LookupHeader(name)
	if id != HdrOther {
		return m.Header(id)
	}
	for i := m.FirstOther(); i < len(m.hdrs); i++ {
		h := &m.hdrs[i]
		if h.id == HdrOther && foldEqBytes(m.Buf[h.name.off:h.name.end], name) {
			return h.value.bytesEmpty(m.Buf)
		}
	}
	return nil
}

// NumHeaders returns the number of header fields (lines, folded ones joined).
func (m *Message) NumHeaders() int { return len(m.hdrs) }

// FirstOther returns the index of the first header whose name the parser
// does not know (HdrOther), or NumHeaders() when every name is known: a
// search for such a header by its name starts there.
func (m *Message) FirstOther() int {
	if m.other == 0 {
		return len(m.hdrs)
	}
	return int(m.other) - 1
}

// HeaderAt returns the i-th header: its ID, its name as written and its
// whole value (comma lists unsplit; folded lines keep their CRLF).
func (m *Message) HeaderAt(i int) (id HeaderID, name, value []byte) {
	if i < 0 || i >= len(m.hdrs) {
		return HdrOther, nil, nil
	}
	h := &m.hdrs[i]
	return h.id, h.name.bytes(m.Buf), h.value.bytesEmpty(m.Buf)
}

// bytesEmpty is bytes for a span known to be present (possibly empty).
func (s span) bytesEmpty(b []byte) []byte { return b[s.off:s.end:s.end] }

func foldEqBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower[a[i]] != lower[b[i]] {
			return false
		}
	}
	return true
}
