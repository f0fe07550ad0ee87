package parser

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// refAppendForward is AppendForward as it was before its path for
// messages whose only edited line is the top Via's: every header line
// walked. The reference that path must agree with.
func (m *Message) refAppendForward(dst []byte, e *Edits) []byte {
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

// editVariants are the Edits AppendForward is asked for: a response's
// (top Via only, with or without Content-Length), the top Via's other
// edits, and a few that take the walk, for contrast.
func editVariants() []Edits {
	return []Edits{
		{},
		{RemoveTopVia: true},
		{RemoveTopVia: true, ContentLength: true},
		{ContentLength: true},
		{Received: []byte("192.0.2.1")},
		{Received: []byte("192.0.2.1"), RPort: 5060},
		{RPort: 40000, ContentLength: true},
		{RPort: 70000},
		{PushVia: []byte("SIP/2.0/UDP lb:5060;branch=z9hG4bKx"), RemoveTopVia: true},
		{RequestURI: []byte("sip:x@y"), RemoveTopVia: true},
		{MaxForwards: true, RecordRoute: []byte("<sip:lb;lr>")},
		{Contact: []byte("sip:c@d"), RemoveTopVia: true},
		{PopRoute: true, AppendRoute: []byte("<sip:r>")},
		// A new request's edits, which change the top Via's and the
		// Max-Forwards lines only (appendViaAndMaxForwards) where the
		// message has no Record-Route or Path of its own.
		{MaxForwards: true},
		{MaxForwards: true, ContentLength: true},
		{PushVia: []byte("SIP/2.0/UDP lb:5060;branch=z9hG4bKx;rport"), MaxForwards: true, Received: []byte("192.0.2.1"), RPort: 40000,
			RecordRoute: []byte("<sip:lb;lr;lbf=u1>")},
		{MaxForwards: true, RPort: 5060, RecordRoute: []byte("<sip:lb;lr>"), RecordRoute2: []byte("<sip:lb2;lr>")},
		{MaxForwards: true, Received: []byte("2001:db8::1"), Path: []byte("<sip:lb;lr>"), Path2: []byte("<sip:lb2;lr>")},
		{Received: []byte("192.0.2.1"), RecordRoute: []byte("<sip:lb;lr>")},
		{RemoveTopVia: true, MaxForwards: true, Path: []byte("<sip:lb;lr>")},
	}
}

// checkAppendForward compares AppendForward with refAppendForward on in,
// if it parses, for every edit variant.
func checkAppendForward(t *testing.T, in []byte) {
	t.Helper()
	var m1, m2 Message
	if Parse(&m1, in) != nil {
		return
	}
	Parse(&m2, in)
	for _, e := range editVariants() {
		e2 := e
		got := m1.AppendForward(nil, &e)
		want := m2.refAppendForward(nil, &e2)
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendForward(%q, %+v) =\n%q\nreference\n%q", in, e, got, want)
		}
	}
}

// appendForwardInputs are the valid test messages and, for each, its
// variants with one header line cut, a Via line doubled or moved, and
// the end of the header section cut short (the last line without its
// terminator).
func appendForwardInputs(t testing.TB) [][]byte {
	files, err := filepath.Glob("testdata/valid/*.sip")
	if err != nil || len(files) == 0 {
		t.Fatalf("testdata: %v (%d files)", err, len(files))
	}
	extra := []string{
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
		"SIP/2.0 200 OK\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1;rport=5;received=1.2.3.4",
		"SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP a;rport\nVia: SIP/2.0/UDP b\nFrom: <sip:a@b>\nTo: <sip:c@d>\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 3\n\nabcdef",
		"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n  ;branch=z9hG4bK1 ,\r\n SIP/2.0/TCP c\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContact: <sip:a@h>\r\n\r\n",
	}
	var ins [][]byte
	for _, s := range extra {
		ins = append(ins, []byte(s))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, b)
	}
	var out [][]byte
	for _, b := range ins {
		out = append(out, b)
		hdr := b
		if k := bytes.Index(b, []byte("\r\n\r\n")); k >= 0 {
			hdr = b[:k+2]
		}
		lines := bytes.SplitAfter(hdr, []byte("\n"))
		for i := 1; i < len(lines); i++ {
			cut := bytes.Join([][]byte{bytes.Join(lines[:i], nil), bytes.Join(lines[i+1:], nil), b[len(hdr):]}, nil)
			out = append(out, cut)
			dup := bytes.Join([][]byte{bytes.Join(lines[:i+1], nil), lines[i], bytes.Join(lines[i+1:], nil), b[len(hdr):]}, nil)
			out = append(out, dup)
			moved := bytes.Join([][]byte{lines[0], lines[i], bytes.Join(lines[1:i], nil), bytes.Join(lines[i+1:], nil), b[len(hdr):]}, nil)
			out = append(out, moved)
		}
		out = append(out, bytes.TrimRight(hdr, "\r\n"))
	}
	return out
}

// TestAppendForwardAgrees compares AppendForward with the walk over every
// line on the test messages and their variants.
func TestAppendForwardAgrees(t *testing.T) {
	n := 0
	for _, in := range appendForwardInputs(t) {
		var m Message
		if Parse(&m, in) == nil {
			n++
		}
		checkAppendForward(t, in)
	}
	if n < 100 {
		t.Fatalf("only %d inputs parse", n)
	}
}

// FuzzAppendForward: go test -run '^$' -fuzz FuzzAppendForward ./parser
func FuzzAppendForward(f *testing.F) {
	for _, in := range appendForwardInputs(f) {
		f.Add(in)
	}
	f.Fuzz(checkAppendForward)
}
