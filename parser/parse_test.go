package parser_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/siplb/siplb/parser"
)

func TestLookupHeader(t *testing.T) {
	tests := []struct {
		name string
		want parser.HeaderID
	}{
		{"Via", parser.HdrVia}, {"vIA", parser.HdrVia}, {"v", parser.HdrVia}, {"V", parser.HdrVia},
		{"i", parser.HdrCallID}, {"m", parser.HdrContact}, {"e", parser.HdrContentEncoding},
		{"l", parser.HdrContentLength}, {"c", parser.HdrContentType}, {"f", parser.HdrFrom},
		{"s", parser.HdrSubject}, {"k", parser.HdrSupported}, {"t", parser.HdrTo}, {"o", parser.HdrEvent},
		{"u", parser.HdrAllowEvents}, {"r", parser.HdrReferTo}, {"b", parser.HdrReferredBy},
		{"x", parser.HdrSessionExpires}, {"y", parser.HdrIdentity},
		{"Record-Route", parser.HdrRecordRoute}, {"CALL-ID", parser.HdrCallID}, {"cseq", parser.HdrCSeq},
		{"Max-Forwards", parser.HdrMaxForwards}, {"Proxy-Authorization", parser.HdrProxyAuthorization},
		{"X-Custom", parser.HdrOther}, {"", parser.HdrOther}, {"q", parser.HdrOther},
		{"Content-Length-And-Then-Some", parser.HdrOther},
	}
	for _, tc := range tests {
		if got := parser.LookupHeader([]byte(tc.name)); got != tc.want {
			t.Errorf("LookupHeader(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	for id := parser.HdrVia; id.String() != ""; id++ {
		if got := parser.LookupHeader([]byte(id.String())); got != id {
			t.Errorf("LookupHeader(%q) = %d, want %d", id.String(), got, id)
		}
	}
}

func TestErrorString(t *testing.T) {
	if got := parser.ErrMissingCallID.Error(); got != "400 Missing Call-ID" {
		t.Errorf("ErrMissingCallID.Error() = %q", got)
	}
	if got := parser.ErrTooLarge.Error(); got != "513 Message Too Large" {
		t.Errorf("ErrTooLarge.Error() = %q", got)
	}
	if !errors.Is(parser.ErrVersionNotSupported, parser.ErrVersionNotSupported) || parser.ErrVersionNotSupported.Status != 505 {
		t.Errorf("ErrVersionNotSupported = %v", parser.ErrVersionNotSupported)
	}
}

func TestParseVia(t *testing.T) {
	tests := []struct {
		in      string
		want    parser.Via
		wantErr bool
	}{
		{in: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport", want: parser.Via{Protocol: []byte("SIP/2.0"), Transport: []byte("UDP"),
			Host: []byte("192.0.2.1"), Port: 5060, Branch: []byte("z9hG4bK1"), HasRPort: true, Params: []byte(";branch=z9hG4bK1;rport")}},
		{in: "SIP/2.0/TLS [2001:db8::1]:5061;rport=7000;received=2001:db8::2;branch=z9hG4bK2", want: parser.Via{Protocol: []byte("SIP/2.0"), Transport: []byte("TLS"),
			Host: []byte("2001:db8::1"), Port: 5061, Branch: []byte("z9hG4bK2"), Received: []byte("2001:db8::2"), RPort: 7000, HasRPort: true,
			Params: []byte(";rport=7000;received=2001:db8::2;branch=z9hG4bK2")}},
		{in: "SIP / 2.0 / WSS host.example.com : 443 ; maddr=239.1.1.1 ; branch=x", want: parser.Via{Protocol: []byte("SIP / 2.0"), Transport: []byte("WSS"),
			Host: []byte("host.example.com"), Port: 443, Branch: []byte("x"), Maddr: []byte("239.1.1.1"), Params: []byte("; maddr=239.1.1.1 ; branch=x")}},
		{in: "SIP/2.0/UDP host", want: parser.Via{Protocol: []byte("SIP/2.0"), Transport: []byte("UDP"), Host: []byte("host")}},
		{in: "SIP/2.0/UDP", wantErr: true},
		{in: "SIP/2.0 host", wantErr: true},
		{in: "SIP/2.0/UDP host:65536", wantErr: true},
		{in: "SIP/2.0/UDP host;;branch=x", wantErr: true},
		{in: "SIP/2.0/UDP host;branch", wantErr: true},
		{in: "SIP/2.0/UDP host;rport=x", wantErr: true},
		{in: "SIP/2.0/UDP [2001:db8::1;branch=x", wantErr: true},
		{in: "SIP/2.0/UDP host junk", wantErr: true},
	}
	for _, tc := range tests {
		var v parser.Via
		err := parser.ParseVia(&v, []byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseVia(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && !viaEqual(v, tc.want) {
			t.Errorf("ParseVia(%q) = %+v, want %+v", tc.in, v, tc.want)
		}
	}
}

func viaEqual(a, b parser.Via) bool {
	return bytes.Equal(a.Protocol, b.Protocol) && bytes.Equal(a.Transport, b.Transport) && bytes.Equal(a.Host, b.Host) &&
		a.Port == b.Port && bytes.Equal(a.Branch, b.Branch) && bytes.Equal(a.Received, b.Received) && a.RPort == b.RPort &&
		a.HasRPort == b.HasRPort && bytes.Equal(a.Maddr, b.Maddr) && bytes.Equal(a.Params, b.Params)
}

func TestParseURI(t *testing.T) {
	tests := []struct {
		in                                      string
		scheme, user, host, params, transp, mad string
		port                                    uint16
		lr                                      bool
		wantErr                                 bool
	}{
		{in: "sip:alice@example.com", scheme: "sip", user: "alice", host: "example.com"},
		{in: "sips:alice:secret@example.com:5061;transport=tcp;lr", scheme: "sips", user: "alice", host: "example.com", port: 5061,
			params: ";transport=tcp;lr", transp: "tcp", lr: true},
		{in: "sip:[2001:db8::1]:5060;maddr=239.0.0.1", scheme: "sip", host: "2001:db8::1", port: 5060, params: ";maddr=239.0.0.1", mad: "239.0.0.1"},
		{in: `"Bob" <sip:bob@192.0.2.4;LR>;tag=9`, scheme: "sip", user: "bob", host: "192.0.2.4", params: ";LR", lr: true},
		{in: "<sip:proxy.example.com;lr?Subject=hi>", scheme: "sip", host: "proxy.example.com", params: ";lr", lr: true},
		{in: "tel:+1-555-0100;ext=7", scheme: "tel", user: "+1-555-0100", params: ";ext=7"},
		{in: "urn:service:sos", scheme: "urn"},
		{in: "sip:", wantErr: true},
		{in: "sip:@host", wantErr: true},
		{in: "sip:host:99999", wantErr: true},
		{in: "sip:host;;lr", wantErr: true},
		{in: "alice@example.com", wantErr: true},
		{in: "<sip:host", wantErr: true},
		{in: "sip:[::1", wantErr: true},
	}
	for _, tc := range tests {
		var u parser.URI
		err := parser.ParseURI(&u, []byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseURI(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if string(u.Scheme) != tc.scheme || string(u.User) != tc.user || string(u.Host) != tc.host || u.Port != tc.port ||
			string(u.Params) != tc.params || string(u.Transport) != tc.transp || string(u.Maddr) != tc.mad || u.LR != tc.lr {
			t.Errorf("ParseURI(%q) = %+v", tc.in, u)
		}
	}
	var u parser.URI
	if err := parser.ParseURI(&u, []byte("sip:h;Transport=UDP;lr;x=1")); err != nil {
		t.Fatal(err)
	}
	if v, ok := u.Param("transport"); !ok || string(v) != "UDP" {
		t.Errorf("Param(transport) = %q, %v", v, ok)
	}
	if v, ok := u.Param("lr"); !ok || v != nil {
		t.Errorf("Param(lr) = %q, %v", v, ok)
	}
	if _, ok := u.Param("maddr"); ok {
		t.Errorf("Param(maddr) present")
	}
}

func TestParseAccessors(t *testing.T) {
	var m parser.Message
	in := readTestdata(t, "valid/invite_sdp.sip")
	if err := parser.Parse(&m, in); err != nil {
		t.Fatal(err)
	}
	if !m.IsRequest() || m.Method() != parser.INVITE || m.Method().String() != "INVITE" {
		t.Errorf("method = %v", m.Method())
	}
	if n, meth := m.CSeq(); n != 4711 || meth != parser.INVITE {
		t.Errorf("CSeq() = %d %v", n, meth)
	}
	if got := string(m.CallID()); got != "3f9d1c0a-77be-4e21-9a51-0c2e8f6d4b13@198.51.100.7" {
		t.Errorf("CallID() = %q", got)
	}
	if got := string(m.FromTag()); got != "8821aa90" {
		t.Errorf("FromTag() = %q", got)
	}
	if m.ToTag() != nil {
		t.Errorf("ToTag() = %q, want nil", m.ToTag())
	}
	if n, ok := m.MaxForwards(); n != 70 || !ok {
		t.Errorf("MaxForwards() = %d %v", n, ok)
	}
	v := m.TopVia()
	if string(v.Host) != "198.51.100.7" || v.Port != 5060 || !v.HasRPort || string(v.Branch) != "z9hG4bK-c4r0l-7741" {
		t.Errorf("TopVia() = %+v", v)
	}
	if got := string(m.Header(parser.HdrContentType)); got != "application/sdp" {
		t.Errorf("Header(Content-Type) = %q", got)
	}
	if got := string(m.HeaderByName([]byte("user-agent"))); got != "siplb-testphone/0.9" {
		t.Errorf("HeaderByName(user-agent) = %q", got)
	}
	if m.Header(parser.HdrRoute) != nil {
		t.Errorf("Header(Route) = %q, want nil", m.Header(parser.HdrRoute))
	}
	if _, err := m.Via(1); err != parser.ErrNoSuchValue {
		t.Errorf("Via(1) error = %v", err)
	}
	if len(m.Body()) == 0 || !bytes.HasPrefix(m.Body(), []byte("v=0\r\n")) {
		t.Errorf("Body() = %q", m.Body())
	}
}

func TestParseLimits(t *testing.T) {
	in := readTestdata(t, "valid/invite_sdp.sip")
	tests := []struct {
		name string
		lim  parser.Limits
		want error
	}{
		{name: "defaults", want: nil},
		{name: "small header", lim: parser.Limits{MaxHeader: 200}, want: parser.ErrTooLarge},
		{name: "small body", lim: parser.Limits{MaxBody: 100}, want: parser.ErrTooLarge},
	}
	for _, tc := range tests {
		m := parser.Message{Limits: tc.lim}
		if err := parser.Parse(&m, in); err != tc.want {
			t.Errorf("%s: Parse = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseBodyByContentLength(t *testing.T) {
	in := crlf("MESSAGE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 MESSAGE\nContent-Length: 3\n\nabcdef")
	var m parser.Message
	if err := parser.Parse(&m, in); err != nil {
		t.Fatal(err)
	}
	if string(m.Body()) != "abc" {
		t.Errorf("Body() = %q, want %q", m.Body(), "abc")
	}
}
