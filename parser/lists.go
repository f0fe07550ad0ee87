package parser

import "bytes"

// The comma lists a proxy reads, split on first use (see Message.list).
const (
	listVia = iota
	listRoute
	listRecordRoute
	listContact
	numLists
)

// listIDs and listErrs give each list its header and the error its
// accessor returns for a value that cannot be split off.
var (
	listIDs  = [numLists]HeaderID{HdrVia, HdrRoute, HdrRecordRoute, HdrContact}
	listErrs = [numLists]*Error{ErrMalformedVia, ErrMalformedRoute, ErrMalformedRecordRoute, ErrMalformedContact}
)

// list returns the values of list k, splitting its headers on first use.
func (m *Message) list(k int) []hval {
	if m.split&(1<<k) == 0 {
		m.splitList(k)
	}
	return m.lists[k]
}

func (m *Message) vias() []hval     { return m.list(listVia) }
func (m *Message) routes() []hval   { return m.list(listRoute) }
func (m *Message) rrs() []hval      { return m.list(listRecordRoute) }
func (m *Message) contacts() []hval { return m.list(listContact) }

// splitList splits every header of list k, in message order, into
// m.lists[k]. It stops at the first value that cannot be split off, which
// it keeps as a bad value.
func (m *Message) splitList(k int) {
	id := listIDs[k]
	dst := m.lists[k][:0]
	if idx := m.first[id]; idx != 0 {
		for i := int(idx - 1); i < len(m.hdrs); i++ {
			if m.hdrs[i].id != id {
				continue
			}
			var ok bool
			if dst, ok = m.splitHeader(dst, i); !ok {
				break
			}
		}
	}
	m.lists[k] = dst
	m.split |= 1 << k
}

// splitHeader appends the top-level comma-separated values of header hi to
// dst. Quoted strings and <> enclosures are respected. An empty value, an
// empty parameter (RFC 4475 §3.1.2.1), an unterminated quote or bracket, or
// a "?" outside <> (RFC 3261 §20: such a URI must be enclosed; RFC 4475
// §3.1.2.13) ends the list: the value holding it is appended as a bad value
// and ok is false.
func (m *Message) splitHeader(dst []hval, hi int) (_ []hval, ok bool) {
	b := m.Buf
	h := &m.hdrs[hi]
	i, end := h.value.off, h.value.end
	for {
		s := skipWS(b, i, end)
		j, ok := splitValue(b, s, end)
		if !ok {
			return append(dst, hval{hdr: int32(hi), bad: true, v: span{s, end}}), false
		}
		vs, ve := trimWS(b, s, j)
		if vs == ve {
			return append(dst, hval{hdr: int32(hi), bad: true, v: span{s, end}}), false
		}
		dst = append(dst, hval{hdr: int32(hi), v: span{vs, ve}})
		if j >= end {
			return dst, true
		}
		i = j + 1
	}
}

// splitValue returns the end of the value that starts at b[j], before end:
// the index of the comma that ends it, or end.
func splitValue(b []byte, j, end int) (int, bool) {
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
				return end, false
			}
			continue
		case '<':
			k := bytes.IndexByte(b[j:end], '>')
			if k < 0 {
				return end, false
			}
			j += k
		case '>', '?':
			return end, false
		case ',':
			return j, true
		case ';':
			k := skipWS(b, j+1, end)
			if k >= end || b[k] == ';' || b[k] == ',' {
				return end, false
			}
		}
		j++
	}
	return end, true
}
