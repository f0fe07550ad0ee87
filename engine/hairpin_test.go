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
	"github.com/siplb/siplb/pool"
)

// A hairpin: a registrar behind siplb sends a call back through siplb to a
// phone registered through it, so the dialog passes siplb twice. The
// emulations here are plain functions of the messages they get, shared by
// the Forwarder-level tests and the one over real sockets.

// sipLines is a SIP message as its start line, header lines (one value
// each, as the emulations write them) and body.
type sipLines struct {
	start string
	hdrs  []string
	body  string
}

func splitSIP(b []byte) sipLines {
	head, body, _ := strings.Cut(string(b), "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	return sipLines{start: lines[0], hdrs: lines[1:], body: body}
}

func (m *sipLines) bytes() []byte {
	return []byte(m.start + "\r\n" + strings.Join(m.hdrs, "\r\n") + "\r\n\r\n" + m.body)
}

// all returns the values of the header name (long form), top first.
func (m *sipLines) all(name string) []string {
	var out []string
	for _, h := range m.hdrs {
		if n, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func (m *sipLines) get(name string) string {
	if v := m.all(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// drop removes the first header line named name.
func (m *sipLines) drop(name string) {
	for i, h := range m.hdrs {
		if n, _, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			m.hdrs = append(m.hdrs[:i], m.hdrs[i+1:]...)
			return
		}
	}
}

// push inserts header lines above the first line named name (at the top
// when there is none).
func (m *sipLines) push(name string, values ...string) {
	at := 0
	for i, h := range m.hdrs {
		if n, _, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			at = i
			break
		}
	}
	var add []string
	for _, v := range values {
		add = append(add, name+": "+v)
	}
	m.hdrs = append(m.hdrs[:at], append(add, m.hdrs[at:]...)...)
}

// testRegistrar is a registrar and a record-routing stateless proxy behind
// siplb, its outbound proxy: every message it sends goes to siplb. A
// REGISTER binds the To user to its Contact and Path; a request to a bound
// user is retargeted to the contact, with the Path as its Route set, and
// record-routed; a request in a dialog has its own Route value popped;
// a response loses its Via.
type testRegistrar struct {
	self string // host:port, as it writes in Via and Record-Route

	mu       sync.Mutex
	bindings map[string]testBinding
	got      []string // the start lines it was sent
	paths    [][]string
}

type testBinding struct {
	contact string
	path    []string
}

func newTestRegistrar(self string) *testRegistrar {
	return &testRegistrar{self: self, bindings: map[string]testBinding{}}
}

// handle returns what the registrar sends to siplb for msg, nil for nothing.
func (r *testRegistrar) handle(msg []byte) []byte {
	var m parser.Message
	if err := parser.Parse(&m, msg); err != nil {
		return nil
	}
	l := splitSIP(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, l.start)
	if !m.IsRequest() {
		l.drop("Via")
		return l.bytes()
	}
	switch {
	case m.Method() == parser.REGISTER:
		to, _ := m.ToURI()
		c, _ := m.Contact(0)
		path := l.all("Path")
		r.paths = append(r.paths, path)
		r.bindings[string(to.User)] = testBinding{contact: string(c.Raw), path: path}
		lines := []string{"SIP/2.0 200 OK"}
		lines = append(lines, prefixAll("Via: ", l.all("Via"))...)
		lines = append(lines, "From: "+l.get("From"), "To: "+l.get("To")+";tag=reg", "Call-ID: "+l.get("Call-ID"),
			"CSeq: "+l.get("CSeq"), "Contact: <"+string(c.Raw)+">;expires=600")
		lines = append(lines, prefixAll("Path: ", path)...)
		return sip(append(lines, "Content-Length: 0")...)
	case len(m.ToTag()) == 0 && m.Method() != parser.ACK && m.Method() != parser.CANCEL:
		ru, _ := m.RURI()
		b, ok := r.bindings[string(ru.User)]
		if !ok {
			return respond(msg, "404 Not Found", netip.AddrPort{})
		}
		l.start = strings.Replace(l.start, string(m.RequestURI()), b.contact, 1)
		if len(b.path) > 0 {
			l.push("Route", b.path...)
		}
		l.push("Record-Route", "<sip:"+r.self+";lr>")
	default:
		if rt := l.get("Route"); strings.Contains(rt, r.self) {
			l.drop("Route")
		}
	}
	top := m.TopVia()
	l.push("Via", fmt.Sprintf("SIP/2.0/UDP %s;branch=z9hG4bK-r-%x", r.self, fnvString(string(top.Branch)+l.start)))
	return l.bytes()
}

func prefixAll(p string, vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = p + v
	}
	return out
}

func fnvString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// testPhone is a user agent: it registers, calls, answers and sends the
// requests of the dialog by the route set of the 2xx (RFC 3261 §12).
type testPhone struct {
	user      string
	sentBy    string // what it writes in Via
	transport string // "UDP" or "TCP"
	contact   string // its Contact URI
	n         int
}

func (p *testPhone) via() string {
	p.n++
	return fmt.Sprintf("Via: SIP/2.0/%s %s;branch=z9hG4bK-%s-%d;rport", p.transport, p.sentBy, p.user, p.n)
}

func (p *testPhone) register(lb string) []byte {
	return sip("REGISTER sip:"+lb+" SIP/2.0", p.via(), "Max-Forwards: 70",
		"From: <sip:"+p.user+"@example.com>;tag=r-"+p.user, "To: <sip:"+p.user+"@example.com>",
		"Call-ID: reg-"+p.user+"@x", "CSeq: 1 REGISTER", "Supported: path",
		"Contact: <"+p.contact+">", "Content-Length: 0")
}

func (p *testPhone) call(to, callID string) []byte {
	return sip("INVITE sip:"+to+"@example.com SIP/2.0", p.via(), "Max-Forwards: 70",
		"From: <sip:"+p.user+"@example.com>;tag=f-"+p.user, "To: <sip:"+to+"@example.com>",
		"Call-ID: "+callID, "CSeq: 1 INVITE", "Contact: <"+p.contact+">", "Content-Length: 0")
}

// answer is the phone's 200 to a request (with a Contact and the
// Record-Route copied, as a UAS does, §12.1.1).
func (p *testPhone) answer(req []byte) []byte {
	l := splitSIP(respond(req, "200 OK", netip.AddrPort{}))
	for i, h := range l.hdrs {
		if strings.HasPrefix(h, "Contact:") {
			l.hdrs[i] = "Contact: <" + p.contact + ">"
		}
		if strings.HasPrefix(h, "To:") {
			l.hdrs[i] = strings.Replace(h, "tag=uas", "tag=t-"+p.user, 1)
		}
	}
	return l.bytes()
}

// inDialog is the caller's request in the dialog its 2xx set up: to the
// remote target, by the route set (the Record-Route reversed).
func (p *testPhone) inDialog(method string, cseq int, ok []byte) []byte {
	l := splitSIP(ok)
	target := strings.Trim(l.get("Contact"), "<>")
	if i := strings.Index(target, ">"); i >= 0 {
		target = target[:i]
	}
	lines := []string{method + " " + target + " SIP/2.0", p.via()}
	rr := l.all("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		lines = append(lines, "Route: "+rr[i])
	}
	lines = append(lines, "Max-Forwards: 70", "From: "+l.get("From"), "To: "+l.get("To"),
		"Call-ID: "+l.get("Call-ID"), fmt.Sprintf("CSeq: %d %s", cseq, method), "Content-Length: 0")
	return sip(lines...)
}

// hairpinLB is a Forwarder with a UDP and a TCP leg on 127.0.0.1:5060 in
// front of one member, the registrar at 127.0.0.1:5070.
func hairpinLB(t *testing.T, cfg Config) (*Forwarder, *Leg, *Leg) {
	t.Helper()
	cfg.Legs = []LegConfig{{Transport: balance.UDP, Addr: legAddr}, {Transport: balance.TCP, Addr: legAddr}}
	f := newPoolForwarder(t, balance.PoolConfig{Name: "farm", Backends: []balance.BackendConfig{{Addr: backends[0]}}}, cfg)
	return f, f.Legs()[0], f.Legs()[1]
}

// hairpinNet moves messages between siplb (a Forwarder), the registrar
// and two phones as a network would: a datagram by its address, a stream
// message by its connection, and a stream message to an address with no
// connection to a listener, which a phone's Contact is not.
type hairpinNet struct {
	t      *testing.T
	f      *Forwarder
	s      *Scratch
	udp    *Leg
	tcp    *Leg
	reg    *testRegistrar
	phones map[string]*hairpinEnd // by name
	got    map[string][]string    // start lines each phone received
}

// hairpinEnd is where a phone is: its UDP source (behind a NAT: not what it
// writes) or its TCP connection to siplb.
type hairpinEnd struct {
	phone *testPhone
	src   netip.AddrPort
	conn  pool.ConnID
}

// fromPhone sends msg from a phone to siplb and delivers what follows
// until nothing is left in flight; it returns the last message the named
// phone (want) received, nil if none.
func (n *hairpinNet) fromPhone(name string, msg []byte, want string) []byte {
	n.t.Helper()
	e := n.phones[name]
	leg := n.udp
	if e.conn != 0 {
		leg = n.tcp
	}
	return n.run(msg, e.src, leg, e.conn, want)
}

func (n *hairpinNet) run(msg []byte, src netip.AddrPort, leg *Leg, conn pool.ConnID, want string) []byte {
	n.t.Helper()
	var last []byte
	for hops := 0; msg != nil; hops++ {
		if hops > 20 {
			n.t.Fatal("a message went round more than 20 times")
		}
		r := n.f.ProcessConn(n.s, msg, src, leg, conn)
		if r.Out == nil {
			n.t.Fatalf("siplb dropped %q as %v", firstLine(msg), r.Drop)
		}
		if r.Status != 0 {
			n.t.Fatalf("siplb answered %q itself: %q", firstLine(msg), firstLine(r.Out))
		}
		out := append([]byte(nil), r.Out...)
		msg = nil
		if r.To == backends[0] && r.Leg == n.udp {
			msg, src, leg, conn = n.reg.handle(out), backends[0], n.udp, 0
			continue
		}
		to := n.endAt(r)
		if to == "" {
			n.t.Fatalf("siplb sent %q to %v conn %#x over %v: nobody listens there (connection refused)", firstLine(out), r.To, r.Conn, r.Leg.Transport)
		}
		n.got[to] = append(n.got[to], firstLine(out))
		if to == want {
			last = out
		}
		e := n.phones[to]
		var om parser.Message
		if parser.Parse(&om, out) == nil && om.IsRequest() && om.Method() != parser.ACK {
			msg = e.phone.answer(out)
			src, conn = e.src, e.conn
			leg = n.udp
			if conn != 0 {
				leg = n.tcp
			}
		}
	}
	return last
}

// endAt names the phone a Result reaches, "" for none.
func (n *hairpinNet) endAt(r Result) string {
	for name, e := range n.phones {
		switch {
		case e.conn != 0 && r.Leg == n.tcp && r.Conn == e.conn:
			return name
		case e.conn == 0 && r.Leg == n.udp && r.To == e.src:
			return name
		}
	}
	return ""
}

func firstLine(b []byte) string {
	l, _, _ := strings.Cut(string(b), "\r\n")
	return l
}

// A registrar behind siplb calls a phone registered through it: the call
// passes siplb twice (caller → siplb → registrar → siplb → callee), and the
// ACK and BYE of the dialog do too. They keep the Request-URI, Call-ID,
// From tag and CSeq on both passes; siplb takes the second pass for the
// spiral it is, and sends it to the callee by the flow its Record-Route
// carries (the callee's connection, or its NAT binding), not to the
// Contact the callee wrote (an ephemeral TCP port, a private address).
func TestHairpin(t *testing.T) {
	bConn := pool.ConnID(0x1234_0000_0007)
	for _, tc := range []struct {
		name    string
		callee  hairpinEnd
		rewrite bool // the callee is reached by a rewritten Contact, not Path
	}{
		{name: "udp behind NAT, Path", callee: hairpinEnd{phone: &testPhone{user: "bob", sentBy: "10.99.0.2:5060", transport: "UDP", contact: "sip:bob@10.99.0.2:5060"}, src: natted}},
		{name: "tcp, Path", callee: hairpinEnd{phone: &testPhone{user: "bob", sentBy: "127.0.0.1:41234", transport: "TCP", contact: "sip:bob@127.0.0.1:41234;transport=tcp"}, src: netip.MustParseAddrPort("127.0.0.1:41234"), conn: bConn}},
		{name: "udp behind NAT, rewrite_contact", rewrite: true, callee: hairpinEnd{phone: &testPhone{user: "bob", sentBy: "10.99.0.2:5060", transport: "UDP", contact: "sip:bob@10.99.0.2:5060"}, src: natted}},
		{name: "tcp, rewrite_contact", rewrite: true, callee: hairpinEnd{phone: &testPhone{user: "bob", sentBy: "127.0.0.1:41234", transport: "TCP", contact: "sip:bob@127.0.0.1:41234;transport=tcp"}, src: netip.MustParseAddrPort("127.0.0.1:41234"), conn: bConn}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, udp, tcp := hairpinLB(t, Config{ForceRewrite: tc.rewrite})
			caller := &hairpinEnd{phone: &testPhone{user: "alice", sentBy: "127.0.0.1:40000", transport: "UDP", contact: "sip:alice@127.0.0.1:40000"}, src: client}
			callee := tc.callee
			n := &hairpinNet{t: t, f: f, s: f.NewScratch(), udp: udp, tcp: tcp, reg: newTestRegistrar("127.0.0.1:5070"),
				phones: map[string]*hairpinEnd{"alice": caller, "bob": &callee}, got: map[string][]string{}}
			reg := callee.phone.register("example.com")
			if tc.rewrite {
				reg = []byte(strings.Replace(string(reg), "Supported: path\r\n", "", 1))
			}
			if ok := n.fromPhone("bob", reg, "bob"); ok == nil || !strings.HasPrefix(firstLine(ok), "SIP/2.0 200") {
				t.Fatalf("REGISTER: bob got %v", n.got["bob"])
			}
			if !tc.rewrite {
				if len(n.reg.paths) != 1 || len(n.reg.paths[0]) == 0 || !strings.Contains(strings.Join(n.reg.paths[0], ","), ";"+pathParam+"=") {
					t.Fatalf("the registrar saw Path %q, want siplb's with the phone's flow", n.reg.paths)
				}
			}
			inv := n.fromPhone("alice", caller.phone.call("bob", "hairpin@x"), "alice")
			if inv == nil || !strings.HasPrefix(firstLine(inv), "SIP/2.0 200") {
				t.Fatalf("INVITE: alice got %v, bob %v", n.got["alice"], n.got["bob"])
			}
			for i, method := range []string{"ACK", "BYE"} {
				before := len(n.got["bob"])
				last := n.fromPhone("alice", caller.phone.inDialog(method, 1+i, inv), "alice")
				if len(n.got["bob"]) == before || !strings.HasPrefix(n.got["bob"][before], method+" ") {
					t.Fatalf("%s: bob got %v", method, n.got["bob"][before:])
				}
				if method == "BYE" && (last == nil || !strings.HasPrefix(firstLine(last), "SIP/2.0 200")) {
					t.Fatalf("BYE: alice got %v", n.got["alice"])
				}
			}
			for _, d := range Drops() {
				if c := n.s.Counters.Drops[d].Load(); c != 0 {
					t.Errorf("%d messages dropped as %v", c, d)
				}
			}
			if c := n.s.Counters.BadTokens.Load(); c != 0 {
				t.Errorf("%d bad tokens", c)
			}
		})
	}
}

// endpoint is a phone's socket: a UDP socket, or a TCP connection to
// siplb's TCP leg.
type endpoint struct {
	t   *testing.T
	udp *net.UDPConn
	tcp net.Conn
	lb  netip.AddrPort // siplb's UDP leg (a UDP phone's destination)
}

func (e *endpoint) send(b []byte) {
	e.t.Helper()
	var err error
	if e.tcp != nil {
		_, err = e.tcp.Write(b)
	} else {
		_, err = e.udp.WriteToUDPAddrPort(b, e.lb)
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// recv returns the next message the phone gets within 3 s, nil if none.
func (e *endpoint) recv() []byte {
	e.t.Helper()
	if e.tcp != nil {
		if got := readResponses(e.t, e.tcp, 1, 3*time.Second); len(got) == 1 {
			return got[0]
		}
		return nil
	}
	buf := make([]byte, 65536)
	e.udp.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := e.udp.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// expect reads the next message and fails unless its start line begins
// with prefix.
func (e *endpoint) expect(what, prefix string) []byte {
	e.t.Helper()
	b := e.recv()
	if b == nil || !strings.HasPrefix(firstLine(b), prefix) {
		e.t.Fatalf("%s: got %q, want %q...", what, firstLine(b), prefix)
	}
	return b
}

// The hairpin over real sockets: a registrar behind siplb on UDP, a caller
// on UDP, and a callee behind a NAT (it writes a private address) or on a
// TCP connection (its Contact names its own ephemeral port, where nothing
// listens). Registration with Path, then a call and its ACK and BYE, each
// passing siplb twice; siplb drops nothing.
func TestServerHairpin(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			regConn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { regConn.Close() })
			regAddr := regConn.LocalAddr().(*net.UDPAddr).AddrPort()
			udpLB, tcpLB, srv := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: regAddr})
			reg := newTestRegistrar(regAddr.String())
			go func() {
				buf := make([]byte, 65536)
				for {
					n, _, err := regConn.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					if out := reg.handle(bytes.Clone(buf[:n])); out != nil {
						regConn.WriteToUDPAddrPort(out, udpLB)
					}
				}
			}()
			aliceConn := newUAC(t, udpLB).conn
			alice := &endpoint{t: t, udp: aliceConn, lb: udpLB}
			ap := &testPhone{user: "alice", sentBy: aliceConn.LocalAddr().String(), transport: "UDP", contact: "sip:alice@" + aliceConn.LocalAddr().String()}
			bob := &endpoint{t: t, lb: udpLB}
			bp := &testPhone{user: "bob", transport: transport}
			if transport == "TCP" {
				bob.tcp = dialTCP(t, tcpLB)
				bp.sentBy = bob.tcp.LocalAddr().String()
				bp.contact = "sip:bob@" + bp.sentBy + ";transport=tcp"
			} else {
				bob.udp = newUAC(t, udpLB).conn
				bp.sentBy, bp.contact = "10.99.0.2:5060", "sip:bob@10.99.0.2:5060"
			}
			bob.send(bp.register("example.com"))
			bob.expect("REGISTER", "SIP/2.0 200")
			alice.send(ap.call("bob", "hairpin-"+transport+"@x"))
			inv := bob.expect("INVITE at the callee", "INVITE ")
			bob.send(bp.answer(inv))
			ok := alice.expect("200 to the INVITE", "SIP/2.0 200")
			alice.send(ap.inDialog("ACK", 1, ok))
			bob.expect("ACK at the callee", "ACK ")
			alice.send(ap.inDialog("BYE", 2, ok))
			bye := bob.expect("BYE at the callee", "BYE ")
			bob.send(bp.answer(bye))
			alice.expect("200 to the BYE", "SIP/2.0 200")
			st := srv.Stats()
			for _, d := range Drops() {
				if st.Drop(d) != 0 {
					t.Errorf("%d messages dropped as %v", st.Drop(d), d)
				}
			}
			if st.BadTokens != 0 {
				t.Errorf("%d bad tokens", st.BadTokens)
			}
		})
	}
}
