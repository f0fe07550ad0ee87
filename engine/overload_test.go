package engine

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
)

func TestReplacedCallID(t *testing.T) {
	long := strings.Repeat("x", maxReplacesCallID+1)
	tests := []struct {
		name string
		msg  []byte
		want string // "" for none
	}{
		{name: "Replaces", msg: invite("new@x", "z9hG4bKr1", "Replaces: 98732@sip.example.com ;to-tag=r33th4x0r;from-tag=ff87ff"), want: "98732@sip.example.com"},
		{name: "Replaces early-only", msg: invite("new@x", "z9hG4bKr1", "Replaces: abc;to-tag=1;from-tag=2;early-only"), want: "abc"},
		{name: "Join", msg: invite("new@x", "z9hG4bKr1", "Join: 12adf2f34456gs5;to-tag=12345;from-tag=54321"), want: "12adf2f34456gs5"},
		{name: "Join before Replaces: Replaces wins", msg: invite("new@x", "z9hG4bKr1", "Join: j1;to-tag=1;from-tag=2", "Replaces: r1;to-tag=1;from-tag=2"), want: "r1"},
		{name: "two Joins: the first", msg: invite("new@x", "z9hG4bKr1", "JOIN: j1;to-tag=1;from-tag=2", "Join: j2;to-tag=1;from-tag=2"), want: "j1"},
		{name: "replaces header lower case", msg: invite("new@x", "z9hG4bKr1", "replaces: low@x;to-tag=1;from-tag=2"), want: "low@x"},
		{name: "empty Replaces", msg: invite("new@x", "z9hG4bKr1", "Replaces: ;to-tag=1")},
		{name: "none", msg: invite("new@x", "z9hG4bKr1")},
		{name: "REFER escaped", msg: refer("Refer-To: <sip:carol@example.com?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>"), want: "12345@192.168.118.3"},
		{name: "REFER compact, other headers first", msg: refer("r: <sip:carol@example.com?Subject=hi&replaces=a%2fb%3bto-tag%3D1>"), want: "a/b"},
		{name: "REFER without Replaces", msg: refer("Refer-To: <sip:carol@example.com>")},
		{name: "REFER bad escape", msg: refer("Refer-To: <sip:carol@example.com?Replaces=ab%4>")},
		{name: "REFER bad hex", msg: refer("Refer-To: <sip:carol@example.com?Replaces=ab%zz>")},
		{name: "REFER too long", msg: refer("Refer-To: <sip:carol@example.com?Replaces=" + long + ">")},
		{name: "Replaces on a MESSAGE is not followed", msg: bytes.Replace(invite("new@x", "z9hG4bKr1", "Replaces: abc;to-tag=1;from-tag=2"), []byte("INVITE"), []byte("MESSAGE"), -1)},
	}
	f := newTestForwarder(t)
	s := f.NewScratch()
	for _, tc := range tests {
		if err := parser.Parse(&s.Msg, tc.msg); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := string(replacedCallID(s, &s.Msg)); got != tc.want {
			t.Errorf("%s: replacedCallID = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func refer(referTo string) []byte {
	return sip("REFER sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKref;rport", "Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
		"Call-ID: refer@x", "CSeq: 1 REFER", referTo, "Contact: <sip:alice@127.0.0.1:40000>", "Content-Length: 0")
}

// callIDsApart returns a Call-ID the pool hashes to one member and another
// it hashes to a different one.
func callIDsApart(t *testing.T, p *balance.Pool) (a, b string, ba, bb *balance.Backend) {
	t.Helper()
	first, _ := p.Pick([]byte("replaced-0.example"))
	for i := 1; i < 1000; i++ {
		id := fmt.Sprintf("transfer-%d.example", i)
		if o, _ := p.Pick([]byte(id)); o != first {
			return "replaced-0.example", id, first, o
		}
	}
	t.Fatal("every Call-ID hashes to one member")
	return
}

// A new INVITE with Replaces, and an out-of-dialog REFER whose Refer-To
// carries Replaces, go to the replaced dialog's member, not to their own
// Call-ID's; with replaces affinity off they follow their own.
func TestForwardReplacesAffinity(t *testing.T) {
	for _, off := range []bool{false, true} {
		pc := balance.PoolConfig{Name: "farm", Algorithm: balance.HashCallID, DisableReplacesAffinity: off}
		for _, a := range backends {
			pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a})
		}
		f := newPoolForwarder(t, pc, Config{})
		old, own, oldBe, ownBe := callIDsApart(t, f.bal.Table().Pool(0))
		want := oldBe.Addr
		if off {
			want = ownBe.Addr
		}
		r, _ := fwd(t, f, invite(own, "z9hG4bKrep", "Replaces: "+old+";to-tag=7743;from-tag=6472"), client)
		if r.To != want {
			t.Errorf("off=%v: INVITE with Replaces sent to %v, want %v", off, r.To, want)
		}
		esc := strings.ReplaceAll(old, "@", "%40")
		ref := bytes.Replace(refer("Refer-To: <sip:carol@example.com?Replaces="+esc+"%3Bto-tag%3D1%3Bfrom-tag%3D2>"), []byte("refer@x"), []byte(own), 1)
		if r, _ := fwd(t, f, ref, client); r.To != want {
			t.Errorf("off=%v: REFER with Replaces sent to %v, want %v", off, r.To, want)
		}
	}
}

// The transfer over real sockets: a call is set up and ended through the
// balancer; a new INVITE replacing it, whose own Call-ID hashes to another
// backend, reaches the backend that held the call.
func TestServerReplacesFollowsReplacedCall(t *testing.T) {
	uas := []*testUAS{startUAS(t), startUAS(t), startUAS(t)}
	lb, srv := startLB(t, 1, uas...)
	c := newUAC(t, lb)
	p := srv.f.bal.Table().Pool(0)
	old, own, oldBe, ownBe := callIDsApart(t, p)
	target, err := c.call(old)
	if err != nil {
		t.Fatal(err)
	}
	if target != oldBe.Addr.String() {
		t.Fatalf("the call went to %s, the pool picks %s", target, oldBe.Addr)
	}
	inv := sip("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.local()+";branch=z9hG4bK-rep;rport",
		"Max-Forwards: 70", "From: <sip:carol@example.com>;tag=c", "To: <sip:bob@example.com>",
		"Call-ID: "+own, "CSeq: 1 INVITE", "Replaces: "+old+";to-tag=uas;from-tag=a",
		"Contact: <sip:carol@"+c.local()+">", "Content-Length: 0")
	resp, err := c.transact(inv)
	if err != nil {
		t.Fatal(err)
	}
	var m parser.Message
	if err := parser.Parse(&m, resp); err != nil || m.StatusCode() != 200 {
		t.Fatalf("INVITE with Replaces answered %d (%v)", m.StatusCode(), err)
	}
	for _, u := range uas {
		got := len(u.methods(own)) > 0
		if want := u.addr == oldBe.Addr; got != want {
			t.Errorf("backend %s saw the replacing INVITE: %v, want %v (its own Call-ID hashes to %s)", u.addr, got, want, ownBe.Addr)
		}
	}
}

// ocResponse is a member's 100 Trying to the forwarded request m, with
// params added to siplb's Via.
func ocResponse(m *parser.Message, params string) []byte {
	top, _ := m.Via(0)
	next, _ := m.Via(1)
	return sip("SIP/2.0 100 Trying",
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch="+string(top.Branch)+";rport=5060"+params,
		"Via: SIP/2.0/UDP "+string(next.Host)+":"+fmt.Sprint(next.Port)+";branch="+string(next.Branch)+";rport=40000;received=127.0.0.1",
		"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
		"Call-ID: "+string(m.CallID()), "CSeq: 1 INVITE", "Content-Length: 0")
}

// siplb offers overload control in the Via it adds for a member; the
// member's report in its response sheds the new dialogs bound for it to
// the next member, in-dialog requests still reach it, and with every member
// shedding a new dialog gets 503 with Retry-After. A response whose branch
// was not sent to a member (a forged one) sets nothing.
func TestForwardOverloadControl(t *testing.T) {
	f := newTestForwarder(t)
	p := f.bal.Table().Pool(0)
	old, _, hot, _ := callIDsApart(t, p)
	r, m := fwd(t, f, invite(old, "z9hG4bKoc1"), client)
	if r.To != hot.Addr {
		t.Fatalf("INVITE sent to %v, want %v", r.To, hot.Addr)
	}
	if top, _ := m.Via(0); !bytes.Contains(top.Params, []byte(`;oc;oc-algo="loss"`)) {
		t.Fatalf("siplb's Via offers no overload control: %q", top.Params)
	}
	// A forged report: the branch of a request siplb sent to the client.
	bye := sip("BYE sip:alice@127.0.0.1:40000 SIP/2.0", "Via: SIP/2.0/UDP "+hot.Addr.String()+";branch=z9hG4bKbb1",
		"Route: <sip:127.0.0.1:5060;lr>", "Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b9",
		"To: <sip:alice@example.com>;tag=a1", "Call-ID: forged@x", "CSeq: 1 BYE", "Content-Length: 0")
	if _, bm := fwd(t, f, bye, hot.Addr); bm == nil {
		t.Fatal("BYE from the member dropped")
	} else {
		seen, _ := bm.Via(0)
		forged := sip("SIP/2.0 200 OK",
			"Via: SIP/2.0/UDP 127.0.0.1:5060;branch="+string(seen.Branch)+";oc=100;oc-validity=60000;oc-seq=9.0",
			"Via: SIP/2.0/UDP "+hot.Addr.String()+";branch=z9hG4bKbb1",
			"From: <sip:bob@example.com>;tag=b9", "To: <sip:alice@example.com>;tag=a1",
			"Call-ID: forged@x", "CSeq: 1 BYE", "Content-Length: 0")
		f.Process(f.NewScratch(), forged, hot.Addr, f.Legs()[0])
		if got := hot.Overload().Read(time.Now().UnixNano()).Reduction; got != 0 {
			t.Fatalf("a forged response set a reduction of %d", got)
		}
	}
	// The member's own report.
	if out := f.Process(f.NewScratch(), ocResponse(m, `;oc=100;oc-algo="loss";oc-validity=60000;oc-seq=1282321615.782`), hot.Addr, f.Legs()[0]); out.Out == nil {
		t.Fatalf("100 Trying dropped: %v", out.Drop)
	} else if bytes.Contains(out.Out, []byte("oc-seq")) {
		t.Errorf("the report reached the client:\n%s", out.Out)
	}
	if got := hot.Overload().Read(time.Now().UnixNano()).Reduction; got != 100 {
		t.Fatalf("reduction %d after the member's report, want 100", got)
	}
	if r, _ := fwd(t, f, invite(old, "z9hG4bKoc2"), client); r.To == hot.Addr || !isBackend(r.To) {
		t.Errorf("new INVITE for the shedding member sent to %v, want another member", r.To)
	}
	inDialog := sip("BYE sip:bob@"+hot.Addr.String()+" SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKocbye;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Call-ID: "+old, "CSeq: 2 BYE", "Content-Length: 0")
	if r, _ := fwd(t, f, inDialog, client); r.To != hot.Addr {
		t.Errorf("in-dialog BYE sent to %v, want the shedding member %v", r.To, hot.Addr)
	}
	for _, b := range p.Backends() {
		b.Overload().Report(balance.OverloadReport{Reduction: 100, Validity: 60000, Seq: 1 << 60}, time.Now().UnixNano())
	}
	r, rm := fwd(t, f, invite("all-shed@x", "z9hG4bKoc3"), client)
	if r.Status != 503 || rm == nil || rm.HeaderByName([]byte("Retry-After")) == nil {
		t.Errorf("every member shedding: status %d, want 503 with Retry-After", r.Status)
	}
}

// With overload control off for the pool, siplb offers none and ignores
// reports.
func TestForwardOverloadControlOff(t *testing.T) {
	pc := balance.PoolConfig{Name: "farm", DisableOverloadControl: true}
	for _, a := range backends {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a})
	}
	f := newPoolForwarder(t, pc, Config{})
	r, m := fwd(t, f, invite("off@x", "z9hG4bKoff"), client)
	if top, _ := m.Via(0); bytes.Contains(top.Params, []byte("oc-algo")) {
		t.Errorf("overload control offered with it off: %q", top.Params)
	}
	f.Process(f.NewScratch(), ocResponse(m, ";oc=100;oc-validity=60000;oc-seq=1.0"), r.To, f.Legs()[0])
	be, _ := f.bal.Table().Lookup(r.To)
	if got := be.Overload().Read(time.Now().UnixNano()).Reduction; got != 0 {
		t.Errorf("report honoured with overload control off: reduction %d", got)
	}
}

func TestParseOCReport(t *testing.T) {
	tests := []struct {
		name   string
		params string
		want   balance.OverloadReport
		ok     bool
	}{
		{name: "full", params: `;branch=z9hG4bKx;oc=20;oc-algo="loss";oc-validity=500;oc-seq=1282321615.782`, want: balance.OverloadReport{Reduction: 20, Validity: 500, Seq: 128232161578200}, ok: true},
		{name: "default validity, blanks", params: `;oc = 5 ; oc-seq=2.1`, want: balance.OverloadReport{Reduction: 5, Validity: balance.DefaultOverloadValidity, Seq: 210000}, ok: true},
		{name: "stop", params: `;OC=0;OC-VALIDITY=0;oc-seq=3.0`, want: balance.OverloadReport{Seq: 300000}, ok: true},
		{name: "bare oc (our offer echoed)", params: `;oc;oc-algo="loss"`},
		{name: "report appended after our offer", params: `;oc;oc-algo="loss";oc=30;oc-algo="loss";oc-seq=4.25`, want: balance.OverloadReport{Reduction: 30, Validity: balance.DefaultOverloadValidity, Seq: 425000}, ok: true},
		{name: "no oc parameter", params: `;branch=z9hG4bKx;rport=5060;received=10.0.0.1`},
		{name: "no seq", params: `;oc=10;oc-validity=500`},
		{name: "other algorithm", params: `;oc=10;oc-algo="rate";oc-seq=1.0`},
		{name: "over 100", params: `;oc=101;oc-seq=1.0`},
		{name: "bad seq", params: `;oc=10;oc-seq=x`},
		{name: "quoted semicolon", params: `;oc-algo="lo;ss";oc=10;oc-seq=1.0`},
	}
	for _, tc := range tests {
		got := parseOCReport([]byte(tc.params))
		if got.ok != tc.ok || (tc.ok && got.r != tc.want) {
			t.Errorf("%s: parseOCReport(%q) = %+v, want %+v ok=%v", tc.name, tc.params, got, tc.want, tc.ok)
		}
	}
}

// max_cps: a member past its cap gives the new dialog to the next member;
// with every member past it, 503.
func TestForwardMaxCPS(t *testing.T) {
	pc := balance.PoolConfig{Name: "farm", MaxCPS: 2}
	for _, a := range backends {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a})
	}
	f := newPoolForwarder(t, pc, Config{})
	s := f.NewScratch()
	got := map[netip.AddrPort]int{}
	refused := 0
	for i := range 10 {
		r := f.Process(s, invite(fmt.Sprintf("cps-%d@x", i), fmt.Sprintf("z9hG4bKcps%d", i)), client, f.Legs()[0])
		switch {
		case r.Status == 503:
			refused++
		case isBackend(r.To):
			got[r.To]++
		default:
			t.Fatalf("INVITE %d: %v %v", i, r.Drop, r.To)
		}
	}
	for a, n := range got {
		if n > 2 {
			t.Errorf("member %v took %d new dialogs in an instant, over max_cps 2", a, n)
		}
	}
	if refused != 4 || len(got) != 3 {
		t.Errorf("admitted %v and refused %d, want 2 for each member and 4 refused", got, refused)
	}
	if n := s.Counters.AdmitRefused.Load(); n != 4 {
		t.Errorf("AdmitRefused = %d, want 4", n)
	}
}

// ocUAS answers every request 200 and, when report is set, adds it to the
// top Via of its answers, as an overloaded RFC 7339 server does.
func ocUAS(t *testing.T, report string) *testUAS {
	t.Helper()
	if report == "" {
		return startUAS(t)
	}
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	u := &testUAS{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), seen: map[string][]string{}}
	go func() {
		buf := make([]byte, 65536)
		var m parser.Message
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if parser.Parse(&m, buf[:n]) != nil || !m.IsRequest() {
				continue
			}
			u.mu.Lock()
			u.seen[string(m.CallID())] = append(u.seen[string(m.CallID())], string(m.MethodName()))
			u.mu.Unlock()
			if m.Method() == parser.ACK {
				continue
			}
			resp := respond(buf[:n], "200 OK", u.addr)
			i := bytes.Index(resp, []byte("\r\nVia:"))
			j := bytes.Index(resp[i+2:], []byte("\r\n"))
			resp = append(resp[:i+2+j:i+2+j], append([]byte(report), resp[i+2+j:]...)...)
			c.WriteToUDPAddrPort(resp, from)
		}
	}()
	return u
}

// Over real sockets: a member that reports overload (oc=100) in its answers
// gets no new calls once it has answered one, the other member takes them,
// and the calls it holds go on (their BYE reaches it).
func TestServerOverloadReportSheds(t *testing.T) {
	hot := ocUAS(t, ";oc=100;oc-algo=\"loss\";oc-validity=60000;oc-seq=1700000000.5")
	cold := ocUAS(t, "")
	lb, srv := startLB(t, 1, hot, cold)
	p := srv.f.bal.Table().Pool(0)
	var toHot []string
	for i := 0; len(toHot) < 6 && i < 1000; i++ {
		id := fmt.Sprintf("oc-%d.example", i)
		if b, _ := p.Pick([]byte(id)); b.Addr == hot.addr {
			toHot = append(toHot, id)
		}
	}
	c := newUAC(t, lb)
	if target, err := c.call(toHot[0]); err != nil || target != hot.addr.String() {
		t.Fatalf("first call: %s, %v; want it on %s", target, err, hot.addr)
	}
	if got := hot.methods(toHot[0]); len(got) != 3 || got[2] != "BYE" {
		t.Errorf("the reporting member saw %v of its call, want INVITE ACK BYE", got)
	}
	for _, id := range toHot[1:] {
		target, err := c.call(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if target != cold.addr.String() {
			t.Errorf("%s: new call on %s, want it shed to %s", id, target, cold.addr)
		}
	}
	be, _ := srv.f.bal.Table().Lookup(hot.addr)
	if st := be.Overload().Read(time.Now().UnixNano()); st.Reduction != 100 || st.ShedOverload < uint64(len(toHot)-1) {
		t.Errorf("overload state %+v, want reduction 100 and %d refusals", st, len(toHot)-1)
	}
}

// hasOCSeq finds "oc-seq" in any case anywhere, and nothing else: not
// siplb's own offer.
func TestHasOCSeq(t *testing.T) {
	for p, want := range map[string]bool{
		"": false, "-": false, "oc-se": false, "c-seq": false, "oc_seq": false, ";rport=5060;received=10.0.0.1": false,
		ocOffer: false, ";branch=z9hG4bK-x;oc;oc-algo=\"loss\"": false, "oc-validity=500": false,
		"oc-seq": true, "OC-SEQ": true, "Oc-Seq=1.2": true, ";branch=z9hG4bKc0ffee;rport;oc=20;oc-seq=1": true, "x-y;oc-seq": true,
	} {
		if got := hasOCSeq([]byte(p)); got != want {
			t.Errorf("hasOCSeq(%q) = %v, want %v", p, got, want)
		}
	}
}
