package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// wsUAS is a UDP backend that answers every request but ACK with 200 and
// hands each message it receives, requests and responses, to got.
type wsUAS struct {
	conn *net.UDPConn
	addr netip.AddrPort
	got  chan []byte
}

func startWSUAS(t *testing.T) *wsUAS {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	u := &wsUAS{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), got: make(chan []byte, 64)}
	go func() {
		buf := make([]byte, 65536)
		var m parser.Message
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg := bytes.Clone(buf[:n])
			if parser.Parse(&m, msg) == nil && m.IsRequest() && m.Method() != parser.ACK {
				c.WriteToUDPAddrPort(respond(msg, "200 OK", u.addr), from)
			}
			select {
			case u.got <- msg:
			default:
			}
		}
	}()
	return u
}

// next returns the next message the backend received that starts with
// prefix, within d.
func (u *wsUAS) next(t *testing.T, prefix string, d time.Duration) []byte {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-u.got:
			if bytes.HasPrefix(m, []byte(prefix)) {
				return m
			}
		case <-deadline:
			t.Fatalf("backend: no %q within %s", prefix, d)
			return nil
		}
	}
}

// wsLB is a server with a WebSocket leg (legs[0]) and a UDP leg in front
// of one UDP backend.
type wsLB struct {
	srv  *Server
	legs []LegConfig
	url  string
	pki  *testPKI
}

func startWSLB(t *testing.T, tr balance.Transport, origins []string, lim pool.Limits, members ...balance.BackendConfig) *wsLB {
	t.Helper()
	lb := &wsLB{legs: []LegConfig{
		{Transport: tr, Addr: netip.MustParseAddrPort("127.0.0.1:0"), Origins: origins},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}}
	scheme := "ws://"
	if tr == balance.WSS {
		lb.pki = newTestPKI(t)
		store, err := siptls.NewStore(siptls.Config{CertFile: lb.pki.certFile, KeyFile: lb.pki.keyFile, CAFile: lb.pki.caFile})
		if err != nil {
			t.Fatal(err)
		}
		lb.legs[0].TLS = store
		scheme = "wss://"
	}
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: members}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ResolvePorts(lb.legs); err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: lb.legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	lb.srv = runServerT(t, NewServerWith(f, Options{Loops: 1, Limits: lim}))
	lb.url = scheme + lb.legs[0].Addr.String()
	return lb
}

// dial opens a WebSocket to the leg with the given subprotocols and Origin
// ("" sends none).
func (lb *wsLB) dial(t *testing.T, origin string, protos ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o := &websocket.DialOptions{Subprotocols: protos, HTTPHeader: http.Header{}}
	if origin != "" {
		o.HTTPHeader.Set("Origin", origin)
	}
	if lb.pki != nil {
		o.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: lb.pki.pool, ServerName: "127.0.0.1"}}}
	}
	c, resp, err := websocket.Dial(ctx, lb.url, o)
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
		c.SetReadLimit(1 << 20)
	}
	return c, resp, err
}

func (lb *wsLB) mustDial(t *testing.T) *websocket.Conn {
	t.Helper()
	c, _, err := lb.dial(t, "", "sip")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wsSend writes msg as one text message.
func wsSend(t *testing.T, c *websocket.Conn, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatal(err)
	}
}

// wsRecv reads one message within d.
func wsRecv(t *testing.T, c *websocket.Conn, d time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading the WebSocket: %v", err)
	}
	return b
}

const wsHost = "df7jal23ls0d.invalid" // what a browser's SIP stack writes in Via and Contact

// A WebSocket client registers and calls through a ws (wss) leg to a UDP
// backend: REGISTER and INVITE are answered over the WebSocket, the ACK
// reaches the backend, the backend's BYE reaches the client over its
// WebSocket with siplb's WS Via, and the client's 200 goes back to the
// backend. Once the client is gone, a backend's request for it is dropped
// (conn_gone), never sent by another way.
func TestWSClientToUDPBackend(t *testing.T) {
	for _, tr := range []balance.Transport{balance.WS, balance.WSS} {
		t.Run(tr.String(), func(t *testing.T) {
			uas := startWSUAS(t)
			lb := startWSLB(t, tr, nil, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
			c := lb.mustDial(t)
			if p := c.Subprotocol(); p != "sip" {
				t.Errorf("negotiated subprotocol %q, want sip", p)
			}
			via := "Via: SIP/2.0/" + strings.ToUpper(tr.String()) + " " + wsHost + ";branch=z9hG4bK-"
			contact := "Contact: <sip:alice@" + wsHost + ";transport=" + tr.String() + ">"

			wsSend(t, c, sip("REGISTER sip:example.com SIP/2.0", via+"reg;rport", "Max-Forwards: 70",
				"From: <sip:alice@example.com>;tag=a", "To: <sip:alice@example.com>", "Call-ID: wsreg@x",
				"CSeq: 1 REGISTER", contact, "Expires: 600", "Content-Length: 0"))
			got := wsRecv(t, c, 5*time.Second)
			if !bytes.HasPrefix(got, []byte("SIP/2.0 200 OK\r\n")) {
				t.Fatalf("REGISTER: got %q", got)
			}
			var m parser.Message
			if err := parser.Parse(&m, got); err != nil {
				t.Fatal(err)
			}
			// received and rport name the WebSocket peer (RFC 3581, as for TCP).
			if top, err := m.Via(0); err != nil || string(top.Received) != "127.0.0.1" || top.RPort == 0 || m.NumVia() != 1 {
				t.Errorf("REGISTER 200: Via %q, want the client's own with received=127.0.0.1 and rport", m.Header(parser.HdrVia))
			}
			reg := uas.next(t, "REGISTER ", 3*time.Second)
			if !bytes.Contains(reg, []byte("Via: SIP/2.0/UDP 127.0.0.1:")) {
				t.Errorf("backend's REGISTER lacks siplb's UDP Via:\n%s", reg)
			}

			sdp := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
			inv := append(sip("INVITE sip:bob@example.com SIP/2.0", via+"inv;rport", "Max-Forwards: 70",
				"From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>", "Call-ID: wscall@x",
				"CSeq: 1 INVITE", contact, "Content-Type: application/sdp", "Content-Length: "+itoa(len(sdp))), sdp...)
			wsSend(t, c, inv)
			got = wsRecv(t, c, 5*time.Second)
			if !bytes.HasPrefix(got, []byte("SIP/2.0 200 OK\r\n")) {
				t.Fatalf("INVITE: got %q", got)
			}
			if err := parser.Parse(&m, got); err != nil {
				t.Fatal(err)
			}
			if m.NumRecordRoute() != 2 {
				t.Fatalf("INVITE 200: %d Record-Route values, want 2 (the UDP leg's, then the %s leg's)", m.NumRecordRoute(), tr)
			}
			rr0, _ := m.RecordRoute(0)
			rr1, _ := m.RecordRoute(1)
			letter := map[balance.Transport]string{balance.WS: "w", balance.WSS: "x"}[tr]
			if rr0.Port != lb.legs[1].Addr.Port() || rr1.Port != lb.legs[0].Addr.Port() ||
				!strings.EqualFold(string(rr1.Transport), tr.String()) || !bytes.Contains(rr1.Raw, []byte(";lbf="+letter)) {
				t.Errorf("Record-Route %s , %s: want the UDP leg, then the %s leg with transport=%s and a flow %q...", rr0.Raw, rr1.Raw, tr, tr, letter)
			}
			invAtBackend := uas.next(t, "INVITE ", 3*time.Second)

			wsSend(t, c, sip("ACK sip:uas@"+uas.addr.String()+" SIP/2.0", via+"ack;rport",
				"Route: <"+string(rr1.Raw)+">", "Route: <"+string(rr0.Raw)+">", "Max-Forwards: 70",
				"From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>;tag=uas", "Call-ID: wscall@x",
				"CSeq: 1 ACK", "Content-Length: 0"))
			uas.next(t, "ACK ", 3*time.Second)

			// The backend hangs up: its BYE, with the route set it keeps,
			// comes to the client over its WebSocket.
			bye := sip("BYE sip:alice@"+wsHost+";transport="+tr.String()+" SIP/2.0",
				"Via: SIP/2.0/UDP "+uas.addr.String()+";branch=z9hG4bK-wsbye",
				"Route: <"+string(rr0.Raw)+">", "Route: <"+string(rr1.Raw)+">", "Max-Forwards: 70",
				"From: <sip:bob@example.com>;tag=uas", "To: <sip:alice@example.com>;tag=a", "Call-ID: wscall@x",
				"CSeq: 2 BYE", "Content-Length: 0")
			uas.conn.WriteToUDPAddrPort(bye, lb.legs[1].Addr)
			got = wsRecv(t, c, 5*time.Second)
			wantVia := "Via: SIP/2.0/" + strings.ToUpper(tr.String()) + " " + lb.legs[0].Addr.String() + ";branch=z9hG4bK"
			if !bytes.HasPrefix(got, []byte("BYE sip:alice@"+wsHost)) || !bytes.Contains(got, []byte(wantVia)) {
				t.Fatalf("client did not get the backend's BYE with %q:\n%s", wantVia, got)
			}
			wsSend(t, c, respond(got, "200 OK", netip.AddrPort{}))
			ok := uas.next(t, "SIP/2.0 200 OK", 3*time.Second)
			if !bytes.Contains(ok, []byte("CSeq: 2 BYE")) || bytes.Count(ok, []byte("\r\nVia: ")) != 1 {
				t.Errorf("backend's 200 to its BYE:\n%s", ok)
			}

			c.Close(websocket.StatusNormalClosure, "")
			if !waitFor(3*time.Second, func() bool { return lb.srv.Stats().Conns == 0 }) {
				t.Fatalf("siplb still holds %d connections after the client closed", lb.srv.Stats().Conns)
			}
			// A request and a response for it, each for the closed WebSocket:
			// dropped, and no connection is opened to the browser's address.
			gone := lb.srv.Stats().Drop(DropConnGone)
			uas.conn.WriteToUDPAddrPort(bytes.Replace(bye, []byte("CSeq: 2 BYE"), []byte("CSeq: 3 BYE"), 1), lb.legs[1].Addr)
			uas.conn.WriteToUDPAddrPort(respond(invAtBackend, "180 Ringing", uas.addr), lb.legs[1].Addr)
			if !waitFor(3*time.Second, func() bool { return lb.srv.Stats().Drop(DropConnGone) == gone+2 }) {
				t.Errorf("a BYE and a 180 for a closed WebSocket: conn_gone %d, want %d", lb.srv.Stats().Drop(DropConnGone), gone+2)
			}
			time.Sleep(50 * time.Millisecond)
			if n := lb.srv.Stats().Drop(DropConnectFailed); n != 0 {
				t.Errorf("connect_failed %d: siplb tried to reach the browser another way", n)
			}
		})
	}
}

// Handshakes that are not a SIP WebSocket upgrade are refused before any
// upgrade: an Origin outside listen[].origins with 403, no sip subprotocol
// with 400, a plain HTTP request with 426; each counted.
func TestWSHandshakeRefused(t *testing.T) {
	uas := startWSUAS(t)
	lb := startWSLB(t, balance.WS, []string{"https://app.example.com", "*.example.org"}, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
	tests := []struct {
		name   string
		origin string
		protos []string
		status int // 0: upgraded
		drop   Drop
	}{
		{name: "listed origin", origin: "https://app.example.com", protos: []string{"sip"}},
		{name: "origin case", origin: "HTTPS://App.Example.com", protos: []string{"sip"}},
		{name: "below a pattern", origin: "https://phone.example.org:8443", protos: []string{"sip"}},
		{name: "sip among others", origin: "https://app.example.com", protos: []string{"chat", "sip"}},
		{name: "other origin", origin: "https://evil.example.net", protos: []string{"sip"}, status: 403, drop: DropWSOrigin},
		{name: "pattern's own domain", origin: "https://example.org", protos: []string{"sip"}, status: 403, drop: DropWSOrigin},
		{name: "suffix lookalike", origin: "https://badexample.org", protos: []string{"sip"}, status: 403, drop: DropWSOrigin},
		{name: "no origin", protos: []string{"sip"}, status: 403, drop: DropWSOrigin},
		{name: "no subprotocol", origin: "https://app.example.com", status: 400, drop: DropWSHandshake},
		{name: "other subprotocol", origin: "https://app.example.com", protos: []string{"chat"}, status: 400, drop: DropWSHandshake},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := lb.srv.Stats().Drop(tc.drop)
			c, resp, err := lb.dial(t, tc.origin, tc.protos...)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				wsSend(t, c, optionsReq(wsHost, "hs-"+strings.ReplaceAll(tc.name, " ", "-"), 1))
				if got := wsRecv(t, c, 5*time.Second); !bytes.HasPrefix(got, []byte("SIP/2.0 200 OK")) {
					t.Errorf("OPTIONS got %q", got)
				}
				c.Close(websocket.StatusNormalClosure, "")
				return
			}
			if err == nil {
				t.Fatal("upgraded, want a refusal")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("response %v, want HTTP %d", resp, tc.status)
			}
			if got := lb.srv.Stats().Drop(tc.drop); got != before+1 {
				t.Errorf("%s: %d, want %d", tc.drop, got, before+1)
			}
		})
	}
	t.Run("plain GET", func(t *testing.T) {
		before := lb.srv.Stats().Drop(DropWSHandshake)
		resp, err := http.Get("http://" + lb.legs[0].Addr.String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Errorf("plain GET: HTTP %d, want 426", resp.StatusCode)
		}
		if got := lb.srv.Stats().Drop(DropWSHandshake); got != before+1 {
			t.Errorf("ws_handshake %d, want %d", got, before+1)
		}
	})
}

// A WebSocket message must hold exactly one SIP message: less, more, or
// text that is not UTF-8 closes the connection with 1002 or 1007, one over
// the limits with 1009; each counted, and the forwarding rules never see
// it. A message without Content-Length is whole, and forwarded.
func TestWSFraming(t *testing.T) {
	uas := startWSUAS(t)
	lb := startWSLB(t, balance.WS, nil, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
	opts := optionsReq(wsHost, "frame", 1)
	noCL := bytes.Replace(opts, []byte("Content-Length: 0\r\n"), nil, 1)
	big := append(bytes.Replace(opts, []byte("Content-Length: 0"), []byte("Content-Length: 100000"), 1), bytes.Repeat([]byte("x"), 100000)...)
	tests := []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
		code websocket.StatusCode // 0: answered
		drop Drop
	}{
		{name: "one", typ: websocket.MessageText, msg: opts},
		{name: "binary", typ: websocket.MessageBinary, msg: opts},
		{name: "no content-length", typ: websocket.MessageText, msg: noCL},
		{name: "two in one", typ: websocket.MessageText, msg: append(bytes.Clone(opts), opts...), code: websocket.StatusProtocolError, drop: DropWSFraming},
		{name: "header cut", typ: websocket.MessageText, msg: opts[:len(opts)/2], code: websocket.StatusProtocolError, drop: DropWSFraming},
		{name: "body cut", typ: websocket.MessageText, msg: bytes.Replace(opts, []byte("Content-Length: 0"), []byte("Content-Length: 9"), 1), code: websocket.StatusProtocolError, drop: DropWSFraming},
		{name: "junk after", typ: websocket.MessageText, msg: append(bytes.Clone(opts), "\r\n"...), code: websocket.StatusProtocolError, drop: DropWSFraming},
		{name: "not utf-8", typ: websocket.MessageText, msg: bytes.Replace(opts, []byte("sip:a@"), []byte("sip:\xff@"), 1), code: websocket.StatusInvalidFramePayloadData, drop: DropWSFraming},
		{name: "over the limits", typ: websocket.MessageText, msg: big, code: websocket.StatusMessageTooBig, drop: DropOversize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := lb.mustDial(t)
			before := lb.srv.Stats().Drop(tc.drop)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Write(ctx, tc.typ, tc.msg); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if tc.code == 0 {
				if err != nil || !bytes.HasPrefix(got, []byte("SIP/2.0 200 OK")) {
					t.Fatalf("got %q, %v; want a 200", got, err)
				}
				return
			}
			if cs := websocket.CloseStatus(err); cs != tc.code {
				t.Fatalf("got %q, %v; want a close with %d", got, err, tc.code)
			}
			if got := lb.srv.Stats().Drop(tc.drop); got != before+1 {
				t.Errorf("%s: %d, want %d", tc.drop, got, before+1)
			}
		})
	}
}

// A WebSocket message being read is charged to the memory budget and
// given back when it is complete; over the budget, the connection holding
// the oldest partial message is closed.
func TestWSBudget(t *testing.T) {
	uas := startWSUAS(t)
	lb := startWSLB(t, balance.WS, nil, pool.Limits{MemoryBudget: 100 << 10}, balance.BackendConfig{Addr: uas.addr})
	body := bytes.Repeat([]byte("y"), 60<<10)
	msg := append(bytes.Replace(optionsReq(wsHost, "budget", 1), []byte("Content-Length: 0"), []byte("Content-Length: "+itoa(len(body))), 1), body...)
	// partial writes all of msg but its last byte as one WebSocket message
	// that stays open.
	partial := func(c *websocket.Conn) (finish func() error) {
		t.Helper()
		w, err := c.Writer(context.Background(), websocket.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(msg[:len(msg)-1]); err != nil {
			t.Fatal(err)
		}
		return func() error {
			if _, err := w.Write(msg[len(msg)-1:]); err != nil {
				return err
			}
			return w.Close()
		}
	}
	a := lb.mustDial(t)
	finishA := partial(a)
	if !waitFor(3*time.Second, func() bool { return lb.srv.Stats().StreamBytes >= int64(len(msg)-wsReadSize) }) {
		t.Fatalf("a partial message of %d bytes: %d charged", len(msg), lb.srv.Stats().StreamBytes)
	}
	if err := finishA(); err != nil {
		t.Fatal(err)
	}
	if got := wsRecv(t, a, 5*time.Second); !bytes.HasPrefix(got, []byte("SIP/2.0 200 OK")) {
		t.Fatalf("the completed message got %q", got)
	}
	if !waitFor(3*time.Second, func() bool { return lb.srv.Stats().StreamBytes == wsConnCharge }) {
		t.Errorf("%d bytes charged after the message completed, want the connection's own %d", lb.srv.Stats().StreamBytes, wsConnCharge)
	}

	closes := lb.srv.Stats().BudgetCloses
	partial(a) // the oldest
	waitFor(3*time.Second, func() bool { return lb.srv.Stats().StreamBytes > 0 })
	b := lb.mustDial(t)
	finishB := partial(b)
	if !waitFor(3*time.Second, func() bool { return lb.srv.Stats().BudgetCloses == closes+1 }) {
		t.Fatalf("budget closes %d, want %d", lb.srv.Stats().BudgetCloses, closes+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, _, err := a.Read(ctx); err == nil {
		t.Error("the oldest partial message's connection is still open")
	}
	if err := finishB(); err != nil {
		t.Fatal(err)
	}
	if got := wsRecv(t, b, 5*time.Second); !bytes.HasPrefix(got, []byte("SIP/2.0 200 OK")) {
		t.Errorf("the younger connection got %q", got)
	}
}

// An idle WebSocket is pinged: a peer that answers stays, one that does not
// pong in time is closed and counted as expired.
func TestWSPing(t *testing.T) {
	uas := startWSUAS(t)
	lim := pool.Limits{IdleMin: 150 * time.Millisecond, IdleMax: 150 * time.Millisecond, HeaderDeadline: 300 * time.Millisecond}
	lb := startWSLB(t, balance.WS, nil, lim, balance.BackendConfig{Addr: uas.addr})
	alive := lb.mustDial(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readErr := make(chan error, 1)
	go func() { // reading is what answers pings
		_, _, err := alive.Read(ctx)
		readErr <- err
	}()
	lb.mustDial(t) // never reads: never pongs
	if !waitFor(5*time.Second, func() bool { return lb.srv.Stats().ConnsExpired == 1 && lb.srv.Stats().Conns == 1 }) {
		t.Fatalf("expired %d, open %d: want the silent peer closed", lb.srv.Stats().ConnsExpired, lb.srv.Stats().Conns)
	}
	time.Sleep(time.Second) // several ping rounds
	select {
	case err := <-readErr:
		t.Fatalf("the peer that answers pings was closed: %v", err)
	default:
	}
	if n := lb.srv.Stats().ConnsExpired; n != 1 {
		t.Errorf("expired %d, want 1", n)
	}
}

// wsCheck: one SIP message per WebSocket message.
func TestWSCheck(t *testing.T) {
	opts := optionsReq(wsHost, "check", 1)
	tests := []struct {
		name string
		typ  websocket.MessageType
		msg  string
		want websocket.StatusCode
	}{
		{name: "one", typ: websocket.MessageText, msg: string(opts)},
		{name: "keep-alive", typ: websocket.MessageText, msg: "\r\n\r\n"},
		{name: "no content-length", typ: websocket.MessageText, msg: strings.Replace(string(opts), "Content-Length: 0\r\n", "", 1) + "body"},
		{name: "too large a header is the parser's", typ: websocket.MessageText, msg: string(opts[:len(opts)-2]) + "X: " + strings.Repeat("a", 20000) + "\r\n\r\n"},
		{name: "two", typ: websocket.MessageText, msg: string(opts) + string(opts), want: 1002},
		{name: "cut", typ: websocket.MessageText, msg: string(opts[:20]), want: 1002},
		{name: "binary not utf-8", typ: websocket.MessageBinary, msg: strings.Replace(string(opts), "a@", "\xff@", 1)},
		{name: "text not utf-8", typ: websocket.MessageText, msg: strings.Replace(string(opts), "a@", "\xff@", 1), want: 1007},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := wsCheck([]byte(tc.msg), tc.typ, parser.Limits{}); got != tc.want {
				t.Errorf("wsCheck = %d, want %d", got, tc.want)
			}
		})
	}
}

// listen[].origins: exact origins and *.domain patterns.
func TestWSOrigins(t *testing.T) {
	o, err := parseOrigins([]string{"https://App.example.com", "http://127.0.0.1:8080", "*.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"http://app.example.com", false},
		{"https://app.example.com:444", false},
		{"http://127.0.0.1:8080", true},
		{"http://127.0.0.1", false},
		{"https://a.example.org", true},
		{"http://a.b.example.org:81", true},
		{"https://example.org", false},
		{"https://xexample.org", false},
		{"https://[::1]", false},
		{"null", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := o.allow(tc.origin); got != tc.want {
			t.Errorf("allow(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
	if !(*originList)(nil).allow("") || !(*originList)(nil).allow("https://any.where") {
		t.Error("no list must allow any origin, and none")
	}
	for _, bad := range []string{"", "example.com", "ftp://example.com", "https://example.com/path", "*.", "*example.com", "*.a*.com", "https://*.example.com"} {
		if _, err := parseOrigins([]string{bad}); err == nil {
			t.Errorf("parseOrigins(%q): no error", bad)
		}
	}
}

// The heads a WebSocket leg writes: RFC 7118's Via transport and
// Record-Route transport parameter; uriTransport reads them back, and a
// flow token round-trips its transport.
func TestWSLegHeads(t *testing.T) {
	for _, tc := range []struct {
		tr       balance.Transport
		via, rr  string
		needsTLS bool
	}{
		{tr: balance.WS, via: "SIP/2.0/WS 127.0.0.1:8080;branch=z9hG4bK", rr: "<sip:127.0.0.1:8080;transport=ws;lr>"},
		{tr: balance.WSS, via: "SIP/2.0/WSS 127.0.0.1:8443;branch=z9hG4bK", rr: "<sip:127.0.0.1:8443;transport=wss;lr>", needsTLS: true},
	} {
		port := map[balance.Transport]string{balance.WS: "8080", balance.WSS: "8443"}[tc.tr]
		lc := LegConfig{Transport: tc.tr, Addr: netip.MustParseAddrPort("127.0.0.1:" + port)}
		if tc.needsTLS {
			if _, err := newLeg(0, lc, 0); err == nil {
				t.Errorf("%s leg without certificates: no error", tc.tr)
			}
			lc.TLS = &siptls.Store{}
		}
		l, err := newLeg(0, lc, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(l.viaHead), tc.via) || l.RecordRoute() != tc.rr {
			t.Errorf("%s leg: Via %q, Record-Route %q; want %q..., %q", tc.tr, l.viaHead, l.RecordRoute(), tc.via, tc.rr)
		}
		var u parser.URI
		if err := parser.ParseURI(&u, []byte(strings.Trim(tc.rr, "<>"))); err != nil {
			t.Fatal(err)
		}
		if got := uriTransport(&u); got != tc.tr {
			t.Errorf("uriTransport(%s) = %s, want %s", tc.rr, got, tc.tr)
		}
		tok := appendFlowToken(nil, netip.AddrPort{}, pool.ConnID(0x1234), tc.tr)
		if fl, ok := parseFlow(tok); !ok || fl.transport != tc.tr || fl.conn != 0x1234 {
			t.Errorf("flow token %q parses as %+v, %v", tok, fl, ok)
		}
	}
	if _, err := newLeg(0, LegConfig{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Origins: []string{"https://a.example.com"}}, 0); err == nil {
		t.Error("origins on a udp leg: no error")
	}
}

// Upgrades in flight count against max_per_ip with the connections
// established: a source holding its cap in stalled upgrades gets no more
// (refused and counted), and gets one when a stalled one goes.
func TestWSUpgradesCountAgainstPerIPCap(t *testing.T) {
	const perIP = 2
	lb := startWSLB(t, balance.WS, nil, pool.Limits{MaxConnsPerIP: perIP}, balance.BackendConfig{Addr: netip.MustParseAddrPort("127.0.0.1:9")})
	stalled := make([]net.Conn, perIP)
	for i := range stalled {
		c, err := net.Dial("tcp4", lb.legs[0].Addr.String()) // never sends its request
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stalled[i] = c
	}
	if !waitFor(5*time.Second, func() bool { return lb.srv.Stats().StreamBytes == perIP*wsUpgradeCharge }) {
		t.Fatalf("StreamBytes %d: want %d upgrades in flight", lb.srv.Stats().StreamBytes, perIP)
	}
	refused := lb.srv.Stats().ConnsRefused
	if _, _, err := lb.dial(t, "", "sip"); err == nil {
		t.Error("an upgrade over the cap (in upgrades in flight) succeeded")
	}
	if got := lb.srv.Stats().ConnsRefused; got != refused+1 {
		t.Errorf("ConnsRefused %d, want %d", got, refused+1)
	}
	stalled[0].Close()
	if !waitFor(5*time.Second, func() bool { return lb.srv.Stats().StreamBytes == (perIP-1)*wsUpgradeCharge }) {
		t.Fatalf("StreamBytes %d after a stalled upgrade went", lb.srv.Stats().StreamBytes)
	}
	lb.mustDial(t)
}

// A drain over WebSocket: new connections refused; a connection whose
// transaction is answered is closed once it has carried nothing for the
// drain's Idle, going away (1001), and counted as expired.
func TestWSDrain(t *testing.T) {
	uas := startWSUAS(t)
	lb := startWSLB(t, balance.WS, nil, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
	c := lb.mustDial(t)
	via := "Via: SIP/2.0/WS " + wsHost + ";branch=z9hG4bK-"
	wsSend(t, c, sip("REGISTER sip:example.com SIP/2.0", via+"drain;rport", "Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a", "To: <sip:alice@example.com>", "Call-ID: wsdrain@x",
		"CSeq: 1 REGISTER", "Contact: <sip:alice@"+wsHost+";transport=ws>", "Expires: 600", "Content-Length: 0"))
	if got := wsRecv(t, c, 5*time.Second); !bytes.HasPrefix(got, []byte("SIP/2.0 200 OK\r\n")) {
		t.Fatalf("REGISTER: got %q", got)
	}
	expired := lb.srv.Stats().ConnsExpired
	start := time.Now()
	lb.srv.Drain(DrainOptions{Idle: 300 * time.Millisecond})
	if _, _, err := lb.dial(t, "", "sip"); err == nil {
		t.Fatal("a new WebSocket connection was accepted while draining")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("read after the drain: %v (close status %d), want closed going away (1001)", err, got)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed %v after the drain began, want no sooner than its idle 300ms", d)
	}
	if got := lb.srv.Stats().ConnsExpired; got != expired+1 {
		t.Errorf("ConnsExpired %d, want %d", got, expired+1)
	}
	if !waitFor(5*time.Second, func() bool { return lb.srv.Stats().Conns == 0 }) {
		t.Errorf("%d connections open after the drain, want 0", lb.srv.Stats().Conns)
	}
}
