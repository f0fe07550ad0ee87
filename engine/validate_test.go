package engine

import (
	"strings"
	"testing"

	"github.com/siplb/siplb/balance"
)

func TestValidateRequest(t *testing.T) {
	f := newTestForwarder(t)
	req := func(ruri string, extra ...string) []byte {
		lines := []string{"INVITE " + ruri + " SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKv;rport",
			"Max-Forwards: 70", "From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>", "Call-ID: v@x", "CSeq: 1 INVITE"}
		return sip(append(append(lines, extra...), "Content-Length: 0")...)
	}
	for _, tc := range []struct {
		name        string
		in          []byte
		status      int    // 0: forwarded
		unsupported string // the Unsupported header's value
	}{
		{name: "sip", in: req("sip:b@example.com")},
		{name: "scheme in upper case", in: req("SIP:b@example.com")},
		{name: "tel", in: req("tel:+15551234567")},
		{name: "mailto", in: req("mailto:b@example.com"), status: 416},
		{name: "http", in: req("http://example.com/x"), status: 416},
		{name: "im", in: req("im:b@example.com"), status: 416},
		{name: "proxy-require unknown", in: req("sip:b@example.com", "Proxy-Require: foo, sec-agree"), status: 420, unsupported: "foo, sec-agree"},
		{name: "proxy-require two headers", in: req("sip:b@example.com", "Proxy-Require: foo", "Proxy-Require: bar"), status: 420, unsupported: "foo, bar"},
		{name: "require is the UAS's business", in: req("sip:b@example.com", "Require: 100rel")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, m := fwd(t, f, tc.in, client)
			if m == nil {
				t.Fatalf("dropped: %v", r.Drop)
			}
			if r.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.Status, m.Reason(), tc.status)
			}
			if tc.unsupported != "" {
				if got := string(m.HeaderByName([]byte("Unsupported"))); got != tc.unsupported {
					t.Errorf("Unsupported: %q, want %q", got, tc.unsupported)
				}
			}
		})
	}
	// A configured tag is supported; a configured scheme list replaces the default.
	bal := f.bal
	g, err := NewForwarder(Config{Legs: []LegConfig{{Transport: balance.UDP, Addr: legAddr}}, ProxyRequire: []string{"FOO"}, URISchemes: []string{"sip"}}, bal)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := fwd(t, g, req("sip:b@example.com", "Proxy-Require: foo"), client); r.Status != 0 {
		t.Errorf("a supported tag got %d", r.Status)
	}
	if r, _ := fwd(t, g, req("tel:+1555"), client); r.Status != 416 {
		t.Errorf("tel with schemes [sip]: %d, want 416", r.Status)
	}
}

// What is neither a request nor a response is dropped, never answered.
func TestNotSIPDropped(t *testing.T) {
	f := newTestForwarder(t)
	for _, in := range []string{
		"123SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKx\r\n\r\n",
		"\x00\x01\x02\x03 Via: SIP/2.0/UDP 127.0.0.1:40000\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKx\r\n\r\n",
	} {
		s := f.NewScratch()
		r := f.Process(s, []byte(in), client, f.Legs()[0])
		if strings.HasPrefix(in, "GET") {
			// An HTTP request line looks like a request: it is answered 400 or
			// 505 like any malformed request, which is fine; only check no crash.
			continue
		}
		if r.Out != nil || r.Drop != DropNotSIP {
			t.Errorf("%q: out %q drop %v, want dropped as not_sip", in, r.Out, r.Drop)
		}
	}
}

// A request refused for its line ends still gets every Via, From, To,
// Call-ID and CSeq back (§8.2.6.2).
func TestRawReplyMixedLineEnds(t *testing.T) {
	f := newTestForwarder(t)
	in := "INVITE sip:b@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKmix1;rport\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKmix2\r" +
		"From: <sip:a@example.com>;tag=1\r\n" +
		"To: <sip:b@example.com>\r" +
		"Call-ID: mix@x\n" +
		"CSeq: 1 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n"
	r := f.Process(f.NewScratch(), []byte(in), client, f.Legs()[0])
	if r.Out == nil {
		t.Fatalf("no answer: %v", r.Drop)
	}
	out := string(r.Out)
	for _, want := range []string{"branch=z9hG4bKmix1", "branch=z9hG4bKmix2", "From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>;tag=", "Call-ID: mix@x", "CSeq: 1 INVITE"} {
		if !strings.Contains(out, want) {
			t.Errorf("reply lacks %q:\n%s", want, out)
		}
	}
}
