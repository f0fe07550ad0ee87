package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pires/go-proxyproto"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/guard"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// proxyLB is a server whose TCP, TLS and WS legs take PROXY headers from
// 127.0.0.1 (and deny 127.0.0.9 by their ACLs), in front of a UDP backend.
type proxyLB struct {
	srv  *Server
	uas  *wsUAS
	pki  *testPKI
	legs map[balance.Transport]netip.AddrPort
}

func startProxyLB(t *testing.T) *proxyLB {
	t.Helper()
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	acl, err := guard.NewACL("test", guard.ACLConfig{Deny: []string{"127.0.0.9"}})
	if err != nil {
		t.Fatal(err)
	}
	from := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	any := netip.MustParseAddrPort("127.0.0.1:0")
	legs := []LegConfig{
		{Transport: balance.TCP, Addr: any, ACL: acl, ProxyFrom: from},
		{Transport: balance.TLS, Addr: any, ACL: acl, ProxyFrom: from, TLS: store},
		{Transport: balance.WS, Addr: any, ACL: acl, ProxyFrom: from},
		{Transport: balance.UDP, Addr: any},
	}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	uas := startWSUAS(t)
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: uas.addr}}}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	lb := &proxyLB{uas: uas, pki: pki, legs: map[balance.Transport]netip.AddrPort{}}
	lb.srv = runServerT(t, NewServerWith(f, Options{Loops: 1, Limits: pool.Limits{HeaderDeadline: 300 * time.Millisecond}}))
	for _, l := range legs {
		lb.legs[l.Transport] = l.Addr
	}
	return lb
}

// dialFrom opens a TCP connection to addr from the loopback address local.
func dialFrom(t *testing.T, local string, addr netip.AddrPort) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func proxyV1(src string) []byte {
	ap := netip.MustParseAddrPort(src)
	return []byte("PROXY TCP4 " + ap.Addr().String() + " 127.0.0.1 " + strconv.Itoa(int(ap.Port())) + " 5060\r\n")
}

func proxyV2(t *testing.T, cmd proxyproto.ProtocolVersionAndCommand, src string) []byte {
	t.Helper()
	h := &proxyproto.Header{
		Version: 2, Command: cmd, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5060},
	}
	if cmd == proxyproto.LOCAL {
		h.TransportProtocol = proxyproto.UNSPEC
		h.SourceAddr, h.DestinationAddr = nil, nil
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proxyOptions is an OPTIONS from a client whose Via names a host that
// is not an address, so siplb always adds received and rport.
func proxyOptions(callID string) []byte {
	return sip("OPTIONS sip:service@example.com SIP/2.0",
		"Via: SIP/2.0/TCP client.invalid:5060;branch=z9hG4bK-"+callID+";rport",
		"Max-Forwards: 70", "From: <sip:a@example.com>;tag=f", "To: <sip:service@example.com>",
		"Call-ID: "+callID, "CSeq: 1 OPTIONS", "Content-Length: 0")
}

// exchange sends hdr and then an OPTIONS over the transport tr (hdr on the
// TCP connection, before the TLS handshake or the HTTP upgrade) and
// returns the answer the client got.
func (lb *proxyLB) exchange(t *testing.T, tr balance.Transport, hdr [][]byte, req []byte) []byte {
	t.Helper()
	addr := lb.legs[tr]
	dial := func() net.Conn {
		c := dialFrom(t, "127.0.0.1", addr)
		for i, part := range hdr {
			if i > 0 {
				time.Sleep(30 * time.Millisecond) // a header split over segments
			}
			if _, err := c.Write(part); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	switch tr {
	case balance.TCP:
		c := dial()
		c.Write(req)
		got := readResponses(t, c, 1, 5*time.Second)
		if len(got) != 1 {
			t.Fatalf("no answer over %s", tr)
		}
		return got[0]
	case balance.TLS:
		c := tls.Client(dial(), &tls.Config{RootCAs: lb.pki.pool, ServerName: "127.0.0.1"})
		c.Write(req)
		got := readResponses(t, c, 1, 5*time.Second)
		if len(got) != 1 {
			t.Fatalf("no answer over %s", tr)
		}
		return got[0]
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hc := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
			return dial(), nil
		}}}
		c, _, err := websocket.Dial(ctx, "ws://"+addr.String(), &websocket.DialOptions{Subprotocols: []string{"sip"}, HTTPClient: hc})
		if err != nil {
			t.Fatalf("WebSocket upgrade after a PROXY header: %v", err)
		}
		defer c.CloseNow()
		wsSend(t, c, req)
		return wsRecv(t, c, 5*time.Second)
	}
}

// A trusted proxy's header (v1, v1 split over segments, v2) names the
// client: the backend sees it in received and rport, the answer comes
// back on the connection, and siplb's Record-Route carries the flow of
// the connection. A LOCAL header keeps the proxy's own address.
func TestProxyProtocolTrusted(t *testing.T) {
	lb := startProxyLB(t)
	v1 := proxyV1("127.0.0.5:40000")
	cases := []struct {
		name     string
		hdr      func(*testing.T) [][]byte
		received string
		rport    int // 0: the client's own port
	}{
		{"v1", func(*testing.T) [][]byte { return [][]byte{v1} }, "127.0.0.5", 40000},
		{"v1 split", func(*testing.T) [][]byte { return [][]byte{v1[:20], v1[20:]} }, "127.0.0.5", 40000},
		{"v2", func(t *testing.T) [][]byte { return [][]byte{proxyV2(t, proxyproto.PROXY, "127.0.0.6:40001")} }, "127.0.0.6", 40001},
		{"v2 local", func(t *testing.T) [][]byte { return [][]byte{proxyV2(t, proxyproto.LOCAL, "127.0.0.6:40001")} }, "127.0.0.1", 0},
		{"v1 unknown", func(*testing.T) [][]byte { return [][]byte{[]byte("PROXY UNKNOWN\r\n")} }, "127.0.0.1", 0},
	}
	flow := map[balance.Transport]string{balance.TCP: "t", balance.TLS: "s", balance.WS: "w"}
	for _, tr := range []balance.Transport{balance.TCP, balance.TLS, balance.WS} {
		for _, tc := range cases {
			t.Run(tr.String()+"/"+tc.name, func(t *testing.T) {
				callID := "pp-" + tr.String() + "-" + strings.ReplaceAll(tc.name, " ", "-")
				got := lb.exchange(t, tr, tc.hdr(t), proxyOptions(callID))
				if !bytes.HasPrefix(got, []byte("SIP/2.0 200 OK\r\n")) {
					t.Fatalf("client got %q", got)
				}
				var m parser.Message
				var at []byte
				for at == nil || parser.Parse(&m, at) != nil || string(m.Header(parser.HdrCallID)) != callID {
					at = lb.uas.next(t, "OPTIONS ", 3*time.Second)
				}
				v, err := m.Via(1) // the client's, below siplb's
				if err != nil {
					t.Fatal(err)
				}
				if string(v.Received) != tc.received || (tc.rport != 0 && int(v.RPort) != tc.rport) || v.RPort == 0 {
					t.Errorf("backend's client Via received=%q rport=%d, want %s and %d:\n%s", v.Received, v.RPort, tc.received, tc.rport, at)
				}
				// Double Record-Route: the UDP leg's, then the client leg's
				// with the connection's flow.
				rr, err := m.RecordRoute(1)
				if err != nil || !bytes.Contains(rr.Raw, []byte(";lbf="+flow[tr])) {
					t.Errorf("siplb's client-side Record-Route %q lacks the %s connection's flow", rr.Raw, tr)
				}
			})
		}
	}
	if n := lb.srv.Stats().Drop(DropProxyProtocol); n != 0 {
		t.Errorf("proxy_protocol drops %d, want 0", n)
	}
}

// Connections refused for their PROXY header, or for the source it names,
// are closed and counted: a header from a source not trusted to send one
// (v1 or v2, in the first bytes), from a trusted source no header, a
// malformed one, one too long, or one that does not come in time.
func TestProxyProtocolRefused(t *testing.T) {
	lb := startProxyLB(t)
	sipReq := proxyOptions("pp-refused")
	v2 := proxyV2(t, proxyproto.PROXY, "127.0.0.5:40000")
	cases := []struct {
		name  string
		local string // the proxy's (the connection's) source
		send  []byte
		drop  Drop
	}{
		{"untrusted v1", "127.0.0.3", append(proxyV1("127.0.0.5:40000"), sipReq...), DropProxyProtocol},
		{"untrusted v2", "127.0.0.3", append(bytes.Clone(v2), sipReq...), DropProxyProtocol},
		{"acl denies the header's source", "127.0.0.1", append(proxyV1("127.0.0.9:40000"), sipReq...), DropDenied},
		{"no header", "127.0.0.1", sipReq, DropProxyProtocol},
		{"malformed v1", "127.0.0.1", []byte("PROXY TCP4 127.0.0.5 nonsense\r\n"), DropProxyProtocol},
		{"v1 too long", "127.0.0.1", []byte("PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n"), DropProxyProtocol},
		{"v2 bad length", "127.0.0.1", append(bytes.Clone(v2[:14]), 0xff, 0xff), DropProxyProtocol},
		{"timeout", "127.0.0.1", []byte("PROXY TCP4 127.0.0.5 "), DropProxyProtocol},
	}
	for _, tr := range []balance.Transport{balance.TCP, balance.TLS, balance.WS} {
		for _, tc := range cases {
			t.Run(tr.String()+"/"+tc.name, func(t *testing.T) {
				before := lb.srv.Stats().Drop(tc.drop)
				c := dialFrom(t, tc.local, lb.legs[tr])
				c.Write(tc.send)
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				var buf [512]byte
				var err error
				for err == nil {
					_, err = c.Read(buf[:])
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the connection is still open after 3s")
				}
				if err != io.EOF && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
					t.Logf("closed with %v", err)
				}
				if !waitFor(2*time.Second, func() bool { return lb.srv.Stats().Drop(tc.drop) == before+1 }) {
					t.Errorf("%s drops %d, want %d", tc.drop, lb.srv.Stats().Drop(tc.drop), before+1)
				}
			})
		}
	}
	if n := lb.srv.Stats().TLSHandshakeFailures; n != 0 {
		t.Errorf("tls handshake failures %d: a PROXY refusal must count once, as proxy_protocol", n)
	}
	if n := lb.srv.Stats().Conns; n != 0 {
		t.Errorf("siplb holds %d streams", n)
	}
}

func TestLooksLikeProxyHeader(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", true},
		{"PROXY ", true},
		{string(proxyproto.SIGV2), true},
		{string(proxyproto.SIGV2[:6]), true},
		{string(proxyproto.SIGV2[:5]), false},
		{"PROXY", false},
		{"PRACK sip:a@b SIP/2.0\r\n", false},
		{"\r\n\r\n", false},
		{"OPTIONS sip:a@b SIP/2.0\r\n", false},
	} {
		if got := looksLikeProxyHeader([]byte(tc.in)); got != tc.want {
			t.Errorf("looksLikeProxyHeader(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The look at a stream's first bytes is on the read path: it allocates
// nothing.
func TestLooksLikeProxyHeaderAllocs(t *testing.T) {
	req := proxyOptions("pp-alloc")
	if n := testing.AllocsPerRun(100, func() { looksLikeProxyHeader(req) }); n != 0 {
		t.Errorf("looksLikeProxyHeader allocates %v times per call", n)
	}
}
