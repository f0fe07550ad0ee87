package parser

import (
	"bytes"
	"strings"
	"testing"
)

// fastPathSeeds are values of the headers whose parsing has fast paths:
// the spellings the fast paths take and their near misses.
var fastPathSeeds = []string{
	"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds0001;rport",
	"SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKnashds8;received=198.51.100.7",
	"SIP/2.0/TCP host.example.com;rport=5070;branch=z9hG4bK1, SIP/2.0/UDP b",
	"SIP/2.0/UDP  h:65535;branch=\"q\";rport;rport=1;branch=x",
	"SIP/2.0/SCTP [2001:db8::1]:5060 ; branch = z9 ;rport ,x",
	"SIP/2.0/WSS h;rport=;branch=",
	"SIP/2.0/UDP h:65536;branch=z",
	"SIP/2.0/UDP h:;branch=z",
	"SIP/2.0/UDP h:0001;ttl=9;maddr=m;received=r",
	"SIP / 2.0 / UDP h",
	"SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbench;rport=40000;received=127.0.0.1",
	"SIP/2.0/UDP h;rport=65536;received=1.2.3.4 , SIP/2.0/UDP b",
	"SIP/2.0/UDP h;rport=000005060;received=\"q\"",
	"SIP/2.0/UDP h;rport=5060x;received=;rport=5 ;branch=x",
	"SIP/2.0/UDP h;received=[2001:db8::1];rport=1,x",
	`"Alice" <sip:alice@atlanta.example.com>;tag=1928301774`,
	`<sip:bob@pbx.example.com>`,
	`sip:a@b;tag=x;tag=y`,
	`Bob <sip:b@c>;tag=;x`,
	`<sip:b@c>;tag="q";x=1`,
	`<sip:b@c> ;tag=1 ;foo`,
	`<sip:b@c>;tag=1 x`,
	`<sip:b@c>;TAG=2`,
	"bob@pbx.example.com;transport=udp",
	"sip:bob@example.com",
	"sip:127.0.0.1:5060;lr;lbf=u7f000001009c40x0000000000000000u01a2b3c4d5e6f7a8",
	"sips:alice:pw@[2001:db8::1]:5061;transport=tls;maddr=m?subject=x&y=z",
	"sip:a?b@host.example.com:70;lr?h=v",
	"SIP:+1555@gw;user=phone", "tel:+15550100;phone-context=x", "mailto:a@b",
	`"A" <sip:a@b;lr>;tag=1`, "<sip:a@b>", " sip:a@b ", "x <sips:c@d:1>",
	"314159 INVITE",
	"1 INVITE",
}

// fastPathInputs returns the seeds and, for each, every variant with one
// byte replaced by one of the bytes the grammar turns on, or cut short.
func fastPathInputs() [][]byte {
	var ins [][]byte
	special := []byte(" \t\r\n;,=\":<>[]/?@\\aZ09-._\x00\x7f\x80")
	for _, s := range fastPathSeeds {
		ins = append(ins, []byte(s))
		for i := range len(s) {
			ins = append(ins, []byte(s[:i]))
			for _, c := range special {
				b := []byte(s)
				b[i] = c
				ins = append(ins, b)
			}
		}
	}
	return ins
}

// checkFastPaths fails where the parser with its fast paths and the
// reference copy of it without them disagree on in.
func checkFastPaths(t *testing.T, in []byte) {
	t.Helper()
	var v1, v2 viaSpans
	vs1, ve1, n1, ok1 := parseVia(&v1, in, 0, len(in))
	vs2, ve2, n2, ok2 := refParseVia(&v2, in, 0, len(in))
	if ok1 != ok2 || (ok1 && (vs1 != vs2 || ve1 != ve2 || n1 != n2 || v1 != v2)) {
		t.Errorf("parseVia(%q) = %v %v %v %v %+v, reference %v %v %v %v %+v", in, vs1, ve1, n1, ok1, v1, vs2, ve2, n2, ok2, v2)
	}
	for _, lws := range []bool{false, true} {
		h1, p1, x1, o1 := parseHostPort(in, 0, len(in), lws)
		h2, p2, x2, o2 := refParseHostPort(in, 0, len(in), lws)
		if o1 != o2 || (o1 && (h1 != h2 || p1 != p2 || x1 != x2)) {
			t.Errorf("parseHostPort(%q, %v) = %v %v %v %v, reference %v %v %v %v", in, lws, h1, p1, x1, o1, h2, p2, x2, o2)
		}
	}
	if k := bytes.IndexByte(in, ';'); k >= 0 {
		a1, b1, c1, d1 := nextParam(in, k, len(in))
		a2, b2, c2, d2 := refNextParam(in, k, len(in))
		if a1 != a2 || b1 != b2 || c1 != c2 || d1 != d2 {
			t.Errorf("nextParam(%q) = %v %v %v %v, reference %v %v %v %v", in[k:], a1, b1, c1, d1, a2, b2, c2, d2)
		}
	}
	if got, want := checkSIPHost(in), refCheckSIPHost(in); got != want {
		t.Errorf("checkSIPHost(%q) = %v, reference %v", in, got, want)
	}
	var u1, u2 URI
	if e1, e2 := ParseURI(&u1, in), refParseURIFull(&u2, in); e1 != e2 || !sameURI(&u1, &u2) {
		t.Errorf("ParseURI(%q) = %+v %v, reference %+v %v", in, u1, e1, u2, e2)
	}
	checkCSeqAgrees(t, "INVITE sip:a@b SIP/2.0", in)
	t1, e1 := parseFromTo(in, span{0, len(in)}, ErrMalformedFrom)
	t2, e2 := refParseFromTo(in, span{0, len(in)}, ErrMalformedFrom)
	if t1 != t2 || e1 != e2 {
		t.Errorf("parseFromTo(%q) = %v %v, reference %v %v", in, t1, e1, t2, e2)
	}
}

// TestFastPathsAgree compares the fast paths with the reference on the
// seeds and their one-byte variants.
func TestFastPathsAgree(t *testing.T) {
	for _, in := range fastPathInputs() {
		checkFastPaths(t, in)
	}
}

// FuzzFastPaths: go test -run '^$' -fuzz FuzzFastPaths ./parser
func FuzzFastPaths(f *testing.F) {
	for _, s := range fastPathSeeds {
		f.Add([]byte(s))
		f.Add([]byte(strings.ToUpper(s)))
	}
	f.Fuzz(checkFastPaths)
}

// TestCSeqFastPathAgrees compares parseCSeq with the reference for
// request lines of several methods and CSeq values near the fast path.
func TestCSeqFastPathAgrees(t *testing.T) {
	starts := []string{"INVITE sip:a@b SIP/2.0", "ACK sip:a@b SIP/2.0", "X.y sip:a@b SIP/2.0", "SIP/2.0 200 OK"}
	values := []string{"314159 INVITE", "1 ACK", "1  INVITE", "1\tINVITE", "1 INVITEX", "1 INVIT", "1 invite", "1 X.y", "1", "1 ", "12a INVITE",
		"2147483647 INVITE", "2147483648 INVITE", " INVITE", "1 INVITE x", "1 BYE"}
	for _, sl := range starts {
		for _, v := range values {
			checkCSeqAgrees(t, sl, []byte(v))
		}
	}
}

// checkCSeqAgrees compares parseCSeq with the reference on the CSeq value
// v of a message whose start line is sl.
func checkCSeqAgrees(t *testing.T, sl string, v []byte) {
	t.Helper()
	in := []byte(sl + "\r\nCSeq: " + string(v))
	var m1, m2 Message
	le, _ := lineEnd(in, 0)
	if err := m1.parseStartLine(in, 0, le); err != nil {
		t.Fatalf("parseStartLine(%q): %v", sl, err)
	}
	m2 = m1
	vs := len(sl) + len("\r\nCSeq: ")
	e1 := m1.parseCSeq(in, span{vs, len(in)})
	e2 := m2.refParseCSeq(in, span{vs, len(in)})
	if e1 != e2 || m1.cseqNum != m2.cseqNum || m1.cseqName != m2.cseqName || m1.cseqMethod != m2.cseqMethod {
		t.Errorf("parseCSeq(%q) after %q = %v %d %v %v, reference %v %d %v %v", v, sl, e1, m1.cseqNum, m1.cseqName, m1.cseqMethod, e2, m2.cseqNum, m2.cseqName, m2.cseqMethod)
	}
}

// sameURI reports whether a and b have the same fields, each slice the
// same bytes at the same place (nil where the other is nil).
func sameURI(a, b *URI) bool {
	same := func(x, y []byte) bool {
		if (x == nil) != (y == nil) || len(x) != len(y) || cap(x) != cap(y) {
			return false
		}
		return len(x) == 0 || &x[0] == &y[0]
	}
	return same(a.Scheme, b.Scheme) && same(a.User, b.User) && same(a.Host, b.Host) && a.Port == b.Port &&
		same(a.Params, b.Params) && same(a.Transport, b.Transport) && same(a.Maddr, b.Maddr) && a.LR == b.LR && same(a.Raw, b.Raw)
}
