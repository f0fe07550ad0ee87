package load

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/benchmarks/internal/echo"
	"github.com/siplb/siplb/benchmarks/internal/sipwire"
)

// startEcho serves one sipecho socket on 127.0.0.1:0 until the test ends.
func startEcho(t testing.TB) (*echo.Server, netip.AddrPort) {
	t.Helper()
	srv := serveEcho(t, "127.0.0.1:0")
	return srv, srv.Addrs()[0]
}

// startEchoTCP serves one sipecho TCP listener on 127.0.0.1:0 until the test
// ends; statsKey is its key in the echo's Stats.
func startEchoTCP(t testing.TB) (srv *echo.Server, addr netip.AddrPort, statsKey string) {
	t.Helper()
	srv = serveEcho(t, "tcp://127.0.0.1:0")
	addr = srv.TCPAddrs()[0]
	return srv, addr, "tcp://" + addr.String()
}

func serveEcho(t testing.TB, listen string) *echo.Server {
	t.Helper()
	srv, err := echo.Listen([]string{listen})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(t.Context()) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("echo: %v", err)
		}
	})
	return srv
}

func TestRunAgainstEcho(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantEcho map[string]uint64 // messages the echo must have counted
	}{
		{
			name:     "500 calls, closed loop",
			cfg:      Config{Scenario: Call, N: 500, Window: 50},
			wantEcho: map[string]uint64{"INVITE": 500, "ACK": 500, "BYE": 500},
		},
		{
			name:     "options, closed loop",
			cfg:      Config{Scenario: Options, N: 1000, Window: 20, Sockets: 2},
			wantEcho: map[string]uint64{"OPTIONS": 1000},
		},
		{
			name:     "register",
			cfg:      Config{Scenario: Register, N: 300},
			wantEcho: map[string]uint64{"REGISTER": 300},
		},
		{
			name:     "calls, open loop",
			cfg:      Config{Scenario: Call, N: 200, Rate: 2000},
			wantEcho: map[string]uint64{"INVITE": 200, "ACK": 200, "BYE": 200},
		},
		{
			name:     "500 calls over tcp, closed loop",
			cfg:      Config{Scenario: Call, N: 500, Window: 50, Transport: TCP},
			wantEcho: map[string]uint64{"INVITE": 500, "ACK": 500, "BYE": 500},
		},
		{
			name:     "options over tcp, one connection",
			cfg:      Config{Scenario: Options, N: 1000, Window: 20, Sockets: 1, Transport: TCP},
			wantEcho: map[string]uint64{"OPTIONS": 1000},
		},
		{
			name:     "calls over tcp, open loop",
			cfg:      Config{Scenario: Call, N: 200, Rate: 2000, Transport: TCP},
			wantEcho: map[string]uint64{"INVITE": 200, "ACK": 200, "BYE": 200},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := startEcho(t)
			statsKey := addr.String()
			if tc.cfg.Transport == TCP {
				srv, addr, statsKey = startEchoTCP(t)
			}
			cfg := tc.cfg
			cfg.Target = addr.String()
			cfg.Duration = 10 * time.Second
			res, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			n := uint64(cfg.N)
			if res.Sent != n || res.Completed != n || res.Failed != 0 || res.Lost != 0 || !res.OK() {
				t.Fatalf("sent %d completed %d failed %d lost %d, want %d completed", res.Sent, res.Completed, res.Failed, res.Lost, n)
			}
			if len(res.Backends) != 1 || res.Backends[0].Addr != addr.String() || res.Backends[0].Count != n {
				t.Errorf("Backends = %+v, want all %d from %s", res.Backends, n, addr)
			}
			if res.Latency.Count != n || res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 {
				t.Errorf("Latency = %+v", res.Latency)
			}
			if (res.ByeLatency != nil) != (cfg.Scenario == Call) {
				t.Errorf("ByeLatency = %+v for %v", res.ByeLatency, cfg.Scenario)
			}
			if res.Throughput <= 0 || res.Unmatched != 0 {
				t.Errorf("Throughput %v, Unmatched %d", res.Throughput, res.Unmatched)
			}
			st := srv.Stats()[statsKey]
			for method, want := range tc.wantEcho {
				if st[method] != want {
					t.Errorf("echo counted %d %s, want %d (all: %v)", st[method], method, want, st)
				}
			}
			var sb strings.Builder
			if err := res.WriteText(&sb); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"completed  ", "throughput", "p99.9", addr.String(), "100.0%"} {
				if !strings.Contains(sb.String(), want) {
					t.Errorf("WriteText lacks %q:\n%s", want, sb.String())
				}
			}
			if _, err := json.Marshal(res); err != nil {
				t.Error(err)
			}
		})
	}
}

// silent is a UDP socket on 127.0.0.1:0 that reads and drops everything.
func silent(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRunLost(t *testing.T) {
	c := silent(t)
	res, err := Run(t.Context(), Config{
		Target: c.LocalAddr().String(), Scenario: Options, N: 30, Window: 10,
		Timeout: 50 * time.Millisecond, Duration: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 30 || res.Lost != 30 || res.Completed != 0 || res.OK() {
		t.Errorf("sent %d lost %d completed %d OK %v, want 30 lost", res.Sent, res.Lost, res.Completed, res.OK())
	}
}

func TestRunDurationBound(t *testing.T) {
	c := silent(t)
	start := time.Now()
	res, err := Run(t.Context(), Config{
		Target: c.LocalAddr().String(), Scenario: Call, Window: 5,
		Timeout: time.Second, Duration: 100 * time.Millisecond, Drain: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v, want about 200ms", d)
	}
	if res.Sent != 5 || res.Lost != 5 {
		t.Errorf("sent %d lost %d, want the 5 outstanding lost at the end", res.Sent, res.Lost)
	}
}

// busyUAS answers every INVITE with 486 and records the ACKs it gets.
func busyUAS(t *testing.T, acks chan<- string) netip.AddrPort {
	t.Helper()
	c := silent(t)
	go func() {
		buf := make([]byte, 65535)
		var m sipwire.Msg
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if !sipwire.Scan(&m, buf[:n]) || !m.Request {
				continue
			}
			if string(m.Method) == "ACK" {
				acks <- string(buf[:n])
				continue
			}
			resp := "SIP/2.0 486 Busy Here\r\nVia: " + string(m.Vias[0]) + "\r\nFrom: " + string(m.From) +
				"\r\nTo: " + string(m.To) + ";tag=busy\r\nCall-ID: " + string(m.CallID) +
				"\r\nCSeq: " + string(m.CSeq) + "\r\nContent-Length: 0\r\n\r\n"
			c.WriteToUDPAddrPort([]byte(resp), src)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestRunFailedACKed(t *testing.T) {
	acks := make(chan string, 100)
	addr := busyUAS(t, acks)
	res, err := Run(t.Context(), Config{Target: addr.String(), Scenario: Call, N: 20, Window: 4, Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 20 || res.FailedByStatus["486"] != 20 || res.OK() {
		t.Errorf("failed %d by status %v OK %v, want 20 × 486", res.Failed, res.FailedByStatus, res.OK())
	}
	select {
	case ack := <-acks:
		var m sipwire.Msg
		if !sipwire.Scan(&m, []byte(ack)) {
			t.Fatalf("ACK does not scan: %q", ack)
		}
		// RFC 3261 §17.1.1.3: same branch as the INVITE (kind letter 'i'), To tag of the response.
		if !strings.Contains(string(m.Vias[0]), "i;rport") || string(sipwire.Tag(m.To)) != "busy" ||
			string(m.CSeq) != "1 ACK" {
			t.Errorf("ACK for 486 = %q", ack)
		}
	case <-time.After(2 * time.Second):
		t.Error("no ACK for the 486")
	}
	if !strings.Contains(failedDetail(res.FailedByStatus), "486: 20") {
		t.Errorf("failedDetail = %q", failedDetail(res.FailedByStatus))
	}
}

func TestInDialogRequests(t *testing.T) {
	sink := silent(t)
	r := &runner{cfg: Config{Scenario: Call}, target: sink.LocalAddr().(*net.UDPAddr).AddrPort(), targetS: "127.0.0.1:5060"}
	copy(r.runTag[:], "0badc0de")
	sk := newSock(silent(t))
	s := r.newSlot(3, sk)
	s.gen = 6
	r.begin(s, 0) // generation 7
	var inv sipwire.Msg
	if !sipwire.Scan(&inv, s.req) {
		t.Fatalf("INVITE does not scan: %q", s.req)
	}
	ok := "SIP/2.0 200 OK\r\n" +
		"Via: " + string(inv.Vias[0]) + "\r\n" +
		"Record-Route: <sip:lb.example;lr>, <sip:p2.example;lr>\r\n" +
		"Record-Route: <sip:p3.example;lr>\r\n" +
		"From: " + string(inv.From) + "\r\nTo: " + string(inv.To) + ";tag=remote\r\n" +
		"Call-ID: " + string(inv.CallID) + "\r\nCSeq: 1 INVITE\r\n" +
		"Contact: \"B\" <sip:echo@10.0.0.5:5080;transport=udp>;expires=60\r\nContent-Length: 0\r\n\r\n"
	var m sipwire.Msg
	if !sipwire.Scan(&m, []byte(ok)) {
		t.Fatal("200 does not scan")
	}
	if idx, gen, okID := r.parseCallID(m.CallID); !okID || idx != 3 || gen != 7 {
		t.Fatalf("parseCallID(%q) = %d, %d, %v; want 3, 7", m.CallID, idx, gen, okID)
	}
	var routes [][]byte
	for _, v := range m.RecordRoutes {
		routes = sipwire.SplitList(routes, v)
	}
	tests := []struct {
		method, cseq, kind string
	}{
		{method: "ACK", cseq: "1 ACK", kind: "a"},
		{method: "BYE", cseq: "2 BYE", kind: "b"},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			b := r.appendInDialog(nil, s, &m, routes, tc.method, tc.kind[0])
			var req sipwire.Msg
			if !sipwire.Scan(&req, b) {
				t.Fatalf("%s does not scan: %q", tc.method, b)
			}
			checks := []struct{ what, got, want string }{
				{"method", string(req.Method), tc.method},
				{"Request-URI", string(req.URI), "sip:echo@10.0.0.5:5080;transport=udp"},
				{"Route", routeOf(b), "<sip:p3.example;lr>, <sip:p2.example;lr>, <sip:lb.example;lr>"},
				{"To tag", string(sipwire.Tag(req.To)), "remote"},
				{"From", string(req.From), string(inv.From)},
				{"Call-ID", string(req.CallID), string(inv.CallID)},
				{"CSeq", string(req.CSeq), tc.cseq},
				{"branch", branchOf(req.Vias[0]), "z9hG4bK0badc0de0000000300000007" + tc.kind},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s %s = %q, want %q", tc.method, c.what, c.got, c.want)
				}
			}
		})
	}
	if got := branchOf(inv.Vias[0]); got != "z9hG4bK0badc0de0000000300000007i" {
		t.Errorf("INVITE branch = %q", got)
	}
}

func routeOf(b []byte) string {
	for line := range strings.SplitSeq(string(b), "\r\n") {
		if v, ok := strings.CutPrefix(line, "Route: "); ok {
			return v
		}
	}
	return ""
}

func branchOf(via []byte) string {
	_, after, _ := strings.Cut(string(via), "branch=")
	before, _, _ := strings.Cut(after, ";")
	return before
}

func TestParseScenario(t *testing.T) {
	for _, sc := range []Scenario{Options, Call, Register} {
		got, err := ParseScenario(sc.String())
		if err != nil || got != sc {
			t.Errorf("ParseScenario(%q) = %v, %v", sc.String(), got, err)
		}
	}
	if _, err := ParseScenario("subscribe"); err == nil {
		t.Error("ParseScenario(subscribe): no error")
	}
	if _, err := Run(t.Context(), Config{}); err == nil {
		t.Error("Run without target: no error")
	}
}

// TestTCPWire checks what goes over a TCP connection: the Via names TCP and
// the connection's local address, the Contact says transport=tcp, and a
// response split across reads, after a keep-alive ping, is still matched.
func TestTCPWire(t *testing.T) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	type seen struct {
		via, contact, peer string
		err                error
	}
	got := make(chan seen, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			got <- seen{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			got <- seen{err: err}
			return
		}
		var m sipwire.Msg
		if !sipwire.Scan(&m, buf[:n]) || len(m.Vias) != 1 {
			got <- seen{err: errors.New("not one request with one Via: " + string(buf[:n]))}
			return
		}
		got <- seen{via: string(m.Vias[0]), contact: string(m.Contact), peer: c.RemoteAddr().String()}
		resp := "SIP/2.0 200 OK\r\nVia: " + string(m.Vias[0]) + "\r\nFrom: " + string(m.From) +
			"\r\nTo: " + string(m.To) + ";tag=x\r\nCall-ID: " + string(m.CallID) + "\r\nCSeq: " + string(m.CSeq) +
			"\r\nContent-Length: 0\r\n\r\n"
		for _, part := range []string{"\r\n\r\n", resp[:40], resp[40:]} {
			if _, err := c.Write([]byte(part)); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond) // separate reads on the other side
		}
		c.Read(buf) // until sipload closes
	}()
	res, err := Run(t.Context(), Config{Target: ln.Addr().String(), Scenario: Options, N: 1, Sockets: 1,
		Transport: TCP, Duration: 3 * time.Second, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.err != nil {
		t.Fatal(s.err)
	}
	if want := "SIP/2.0/TCP " + s.peer + ";"; !strings.HasPrefix(s.via, want) {
		t.Errorf("Via = %q, want it to start with %q", s.via, want)
	}
	if want := "<sip:load@" + s.peer + ";transport=tcp>"; s.contact != want {
		t.Errorf("Contact = %q, want %q", s.contact, want)
	}
	if !res.OK() || res.Invalid != 0 || res.Unmatched != 0 {
		t.Errorf("result %+v, want the one OPTIONS completed", res)
	}
}

func TestParseTransport(t *testing.T) {
	tests := []struct {
		in      string
		want    Transport
		wantErr bool
	}{
		{in: "udp", want: UDP},
		{in: "tcp", want: TCP},
		{in: "tls", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseTransport(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && (got != tc.want || got.String() != tc.in)) {
			t.Errorf("ParseTransport(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
