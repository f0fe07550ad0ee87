package engine

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
)

// testUAS is a backend on a loopback UDP socket: it answers INVITE with 200
// (To tag, Contact naming itself, Record-Route copied), BYE and OPTIONS with
// 200, CANCEL with 200 and 487, and records every request it sees by Call-ID.
type testUAS struct {
	conn *net.UDPConn
	addr netip.AddrPort

	mu   sync.Mutex
	seen map[string][]string // Call-ID → methods
}

func startUAS(t *testing.T) *testUAS {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	u := &testUAS{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), seen: map[string][]string{}}
	t.Cleanup(func() { c.Close() })
	go u.serve()
	return u
}

func (u *testUAS) serve() {
	buf := make([]byte, 65536)
	var m parser.Message
	for {
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg := buf[:n]
		if parser.Parse(&m, msg) != nil || !m.IsRequest() {
			continue
		}
		method := string(m.MethodName())
		u.mu.Lock()
		u.seen[string(m.CallID())] = append(u.seen[string(m.CallID())], method)
		u.mu.Unlock()
		switch m.Method() {
		case parser.ACK:
		case parser.INVITE:
			u.conn.WriteToUDPAddrPort(respond(msg, "200 OK", u.addr), from)
		case parser.CANCEL:
			u.conn.WriteToUDPAddrPort(respond(msg, "200 OK", u.addr), from)
			inv := bytes.Replace(respond(msg, "487 Request Terminated", u.addr), []byte(" CANCEL\r\n"), []byte(" INVITE\r\n"), 1)
			u.conn.WriteToUDPAddrPort(inv, from)
		default:
			u.conn.WriteToUDPAddrPort(respond(msg, "200 OK", u.addr), from)
		}
	}
}

func (u *testUAS) methods(callID string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen[callID]...)
}

func (u *testUAS) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, ms := range u.seen {
		if len(ms) > 0 && ms[0] == "INVITE" {
			n++
		}
	}
	return n
}

// respond builds a response to req that copies Via, From, To (adding a tag),
// Call-ID, CSeq and Record-Route, as a UAS does (RFC 3261 §8.2.6, §12.1.1).
func respond(req []byte, status string, self netip.AddrPort) []byte {
	out := []byte("SIP/2.0 " + status + "\r\n")
	for line := range strings.SplitSeq(string(req), "\r\n") {
		if line == "" {
			break
		}
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "call-id", "i", "cseq", "record-route":
			out = append(out, line+"\r\n"...)
		case "to", "t":
			if !strings.Contains(line, "tag=") {
				line += ";tag=uas"
			}
			out = append(out, line+"\r\n"...)
		}
	}
	out = append(out, "Contact: <sip:uas@"+self.String()+">\r\nContent-Length: 0\r\n\r\n"...)
	return out
}

// startLB runs a Server on a free loopback port in front of uas and returns
// its address.
func startLB(t *testing.T, loops int, uas ...*testUAS) (netip.AddrPort, *Server) {
	t.Helper()
	pc := balance.PoolConfig{Name: "farm", Algorithm: balance.HashCallID}
	for _, u := range uas {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: u.addr, Transport: balance.UDP, Weight: 1, Priority: 1})
	}
	bal, err := balance.New([]balance.PoolConfig{pc})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(f, loops, nil)
	runServerT(t, srv)
	return legs[0].Addr, srv
}

// uac is a client socket that sends requests and waits for the response
// with a given status.
type uac struct {
	t    *testing.T
	conn *net.UDPConn
	lb   netip.AddrPort
	buf  []byte
	m    parser.Message
}

func newUAC(t *testing.T, lb netip.AddrPort) *uac {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &uac{t: t, conn: c, lb: lb, buf: make([]byte, 65536)}
}

func (c *uac) local() string { return c.conn.LocalAddr().String() }

// transact sends req and returns the first final response to it (same
// Call-ID and CSeq method; a copy), or an error after a timeout with two
// retransmissions.
func (c *uac) transact(req []byte) ([]byte, error) {
	var rm parser.Message
	if err := parser.Parse(&rm, req); err != nil {
		return nil, err
	}
	callID := bytes.Clone(rm.CallID())
	method := bytes.Clone(rm.CSeqMethodName())
	for try := 0; try < 3; try++ {
		if _, err := c.conn.WriteToUDPAddrPort(req, c.lb); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(time.Second)
		for {
			c.conn.SetReadDeadline(deadline)
			n, _, err := c.conn.ReadFromUDPAddrPort(c.buf)
			if err != nil {
				break // retransmit
			}
			if parser.Parse(&c.m, c.buf[:n]) != nil || c.m.IsRequest() || c.m.StatusCode() < 200 ||
				!bytes.Equal(c.m.CallID(), callID) || !bytes.Equal(c.m.CSeqMethodName(), method) {
				continue
			}
			return bytes.Clone(c.buf[:n]), nil
		}
	}
	return nil, fmt.Errorf("no final response")
}

func (c *uac) send(req []byte) {
	if _, err := c.conn.WriteToUDPAddrPort(req, c.lb); err != nil {
		c.t.Error(err)
	}
}

// call runs INVITE → 200 → ACK → BYE → 200 through the balancer and returns
// the backend (from the 200's Contact).
func (c *uac) call(callID string) (string, error) {
	inv := sip("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.local()+";branch=z9hG4bK-"+callID+";rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>",
		"Call-ID: "+callID, "CSeq: 1 INVITE", "Contact: <sip:alice@"+c.local()+">", "Content-Length: 0")
	resp, err := c.transact(inv)
	if err != nil {
		return "", fmt.Errorf("INVITE: %w", err)
	}
	var m parser.Message
	if err := parser.Parse(&m, resp); err != nil {
		return "", err
	}
	if m.StatusCode() != 200 {
		return "", fmt.Errorf("INVITE answered %d", m.StatusCode())
	}
	contact, err := m.Contact(0)
	if err != nil {
		return "", fmt.Errorf("200 Contact: %w", err)
	}
	target := string(contact.Host) + ":" + fmt.Sprint(contact.Port)
	var route []string
	for i := m.NumRecordRoute() - 1; i >= 0; i-- {
		rr, _ := m.RecordRoute(i)
		route = append(route, "Route: <sip:"+string(rr.Host)+":"+fmt.Sprint(rr.Port)+";lr>")
	}
	toTag := string(m.ToTag())
	dialog := func(method, branch string, cseq int) []byte {
		lines := []string{method + " sip:uas@" + target + " SIP/2.0",
			"Via: SIP/2.0/UDP " + c.local() + ";branch=z9hG4bK-" + branch + ";rport"}
		lines = append(lines, route...)
		lines = append(lines, "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a",
			"To: <sip:bob@example.com>;tag="+toTag, "Call-ID: "+callID,
			fmt.Sprintf("CSeq: %d %s", cseq, method), "Content-Length: 0")
		return sip(lines...)
	}
	c.send(dialog("ACK", callID+"-ack", 1))
	resp, err = c.transact(dialog("BYE", callID+"-bye", 2))
	if err != nil {
		return "", fmt.Errorf("BYE: %w", err)
	}
	if err := parser.Parse(&m, resp); err != nil || m.StatusCode() != 200 {
		return "", fmt.Errorf("BYE answered %d (%v)", m.StatusCode(), err)
	}
	return target, nil
}

// Three thousand calls over three equal backends: all complete, each backend
// takes a third ± 5 points, and ACK and BYE reach the INVITE's backend.
func TestServerCallsSpreadEvenly(t *testing.T) {
	uas := []*testUAS{startUAS(t), startUAS(t), startUAS(t)}
	lb, srv := startLB(t, 2, uas...)
	const calls, workers = 3000, 30
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for w := range workers {
		c := newUAC(t, lb)
		wg.Go(func() {
			for i := w; i < calls; i += workers {
				if _, err := c.call(fmt.Sprintf("spread-%d", i)); err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed < 5 {
			t.Error(err)
		}
		failed++
	}
	if failed > 0 {
		t.Fatalf("%d of %d calls failed", failed, calls)
	}
	for i, u := range uas {
		share := float64(u.calls()) / calls
		if share < 0.2833 || share > 0.3833 {
			t.Errorf("backend %d took %.1f%% of calls, want 33.3%% ± 5", i, share*100)
		}
	}
	for i := range calls {
		id := fmt.Sprintf("spread-%d", i)
		holders := 0
		for _, u := range uas {
			if ms := u.methods(id); len(ms) > 0 {
				holders++
				if strings.Join(ms, ",") != "INVITE,ACK,BYE" {
					t.Errorf("%s: backend saw %v, want INVITE,ACK,BYE", id, ms)
				}
			}
		}
		if holders != 1 {
			t.Errorf("%s: %d backends saw the dialog, want 1", id, holders)
		}
	}
	st := srv.Stats()
	if st.RequestsIn < 3*calls || st.ResponsesOut < 2*calls {
		t.Errorf("counters: %d requests in, %d responses out; want at least %d and %d", st.RequestsIn, st.ResponsesOut, 3*calls, 2*calls)
	}
}

func TestServerCancelReachesInviteBackend(t *testing.T) {
	uas := []*testUAS{startUAS(t), startUAS(t), startUAS(t)}
	lb, _ := startLB(t, 1, uas...)
	c := newUAC(t, lb)
	for i := range 30 {
		id := fmt.Sprintf("cancel-%d", i)
		via := "Via: SIP/2.0/UDP " + c.local() + ";branch=z9hG4bK-" + id + ";rport"
		c.send(sip("INVITE sip:bob@example.com SIP/2.0", via, "Max-Forwards: 70",
			"From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>", "Call-ID: "+id,
			"CSeq: 1 INVITE", "Content-Length: 0"))
		resp, err := c.transact(sip("CANCEL sip:bob@example.com SIP/2.0", via, "Max-Forwards: 70",
			"From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>", "Call-ID: "+id,
			"CSeq: 1 CANCEL", "Content-Length: 0"))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if !bytes.HasPrefix(resp, []byte("SIP/2.0 200 ")) {
			t.Fatalf("%s: CANCEL answered %q", id, bytes.SplitN(resp, []byte("\r\n"), 2)[0])
		}
		holders := 0
		for _, u := range uas {
			ms := u.methods(id)
			if len(ms) > 0 {
				holders++
			}
			if len(ms) == 1 {
				t.Errorf("%s: a backend saw only %v", id, ms)
			}
		}
		if holders != 1 {
			t.Errorf("%s: INVITE and CANCEL reached %d backends, want 1", id, holders)
		}
	}
}

func TestServerRepliesAndDrops(t *testing.T) {
	uas := startUAS(t)
	lb, srv := startLB(t, 1, uas)
	c := newUAC(t, lb)
	resp, err := c.transact(sip("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.local()+";branch=z9hG4bK-mf0;rport", "Max-Forwards: 0",
		"From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>", "Call-ID: mf0",
		"CSeq: 1 INVITE", "Content-Length: 0"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(resp, []byte("SIP/2.0 483 Too Many Hops\r\n")) {
		t.Errorf("Max-Forwards 0 answered %q, want 483 Too Many Hops", bytes.SplitN(resp, []byte("\r\n"), 2)[0])
	}
	if len(uas.methods("mf0")) != 0 {
		t.Errorf("backend saw a request with Max-Forwards 0")
	}

	// A response whose top Via is not ours is dropped and counted.
	foreign := sip("SIP/2.0 200 OK", "Via: SIP/2.0/UDP 10.7.7.7:5060;branch=z9hG4bKforeign",
		"Via: SIP/2.0/UDP "+c.local()+";branch=z9hG4bK-x", "From: <sip:a@x>;tag=1",
		"To: <sip:b@x>;tag=2", "Call-ID: foreign", "CSeq: 1 INVITE", "Content-Length: 0")
	c.send(foreign)
	deadline := time.Now().Add(3 * time.Second)
	for srv.Stats().Drop(DropForeignVia) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := srv.Stats().Drop(DropForeignVia); got != 1 {
		t.Errorf("foreign_via drops = %d, want 1", got)
	}
	c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := c.conn.ReadFromUDPAddrPort(c.buf); err == nil {
		t.Errorf("the foreign response came back: %q", c.buf[:n])
	}
}

// A request that fits a datagram but whose forwarded form (our Via and
// Record-Route added) would not is dropped and counted as oversize, never
// cut short; a normal request on the same socket goes on.
func TestServerOversizeDatagramDropped(t *testing.T) {
	uas := startUAS(t)
	lb, srv := startLB(t, 1, uas)
	c := newUAC(t, lb)
	hdr := sip("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.local()+";branch=z9hG4bK-big;rport", "Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>", "Call-ID: big",
		"CSeq: 1 INVITE", "Content-Type: application/octet-stream", "Content-Length: 00000")
	hdr = hdr[:len(hdr)-len("00000\r\n\r\n")]
	body := bytes.Repeat([]byte("x"), 65400-len(hdr)-len("00000\r\n\r\n"))
	big := fmt.Appendf(nil, "%s%05d\r\n\r\n%s", hdr, len(body), body)
	if len(big) != 65400 {
		t.Fatalf("request is %d bytes", len(big))
	}
	c.send(big)
	deadline := time.Now().Add(3 * time.Second)
	for srv.Stats().Drop(DropOversize) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := srv.Stats().Drop(DropOversize); got != 1 {
		t.Errorf("oversize drops = %d, want 1", got)
	}
	if _, err := c.call("after-big"); err != nil {
		t.Fatalf("a call after the oversize request: %v", err)
	}
	if m := uas.methods("big"); len(m) != 0 {
		t.Errorf("the backend got %v for the oversize request", m)
	}
}
