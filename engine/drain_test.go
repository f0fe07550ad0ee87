package engine

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// The transactions open on a stream, counted from the first line of what
// it carries.
func TestTxTrack(t *testing.T) {
	inv := invite("tx@x", "z9hG4bKtx")
	ok := []byte("SIP/2.0 200 OK\r\n\r\n")
	ringing := []byte("SIP/2.0 180 Ringing\r\n\r\n")
	busy := []byte("SIP/2.0 486 Busy Here\r\n\r\n")
	ack := []byte("ACK sip:bob@example.com SIP/2.0\r\n\r\n")
	sub := []byte("SUBSCRIBE sip:bob@example.com SIP/2.0\r\n\r\n")
	tests := []struct {
		name     string
		msgs     [][]byte
		wantOpen int32
	}{
		{name: "nothing", wantOpen: 0},
		{name: "request open", msgs: [][]byte{inv}, wantOpen: 1},
		{name: "provisional keeps it open", msgs: [][]byte{inv, ringing}, wantOpen: 1},
		{name: "final closes it", msgs: [][]byte{inv, ringing, ok}, wantOpen: 0},
		{name: "ACK opens nothing", msgs: [][]byte{inv, ok, ack}, wantOpen: 0},
		{name: "a method starting with S is a request", msgs: [][]byte{sub, inv, busy}, wantOpen: 1},
		{name: "extra finals (forked 2xx) do not go below 0", msgs: [][]byte{inv, ok, ok, ok, inv}, wantOpen: 1},
		{name: "pings and junk are not messages", msgs: [][]byte{[]byte("\r\n\r\n"), []byte("\x16\x03\x01"), {}}, wantOpen: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr txTrack
			for i, m := range tc.msgs {
				tr.carry(m, int64(i+1))
			}
			if got := tr.open.Load(); got != tc.wantOpen {
				t.Errorf("open = %d, want %d", got, tc.wantOpen)
			}
			idle := tr.idle(100, 10)
			if want := tc.wantOpen == 0; idle != want {
				t.Errorf("idle = %v, want %v", idle, want)
			}
		})
	}
	var tr txTrack
	tr.carry(inv, 50)
	tr.carry(ok, 95)
	if tr.idle(100, 10) {
		t.Error("idle 5 ns after a message, want not idle within 10")
	}
	if !tr.idle(105, 10) {
		t.Error("not idle 10 ns after the last message")
	}
}

// While draining under RejectNewDialogs, what would start a dialog from
// outside gets a 503 with Retry-After; requests inside dialogs, CANCEL,
// ACK, responses and requests from backends go on as before. Under
// ForwardNewDialogs nothing changes.
func TestDrainNewDialogs(t *testing.T) {
	inDialog := sip("BYE sip:uas@"+backends[0].String()+" SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbye;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Call-ID: dlg@x", "CSeq: 2 BYE", "Content-Length: 0")
	cancel := sip("CANCEL sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
		"Call-ID: inv@x", "CSeq: 1 CANCEL", "Content-Length: 0")
	options := sip("OPTIONS sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKopt;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
		"Call-ID: opt@x", "CSeq: 1 OPTIONS", "Content-Length: 0")
	fromBackend := sip("BYE sip:alice@127.0.0.1:40000 SIP/2.0",
		"Via: SIP/2.0/UDP "+backends[1].String()+";branch=z9hG4bKbb1",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b9", "To: <sip:alice@example.com>;tag=a1",
		"Call-ID: back@x", "CSeq: 1 BYE", "Content-Length: 0")
	tests := []struct {
		name    string
		policy  NewDialogs
		in      []byte
		src     netip.AddrPort
		want503 bool
	}{
		{name: "INVITE rejected", policy: RejectNewDialogs, in: invite("inv@x", "z9hG4bKinv"), src: client, want503: true},
		{name: "out-of-dialog OPTIONS rejected", policy: RejectNewDialogs, in: options, src: client, want503: true},
		{name: "in-dialog BYE forwarded", policy: RejectNewDialogs, in: inDialog, src: client},
		{name: "CANCEL forwarded", policy: RejectNewDialogs, in: cancel, src: client},
		{name: "request from a backend forwarded", policy: RejectNewDialogs, in: fromBackend, src: backends[1]},
		{name: "INVITE forwarded under forward", policy: ForwardNewDialogs, in: invite("inv@x", "z9hG4bKinv"), src: client},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestForwarder(t)
			f.draining.Store(tc.policy == RejectNewDialogs)
			r, m := fwd(t, f, tc.in, tc.src)
			if m == nil {
				t.Fatalf("dropped (%v), want an answer or a forward", r.Drop)
			}
			got503 := r.Status == 503
			if got503 != tc.want503 {
				t.Fatalf("status %d (to %s), want 503: %v", r.Status, r.To, tc.want503)
			}
			if got503 {
				if !bytes.Contains(r.Out, []byte("\r\nRetry-After: 5\r\n")) || r.To != tc.src {
					t.Errorf("503 to %s without Retry-After:\n%s", r.To, r.Out)
				}
				return
			}
			if r.Status != 0 {
				t.Errorf("answered %d, want forwarded", r.Status)
			}
		})
	}
	// The ACK of a new dialog's 503 is dropped, never answered.
	f := newTestForwarder(t)
	f.draining.Store(true)
	ack := sip("ACK sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=lb1",
		"Call-ID: inv@x", "CSeq: 1 ACK", "Content-Length: 0")
	if r := f.Process(f.NewScratch(), ack, client, f.Legs()[0]); r.Status != 0 {
		t.Errorf("ACK answered %d", r.Status)
	}
}

// slowTCPUAS is a TCP backend that answers an INVITE after delay (and
// anything else but ACK at once) on the connection it came on.
func startSlowTCPUAS(t *testing.T, delay time.Duration) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go forEachFrame(c, func(msg []byte) {
				var m parser.Message
				if parser.Parse(&m, msg) != nil || !m.IsRequest() || m.Method() == parser.ACK {
					return
				}
				if m.Method() == parser.INVITE {
					time.AfterFunc(delay, func() { c.Write(respond(msg, "200 OK", addr)) })
					return
				}
				c.Write(respond(msg, "200 OK", addr))
			})
		}
	}()
	return addr
}

// waitClosed reads c until the peer closes it, for up to limit.
func waitClosed(t *testing.T, c net.Conn, limit time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open %v after the drain began", limit)
	}
}

// A drain over TCP: the listener refuses new connections at once; a new
// INVITE on a connection already open gets 503; the INVITE in flight (its
// backend answers after 1 s) is answered through siplb, its ACK forwarded;
// then the connection, idle, is closed, and so is the one to the backend.
func TestServerDrainTCP(t *testing.T) {
	be := startSlowTCPUAS(t, time.Second)
	_, lb, srv := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: be, Transport: balance.TCP})
	c := dialTCP(t, lb)
	local := c.LocalAddr().String()
	mk := func(callID string) []byte {
		return bytes.ReplaceAll(invite(callID, "z9hG4bK-"+strings.ReplaceAll(callID, "@", "-")), []byte("UDP 127.0.0.1:40000"), []byte("TCP "+local))
	}
	if _, err := c.Write(mk("inflight@x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the INVITE is at the backend
	srv.Drain(DrainOptions{NewDialogs: RejectNewDialogs, Idle: 300 * time.Millisecond})
	if !srv.Draining() {
		t.Fatal("Draining() false after Drain")
	}
	if c2, err := net.DialTimeout("tcp4", lb.String(), time.Second); err == nil {
		c2.Close()
		t.Fatal("a new TCP connection was accepted while draining")
	}
	if _, err := c.Write(mk("new@x")); err != nil {
		t.Fatal(err)
	}
	got := readResponses(t, c, 2, 5*time.Second)
	if len(got) != 2 {
		t.Fatalf("got %d responses, want the 503 and the 200: %q", len(got), got)
	}
	var rejected, answered bool
	for _, r := range got {
		switch {
		case bytes.HasPrefix(r, []byte("SIP/2.0 503 ")) && bytes.Contains(r, []byte("Call-ID: new@x")):
			rejected = bytes.Contains(r, []byte("Retry-After: "))
		case bytes.HasPrefix(r, []byte("SIP/2.0 200 ")) && bytes.Contains(r, []byte("Call-ID: inflight@x")):
			answered = true
		}
	}
	if !rejected || !answered {
		t.Fatalf("want a 503 with Retry-After for new@x and the 200 for inflight@x, got %q", got)
	}
	c.Write(bytes.Replace(bytes.Replace(mk("inflight@x"), []byte("INVITE sip:"), []byte("ACK sip:"), 1), []byte("1 INVITE"), []byte("1 ACK"), 1))
	start := time.Now()
	waitClosed(t, c, 5*time.Second)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed %v after the last message, want no sooner than the idle 300ms", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Conns > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := srv.Stats().Conns; n != 0 {
		t.Errorf("%d connections open after the drain, want 0", n)
	}
}

// A drain over TLS: new connections refused, an idle one closed.
func TestServerDrainTLS(t *testing.T) {
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	uas := startUAS(t)
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	srv := startLegs(t, legs, balance.BackendConfig{Addr: uas.addr})
	cfg := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
	c, err := tls.Dial("tcp", legs[0].Addr.String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opt := strings.ReplaceAll(string(optionsReq(c.LocalAddr().String(), "tlsdrain", 1)), "SIP/2.0/TCP", "SIP/2.0/TLS")
	c.Write([]byte(opt))
	if got := readResponses(t, c, 1, 5*time.Second); len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 ")) {
		t.Fatalf("OPTIONS over TLS: %q", got)
	}
	c.SetReadDeadline(time.Time{})
	srv.Drain(DrainOptions{Idle: 200 * time.Millisecond})
	if c2, err := tls.Dial("tcp", legs[0].Addr.String(), cfg); err == nil {
		c2.Close()
		t.Fatal("a new TLS connection was accepted while draining")
	}
	waitClosed(t, c, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Conns > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := srv.Stats().Conns; n != 0 {
		t.Errorf("%d connections open after the drain, want 0", n)
	}
}
