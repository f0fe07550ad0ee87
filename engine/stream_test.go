package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// tcpUAS is a backend over TCP: it answers like testUAS, on the connection
// each request came in on, and counts the connections it accepted.
type tcpUAS struct {
	ln       net.Listener
	addr     netip.AddrPort
	accepted atomic.Int64
	requests atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
}

func startTCPUAS(t *testing.T) *tcpUAS {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &tcpUAS{ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for _, c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepted.Add(1)
			u.mu.Lock()
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			go u.serve(c)
		}
	}()
	return u
}

// send writes raw bytes on the UAS's first accepted connection (a request
// the backend starts, such as a BYE).
func (u *tcpUAS) send(t *testing.T, b []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.conns) == 0 {
		t.Fatal("backend has no connection")
	}
	if _, err := u.conns[0].Write(b); err != nil {
		t.Fatal(err)
	}
}

func (u *tcpUAS) serve(c net.Conn) {
	var m parser.Message
	forEachFrame(c, func(msg []byte) {
		if parser.Parse(&m, msg) != nil || !m.IsRequest() || m.Method() == parser.ACK {
			return
		}
		u.requests.Add(1)
		c.Write(respond(msg, "200 OK", u.addr))
	})
}

// forEachFrame reads a stream and calls f with each framed SIP message.
func forEachFrame(r io.Reader, f func([]byte)) {
	var buf []byte
	tmp := make([]byte, 65536)
	for {
		n, err := r.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		for {
			k, kind, err := parser.Frame(buf, parser.Limits{})
			if err != nil || k == 0 {
				break
			}
			if kind == parser.FrameMessage {
				f(bytes.Clone(buf[:k]))
			}
			buf = buf[k:]
		}
	}
}

// startMixedLB runs a Server with a UDP and a TCP leg on the same free port
// in front of pool members.
func startMixedLB(t *testing.T, lim pool.Limits, members ...balance.BackendConfig) (udp, tcp netip.AddrPort, srv *Server) {
	t.Helper()
	udp, tcp, srv = newMixedLB(t, Options{Loops: 2, Limits: lim}, members...)
	runServerT(t, srv)
	return udp, tcp, srv
}

// newMixedLB is a Server, not yet running, with a UDP and a TCP leg on the
// same free port in front of pool members, under opts.
func newMixedLB(t *testing.T, opts Options, members ...balance.BackendConfig) (udp, tcp netip.AddrPort, srv *Server) {
	t.Helper()
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: members}})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{{Transport: balance.TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	legs = append(legs, LegConfig{Transport: balance.UDP, Addr: legs[0].Addr})
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	return legs[1].Addr, legs[0].Addr, NewServerWith(f, opts)
}

func tcpMember(u *tcpUAS) balance.BackendConfig {
	return balance.BackendConfig{Addr: u.addr, Transport: balance.TCP}
}

func optionsReq(local, callID string, cseq int) []byte {
	return sip("OPTIONS sip:service@example.com SIP/2.0",
		"Via: SIP/2.0/TCP "+local+";branch=z9hG4bK-"+callID+fmt.Sprint(cseq)+";rport",
		"Max-Forwards: 70", "From: <sip:a@example.com>;tag=f", "To: <sip:service@example.com>",
		"Call-ID: "+callID, fmt.Sprintf("CSeq: %d OPTIONS", cseq), "Content-Length: 0")
}

// readResponses reads n framed responses from c within d.
func readResponses(t *testing.T, c net.Conn, n int, d time.Duration) [][]byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	var got [][]byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		forEachFrame(c, func(msg []byte) {
			got = append(got, msg)
			if len(got) == n {
				c.SetReadDeadline(time.Now())
			}
		})
	}()
	<-done
	return got
}

func dialTCP(t *testing.T, addr netip.AddrPort) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStreamPipelinedAndSplit(t *testing.T) {
	uas := startTCPUAS(t)
	_, lb, _ := startMixedLB(t, pool.Limits{}, tcpMember(uas))

	t.Run("100 pipelined in one write", func(t *testing.T) {
		c := dialTCP(t, lb)
		var all []byte
		for i := range 100 {
			all = append(all, optionsReq(c.LocalAddr().String(), "pipe", i+1)...)
		}
		if _, err := c.Write(all); err != nil {
			t.Fatal(err)
		}
		got := readResponses(t, c, 100, 10*time.Second)
		if len(got) != 100 {
			t.Fatalf("%d responses to 100 pipelined requests", len(got))
		}
		for i, r := range got {
			if !bytes.HasPrefix(r, []byte("SIP/2.0 200 OK\r\n")) || !bytes.Contains(r, fmt.Appendf(nil, "CSeq: %d OPTIONS", i+1)) {
				t.Fatalf("response %d out of order or wrong: %q", i, r[:min(len(r), 80)])
			}
		}
	})

	t.Run("one message split at every byte", func(t *testing.T) {
		c := dialTCP(t, lb)
		msg := optionsReq(c.LocalAddr().String(), "split", 1)
		for i := range msg {
			if _, err := c.Write(msg[i : i+1]); err != nil {
				t.Fatal(err)
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // let some bytes arrive alone
			}
		}
		got := readResponses(t, c, 1, 5*time.Second)
		if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 OK\r\n")) {
			t.Fatalf("split message: got %d responses", len(got))
		}
	})

	t.Run("keep-alive ping gets a pong", func(t *testing.T) {
		c := dialTCP(t, lb)
		c.Write([]byte("\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b := make([]byte, 8)
		n, err := c.Read(b)
		if err != nil || string(b[:n]) != "\r\n" {
			t.Fatalf("pong = %q, %v; want CRLF", b[:n], err)
		}
	})
}

// A thousand TCP clients make calls at once; every response returns on its
// client's connection and the backends see a handful of connections.
func TestStreamManyClientsFewBackendConns(t *testing.T) {
	const clients = 1000
	uas := []*tcpUAS{startTCPUAS(t), startTCPUAS(t)}
	_, lb, srv := startMixedLB(t, pool.Limits{MaxConnsPerIP: 2 * clients}, tcpMember(uas[0]), tcpMember(uas[1]))
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = dialTCP(t, lb)
	}
	var wg sync.WaitGroup
	var ok atomic.Int64
	sem := make(chan struct{}, 200)
	for i, c := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("many-%d", i)
			if _, err := c.Write(optionsReq(c.LocalAddr().String(), id, 1)); err != nil {
				t.Error(err)
				return
			}
			got := readResponses(t, c, 1, 10*time.Second)
			if len(got) == 1 && bytes.Contains(got[0], []byte("Call-ID: "+id+"\r\n")) {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != clients {
		t.Fatalf("%d of %d clients got their response on their connection", ok.Load(), clients)
	}
	backendConns := uas[0].accepted.Load() + uas[1].accepted.Load()
	// One connection per backend and event loop (2 loops, 2 backends), plus
	// any opened while a first one was being set up.
	if backendConns > 8 {
		t.Errorf("backends accepted %d connections for %d clients, want a handful", backendConns, clients)
	}
	t.Logf("%d clients, backends saw %d connections, siplb holds %d streams", clients, backendConns, srv.Stats().Conns)
}

func TestStreamBackendRequestReachesClient(t *testing.T) {
	uas := startTCPUAS(t)
	_, lb, _ := startMixedLB(t, pool.Limits{}, tcpMember(uas))
	c := dialTCP(t, lb)
	local := c.LocalAddr().String()
	inv := sip("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/TCP "+local+";branch=z9hG4bK-flow;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>",
		"Call-ID: flow@x", "CSeq: 1 INVITE", "Contact: <sip:alice@10.99.0.1:5060;transport=tcp>", "Content-Length: 0")
	c.Write(inv)
	got := readResponses(t, c, 1, 5*time.Second)
	if len(got) != 1 {
		t.Fatal("no 200 to the INVITE")
	}
	var m parser.Message
	if err := parser.Parse(&m, got[0]); err != nil {
		t.Fatal(err)
	}
	rr, err := m.RecordRoute(0)
	if err != nil {
		t.Fatalf("200 has no Record-Route: %v", err)
	}
	// The backend hangs up: a BYE to the client's Contact (an address the
	// balancer cannot reach) with the route set, over its connection.
	bye := sip("BYE sip:alice@10.99.0.1:5060;transport=tcp SIP/2.0",
		"Via: SIP/2.0/TCP "+uas.addr.String()+";branch=z9hG4bK-bye",
		"Route: <"+string(rr.Raw)+">",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=uas", "To: <sip:alice@example.com>;tag=a",
		"Call-ID: flow@x", "CSeq: 1 BYE", "Content-Length: 0")
	uas.send(t, bye)
	got = readResponses(t, c, 1, 5*time.Second)
	if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("BYE sip:alice@10.99.0.1:5060;transport=tcp SIP/2.0\r\n")) {
		t.Fatalf("client did not get the backend's BYE on its connection: %q", got)
	}
}

func TestStreamUDPClientBehindNAT(t *testing.T) {
	uas := startUAS(t) // a UDP backend
	udpLB, _, _ := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
	c := newUAC(t, udpLB)
	// The client writes a private Contact and Via; only its datagrams'
	// source tells where it really is.
	inv := sip("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 10.99.0.2:5060;branch=z9hG4bK-nat;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>",
		"Call-ID: nat@x", "CSeq: 1 INVITE", "Contact: <sip:alice@10.99.0.2:5060>", "Content-Length: 0")
	resp, err := c.transact(inv)
	if err != nil {
		t.Fatal(err)
	}
	var m parser.Message
	if err := parser.Parse(&m, resp); err != nil || m.StatusCode() != 200 {
		t.Fatalf("INVITE: %v %d", err, m.StatusCode())
	}
	rr, _ := m.RecordRoute(0)
	bye := sip("BYE sip:alice@10.99.0.2:5060 SIP/2.0",
		"Via: SIP/2.0/UDP "+uas.addr.String()+";branch=z9hG4bK-natbye",
		"Route: <"+string(rr.Raw)+">",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=uas", "To: <sip:alice@example.com>;tag=a",
		"Call-ID: nat@x", "CSeq: 1 BYE", "Content-Length: 0")
	uas.conn.WriteToUDPAddrPort(bye, udpLB)
	c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := c.conn.ReadFromUDPAddrPort(c.buf)
	if err != nil || !bytes.HasPrefix(c.buf[:n], []byte("BYE ")) {
		t.Fatalf("the BYE did not reach the client's NAT address: %v %q", err, c.buf[:n])
	}
}

func TestStreamLimits(t *testing.T) {
	t.Run("idle expiry", func(t *testing.T) {
		uas := startTCPUAS(t)
		_, lb, srv := startMixedLB(t, pool.Limits{IdleMin: 300 * time.Millisecond, IdleMax: 300 * time.Millisecond}, tcpMember(uas))
		c := dialTCP(t, lb)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("idle connection got data instead of being closed")
		}
		if got := srv.Stats().ConnsExpired; got == 0 {
			t.Errorf("ConnsExpired = 0 after an idle close")
		}
	})
	t.Run("slow header", func(t *testing.T) {
		uas := startTCPUAS(t)
		_, lb, srv := startMixedLB(t, pool.Limits{HeaderDeadline: 300 * time.Millisecond}, tcpMember(uas))
		c := dialTCP(t, lb)
		c.Write([]byte("OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKslow\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("slow client was answered instead of cut off")
		}
		if got := srv.Stats().SlowClients; got != 1 {
			t.Errorf("SlowClients = %d, want 1", got)
		}
	})
	t.Run("per-IP cap", func(t *testing.T) {
		uas := startTCPUAS(t)
		_, lb, srv := startMixedLB(t, pool.Limits{MaxConnsPerIP: 3}, tcpMember(uas))
		var open []net.Conn
		for range 5 {
			open = append(open, dialTCP(t, lb))
		}
		deadline := time.Now().Add(3 * time.Second)
		for srv.Stats().ConnsRefused < 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := srv.Stats().ConnsRefused; got != 2 {
			t.Errorf("ConnsRefused = %d with 5 connections and a cap of 3, want 2", got)
		}
		_ = open
	})
	t.Run("connect to a dead backend", func(t *testing.T) {
		ln, _ := net.Listen("tcp4", "127.0.0.1:0")
		dead := ln.Addr().(*net.TCPAddr).AddrPort()
		ln.Close() // nothing listens there now: connect is refused
		_, lb, srv := startMixedLB(t, pool.Limits{ConnectTimeout: time.Second}, balance.BackendConfig{Addr: dead, Transport: balance.TCP})
		c := dialTCP(t, lb)
		c.Write(optionsReq(c.LocalAddr().String(), "dead", 1))
		deadline := time.Now().Add(5 * time.Second)
		for srv.Stats().Drop(DropConnectFailed) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := srv.Stats().Drop(DropConnectFailed); got != 1 {
			t.Errorf("connect_failed drops = %d, want 1", got)
		}
	})
	t.Run("no content-length on a stream", func(t *testing.T) {
		uas := startTCPUAS(t)
		_, lb, _ := startMixedLB(t, pool.Limits{}, tcpMember(uas))
		c := dialTCP(t, lb)
		msg := strings.Replace(string(optionsReq(c.LocalAddr().String(), "nocl", 1)), "Content-Length: 0\r\n", "", 1)
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "SIP/2.0 400 ") {
			t.Fatalf("answer %q (%v), want a 400 naming the missing Content-Length", line, err)
		}
	})
}

// Stats counts the open streams by transport and direction.
func TestStatsConnsByKind(t *testing.T) {
	uas := startTCPUAS(t)
	_, lb, srv := startMixedLB(t, pool.Limits{}, tcpMember(uas))
	c := dialTCP(t, lb)
	c.Write(optionsReq(c.LocalAddr().String(), "kinds", 1))
	if got := readResponses(t, c, 1, 5*time.Second); len(got) != 1 {
		t.Fatal("no answer")
	}
	by := srv.Stats().ConnsBy
	if by[ConnKind{Transport: balance.TCP, Inbound: true}] != 1 || by[ConnKind{Transport: balance.TCP}] != 1 {
		t.Errorf("connections by kind %v (%d open), want one TCP in (the client) and one TCP out (to the backend)", by, srv.Stats().Conns)
	}
}
