package echo

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/benchmarks/internal/sipwire"
)

// startEcho serves n sockets on 127.0.0.1:0 until the test ends; plain
// turns batched I/O off.
func startEcho(t *testing.T, n int, plain bool) *Server {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = "127.0.0.1:0"
	}
	srv, err := Listen(addrs)
	if err != nil {
		t.Fatal(err)
	}
	if plain {
		for _, k := range srv.socks {
			k.mm = nil
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(t.Context()) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// client is a UDP socket on 127.0.0.1:0 closed when the test ends.
func client(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// request is a request from c's address; method and extra headers vary.
func request(c *net.UDPConn, method, callID, extra, body string) []byte {
	local := c.LocalAddr().String()
	s := method + " sip:echo@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-proxy\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-ua;rport\r\n" +
		"Max-Forwards: 69\r\n" +
		"From: <sip:ua@127.0.0.1>;tag=ua1\r\n" +
		"To: <sip:echo@127.0.0.1>\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 5 " + method + "\r\n" + extra
	if body != "" {
		s += "Content-Type: application/sdp\r\n"
	}
	return []byte(s + "Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// exchange sends req to dst and returns the responses that arrive within
// a short quiet period, at most want of them.
func exchange(t *testing.T, c *net.UDPConn, dst netip.AddrPort, req []byte, want int) []string {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(req, dst); err != nil {
		t.Fatal(err)
	}
	var got []string
	buf := make([]byte, 65535)
	wait := 2 * time.Second
	if want == 0 {
		wait = 100 * time.Millisecond
	}
	for len(got) < want || want == 0 {
		c.SetReadDeadline(time.Now().Add(wait))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:n]))
	}
	return got
}

func scan(t *testing.T, s string) *sipwire.Msg {
	t.Helper()
	m := new(sipwire.Msg)
	if !sipwire.Scan(m, []byte(s)) {
		t.Fatalf("response does not scan: %q", s)
	}
	return m
}

// checkEchoed checks what every response copies from the request.
func checkEchoed(t *testing.T, m *sipwire.Msg, c *net.UDPConn, callID, cseq string) {
	t.Helper()
	if len(m.Vias) != 2 || !strings.Contains(string(m.Vias[0]), "z9hG4bK-proxy") ||
		!strings.Contains(string(m.Vias[1]), c.LocalAddr().String()) {
		t.Errorf("Vias = %q, want both request Vias in order", m.Vias)
	}
	if string(m.CallID) != callID {
		t.Errorf("Call-ID = %q, want %q", m.CallID, callID)
	}
	if string(m.CSeq) != cseq {
		t.Errorf("CSeq = %q, want %q", m.CSeq, cseq)
	}
	if string(m.From) != "<sip:ua@127.0.0.1>;tag=ua1" {
		t.Errorf("From = %q", m.From)
	}
}

func TestAnswers(t *testing.T) {
	for _, mode := range []struct {
		name  string
		plain bool
	}{{name: "batched"}, {name: "plain", plain: true}} {
		t.Run(mode.name, func(t *testing.T) { testAnswers(t, mode.plain) })
	}
}

func testAnswers(t *testing.T, plain bool) {
	srv := startEcho(t, 2, plain)
	addrs := srv.Addrs()
	c := client(t)
	rr := "Record-Route: <sip:127.0.0.1:5060;lr>\r\nRecord-Route: <sip:10.0.0.9;lr>\r\n"

	type answer struct {
		status     int
		tag        bool   // a To tag is present
		contact    string // "" when none is expected
		rrs        int
		body       bool
		cseqMethod string
	}
	tests := []struct {
		name   string
		method string
		extra  string
		body   string
		to     int // index of the echo socket
		want   []answer
	}{
		{name: "OPTIONS", method: "OPTIONS", to: 0, want: []answer{
			{status: 200, tag: true, contact: "sip:echo@" + addrs[0].String(), cseqMethod: "OPTIONS"},
		}},
		{name: "INVITE", method: "INVITE", extra: rr, body: "v=0\r\n", to: 1, want: []answer{
			{status: 100, cseqMethod: "INVITE"},
			{status: 180, tag: true, contact: "sip:echo@" + addrs[1].String(), rrs: 2, cseqMethod: "INVITE"},
			{status: 200, tag: true, contact: "sip:echo@" + addrs[1].String(), rrs: 2, body: true, cseqMethod: "INVITE"},
		}},
		{name: "CANCEL", method: "CANCEL", to: 0, want: []answer{
			{status: 200, tag: true, cseqMethod: "CANCEL"},
			{status: 487, tag: true, cseqMethod: "INVITE"},
		}},
		{name: "BYE", method: "BYE", to: 0, want: []answer{{status: 200, tag: true, contact: "sip:echo@" + addrs[0].String(), cseqMethod: "BYE"}}},
		{name: "REGISTER", method: "REGISTER", extra: "Contact: <sip:ua@127.0.0.1:6000>\r\nExpires: 60\r\n", to: 0, want: []answer{
			{status: 200, tag: true, contact: "sip:ua@127.0.0.1:6000", cseqMethod: "REGISTER"},
		}},
		{name: "unknown method", method: "FOO", to: 0, want: []answer{{status: 501, tag: true, cseqMethod: "FOO"}}},
		{name: "ACK", method: "ACK", to: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			callID := "call-" + tc.name + "@test"
			got := exchange(t, c, addrs[tc.to], request(c, tc.method, callID, tc.extra, tc.body), len(tc.want))
			if len(got) != len(tc.want) {
				t.Fatalf("%s: got %d responses, want %d: %q", tc.method, len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				m := scan(t, got[i])
				if m.Status != w.status {
					t.Errorf("response %d: status %d, want %d", i, m.Status, w.status)
				}
				checkEchoed(t, m, c, callID, "5 "+w.cseqMethod)
				if tag := sipwire.Tag(m.To); (tag != nil) != w.tag {
					t.Errorf("response %d (%d): To %q, tag wanted: %v", i, m.Status, m.To, w.tag)
				}
				if got := string(sipwire.URI(m.Contact)); got != w.contact && !(w.contact == "" && m.Contact == nil) {
					t.Errorf("response %d (%d): Contact %q, want %q", i, m.Status, m.Contact, w.contact)
				}
				if len(m.RecordRoutes) != w.rrs {
					t.Errorf("response %d (%d): %d Record-Route, want %d", i, m.Status, len(m.RecordRoutes), w.rrs)
				} else if w.rrs == 2 && string(m.RecordRoutes[0]) != "<sip:127.0.0.1:5060;lr>" {
					t.Errorf("response %d: Record-Route order %q", i, m.RecordRoutes)
				}
				if (len(m.Body) > 0) != w.body {
					t.Errorf("response %d (%d): body %q, wanted: %v", i, m.Status, m.Body, w.body)
				}
				if want := "sipecho (" + addrs[tc.to].String() + ")"; string(m.Server) != want {
					t.Errorf("response %d: Server %q, want %q", i, m.Server, want)
				}
			}
		})
	}

	// The tag is a function of the Call-ID: a retransmission gets the same.
	a := scan(t, exchange(t, c, addrs[0], request(c, "OPTIONS", "same@test", "", ""), 1)[0])
	b := scan(t, exchange(t, c, addrs[1], request(c, "OPTIONS", "same@test", "", ""), 1)[0])
	if string(sipwire.Tag(a.To)) != string(sipwire.Tag(b.To)) {
		t.Errorf("To tags differ for one Call-ID: %q, %q", a.To, b.To)
	}

	st := srv.Stats()
	want := map[string]map[string]uint64{
		addrs[0].String(): {"OPTIONS": 2, "CANCEL": 1, "BYE": 1, "REGISTER": 1, "OTHER": 1, "ACK": 1},
		addrs[1].String(): {"INVITE": 1, "OPTIONS": 1},
	}
	for addr, per := range want {
		for method, n := range per {
			if got := st[addr][method]; got != n {
				t.Errorf("Stats[%s][%s] = %d, want %d", addr, method, got, n)
			}
		}
	}
	var sb strings.Builder
	if err := st.WriteTable(&sb); err != nil || !strings.Contains(sb.String(), "REGISTER") {
		t.Errorf("WriteTable: %v\n%s", err, sb.String())
	}
}

func TestDropsGarbageAndResponses(t *testing.T) {
	srv := startEcho(t, 1, false)
	c := client(t)
	dst := srv.Addrs()[0]
	resp := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	for _, in := range []string{"hello", resp} {
		if got := exchange(t, c, dst, []byte(in), 0); len(got) != 0 {
			t.Errorf("answer to %q: %q", in, got)
		}
	}
	st := srv.Stats()[dst.String()]
	if st["invalid"] != 1 || st["response"] != 1 {
		t.Errorf("Stats = %v, want invalid 1, response 1", st)
	}
}

func TestListenErrors(t *testing.T) {
	for _, addrs := range [][]string{nil, {"not an address"}} {
		if _, err := Listen(addrs); err == nil {
			t.Errorf("Listen(%q): no error", addrs)
		}
	}
}

func TestCountsFlood(t *testing.T) {
	tests := []struct {
		name    string
		in      func(c *net.UDPConn) []byte
		answers int
		want    map[string]uint64 // the socket's counters after it
	}{
		{name: "flood OPTIONS", answers: 1,
			in:   func(c *net.UDPConn) []byte { return request(c, "OPTIONS", FloodMark+"0001@h", "", "") },
			want: map[string]uint64{"OPTIONS": 1, "flood": 1}},
		{name: "flood INVITE", answers: 3,
			in:   func(c *net.UDPConn) []byte { return request(c, "INVITE", FloodMark+"0002@h", "", "v=0\r\n") },
			want: map[string]uint64{"INVITE": 1, "flood": 1}},
		{name: "mark elsewhere than the Call-ID", answers: 1,
			in: func(c *net.UDPConn) []byte {
				return request(c, "OPTIONS", "legit@h", "Subject: "+FloodMark+"x\r\n", "")
			},
			want: map[string]uint64{"OPTIONS": 1}},
		{name: "mark inside the Call-ID", answers: 1,
			in:   func(c *net.UDPConn) []byte { return request(c, "OPTIONS", "x"+FloodMark+"1@h", "", "") },
			want: map[string]uint64{"OPTIONS": 1}},
		{name: "marked garbage",
			in:   func(*net.UDPConn) []byte { return []byte("\x00\xff" + FloodMark + "\x01\x02") },
			want: map[string]uint64{"invalid": 1, "flood": 1}},
		{name: "truncated flood INVITE",
			in: func(*net.UDPConn) []byte {
				return []byte("INVITE sip:" + FloodMark + "77@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127")
			},
			want: map[string]uint64{"invalid": 1, "flood": 1}},
		{name: "unmarked garbage",
			in:   func(*net.UDPConn) []byte { return []byte("hello") },
			want: map[string]uint64{"invalid": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startEcho(t, 1, false)
			c := client(t)
			dst := srv.Addrs()[0]
			if got := exchange(t, c, dst, tc.in(c), tc.answers); len(got) != tc.answers {
				t.Fatalf("%d answers, want %d: %q", len(got), tc.answers, got)
			}
			if tc.answers == 0 {
				// No answer to wait for: the counter may lag the send.
				waitCount(t, srv, dst.String())
			}
			got := srv.Stats()[dst.String()]
			if len(got) != len(tc.want) {
				t.Errorf("Stats = %v, want %v", got, tc.want)
			}
			for k, n := range tc.want {
				if got[k] != n {
					t.Errorf("Stats[%s] = %d, want %d (all: %v)", k, got[k], n, got)
				}
			}
		})
	}
}

// waitCount waits (at most 2 s) until the socket at addr has counted a message.
func waitCount(t *testing.T, srv *Server, addr string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if len(srv.Stats()[addr]) > 0 {
			return
		}
	}
	t.Fatalf("nothing counted on %s", addr)
}

func TestWriteTableLeavesFloodOutOfTotal(t *testing.T) {
	st := Stats{"127.0.0.1:5070": {"INVITE": 3, "invalid": 1, "flood": 2}}
	var sb strings.Builder
	if err := st.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(sb.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "flood") {
		t.Fatalf("table:\n%s", sb.String())
	}
	if f := strings.Fields(lines[1]); f[len(f)-1] != "4" {
		t.Errorf("row total %q, want 4 (flood not added):\n%s", f[len(f)-1], sb.String())
	}
}
