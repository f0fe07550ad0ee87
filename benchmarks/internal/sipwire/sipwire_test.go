package sipwire

import (
	"strings"
	"testing"
)

// crlf turns the readable LF line ends of a test message into CRLF.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestScan(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		request    bool
		method     string
		status     int
		callID     string
		cseqNum    uint32
		cseqMethod string
		vias       int
		rrs        int
		contact    string
		body       string
	}{
		{
			name: "request with body",
			in: "INVITE sip:bob@example.com SIP/2.0\n" +
				"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\n" +
				"v: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK2, SIP/2.0/UDP 10.0.0.3;branch=z9hG4bK3\n" +
				"Record-Route: <sip:p1;lr>\n" +
				"f: <sip:a@example.com>;tag=1\n" +
				"t: <sip:bob@example.com>\n" +
				"i: abc@host\n" +
				"CSeq: 7 INVITE\n" +
				"m: <sip:a@10.0.0.1>\n" +
				"l: 4\n\nv=0\nextra",
			request: true, method: "INVITE", callID: "abc@host", cseqNum: 7, cseqMethod: "INVITE",
			vias: 2, rrs: 1, contact: "<sip:a@10.0.0.1>", body: "v=0\r",
		},
		{
			name: "response, long names in odd case",
			in: "SIP/2.0 180 Ringing\n" +
				"VIA: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\n" +
				"call-id:  x@y \n" +
				"cseq: 1 INVITE\n" +
				"RECORD-ROUTE: <sip:p2;lr>, <sip:p1;lr>\n" +
				"Content-Length: 0\n\n",
			status: 180, callID: "x@y", cseqNum: 1, cseqMethod: "INVITE", vias: 1, rrs: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Msg
			if !Scan(&m, crlf(tc.in)) {
				t.Fatalf("Scan(%q) = false", tc.in)
			}
			if m.Request != tc.request || string(m.Method) != tc.method || m.Status != tc.status {
				t.Errorf("start line: request %v method %q status %d, want %v %q %d",
					m.Request, m.Method, m.Status, tc.request, tc.method, tc.status)
			}
			if string(m.CallID) != tc.callID {
				t.Errorf("CallID = %q, want %q", m.CallID, tc.callID)
			}
			if m.CSeqNum != tc.cseqNum || string(m.CSeqMethod) != tc.cseqMethod {
				t.Errorf("CSeq = %d %q, want %d %q", m.CSeqNum, m.CSeqMethod, tc.cseqNum, tc.cseqMethod)
			}
			if len(m.Vias) != tc.vias || len(m.RecordRoutes) != tc.rrs {
				t.Errorf("Vias %d RecordRoutes %d, want %d %d", len(m.Vias), len(m.RecordRoutes), tc.vias, tc.rrs)
			}
			if string(m.Contact) != tc.contact {
				t.Errorf("Contact = %q, want %q", m.Contact, tc.contact)
			}
			if string(m.Body) != tc.body {
				t.Errorf("Body = %q, want %q", m.Body, tc.body)
			}
		})
	}
}

func TestScanRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "empty", in: ""},
		{name: "no line end", in: "OPTIONS sip:a SIP/2.0"},
		{name: "bad version", in: "OPTIONS sip:a SIP/3.0\nCall-ID: x\nCSeq: 1 OPTIONS\n\n"},
		{name: "bad status", in: "SIP/2.0 2x0 OK\nCall-ID: x\nCSeq: 1 OPTIONS\n\n"},
		{name: "no colon", in: "OPTIONS sip:a SIP/2.0\nCall-ID x\nCSeq: 1 OPTIONS\n\n"},
		{name: "no Call-ID", in: "OPTIONS sip:a SIP/2.0\nCSeq: 1 OPTIONS\n\n"},
		{name: "bad CSeq", in: "OPTIONS sip:a SIP/2.0\nCall-ID: x\nCSeq: one OPTIONS\n\n"},
		{name: "CSeq overflow", in: "OPTIONS sip:a SIP/2.0\nCall-ID: x\nCSeq: 4294967296 OPTIONS\n\n"},
		{name: "headers unterminated", in: "OPTIONS sip:a SIP/2.0\nCall-ID: x\nCSeq: 1 OPTIONS\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Msg
			if Scan(&m, crlf(tc.in)) {
				t.Errorf("Scan(%q) = true, want false", tc.in)
			}
		})
	}
}

func TestTag(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: `"A" <sip:a@h;tag=no>;tag=yes`, want: "yes"},
		{in: `<sip:a@h>;x=1; TAG=abc ;y=2`, want: "abc"},
		{in: `sip:a@h;tag=bare`, want: "bare"},
		{in: `<sip:a@h;tag=inside>`, want: ""},
		{in: `sip:a@h`, want: ""},
	}
	for _, tc := range tests {
		if got := string(Tag([]byte(tc.in))); got != tc.want {
			t.Errorf("Tag(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURIAndHostPort(t *testing.T) {
	tests := []struct{ in, uri, hostport string }{
		{in: `<sip:echo@127.0.0.1:5070>`, uri: "sip:echo@127.0.0.1:5070", hostport: "127.0.0.1:5070"},
		{in: `"Bob" <sip:bob@[::1]:5071;transport=udp>;expires=60`, uri: "sip:bob@[::1]:5071;transport=udp", hostport: "[::1]:5071"},
		{in: `sip:10.0.0.1:5060;lr`, uri: "sip:10.0.0.1:5060", hostport: "10.0.0.1:5060"},
		{in: `<sips:host.example?subject=x>`, uri: "sips:host.example?subject=x", hostport: "host.example"},
	}
	for _, tc := range tests {
		uri := URI([]byte(tc.in))
		if string(uri) != tc.uri {
			t.Errorf("URI(%q) = %q, want %q", tc.in, uri, tc.uri)
		}
		if hp := HostPort(uri); string(hp) != tc.hostport {
			t.Errorf("HostPort(%q) = %q, want %q", uri, hp, tc.hostport)
		}
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{in: `<sip:p1;lr>, <sip:p2;lr>`, want: []string{"<sip:p1;lr>", "<sip:p2;lr>"}},
		{in: `"a, b" <sip:x?h=1,2>;lr ,sip:y`, want: []string{`"a, b" <sip:x?h=1,2>;lr`, "sip:y"}},
		{in: `"q\"," <sip:z>`, want: []string{`"q\"," <sip:z>`}},
		{in: ` , `, want: nil},
	}
	for _, tc := range tests {
		got := SplitList(nil, []byte(tc.in))
		if len(got) != len(tc.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("SplitList(%q)[%d] = %q, want %q", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func BenchmarkScan(b *testing.B) {
	msg := crlf("SIP/2.0 200 OK\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-lb-1\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK1;rport=40000\n" +
		"From: <sip:load@127.0.0.1>;tag=1\nTo: <sip:echo@127.0.0.1>;tag=2\n" +
		"Call-ID: 0123456789abcdef01234567@sipload\nCSeq: 1 OPTIONS\n" +
		"Contact: <sip:echo@127.0.0.1:5070>\nContent-Length: 0\n\n")
	var m Msg
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if !Scan(&m, msg) {
			b.Fatal("Scan failed")
		}
	}
}
