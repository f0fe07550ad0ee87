package fuzz

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// FuzzForward drives the forwarding decision itself (engine.Forwarder)
// with every input, from one of several senders, and checks on each:
//
//   - no panic;
//   - what siplb sends parses again: a forwarded request has one Via more,
//     the same Call-ID and a lower Max-Forwards; a forwarded response one
//     Via less; a stateless reply goes back to the sender's address;
//   - a request from outside goes only to a pool member, never to a client
//     connection (no open relay; the fuzzer cannot forge a token);
//   - a response siplb routes carries a branch siplb minted (a seed's, or
//     the one it minted for this input), and the response to a request it
//     forwarded goes back to that request's sender.
func FuzzForward(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, b := range seedMessages(f) {
		f.Add(b, uint8(0)) // from a client
		f.Add(b, uint8(3)) // from a backend
	}
	for i := range fx.seeds {
		f.Add(fx.seeds[i].msg, fx.seeds[i].from)
	}
	f.Fuzz(func(t *testing.T, in []byte, from uint8) {
		fx.mu.Lock()
		defer fx.mu.Unlock()
		fx.check(t, in, from)
	})
}

// fuzzSender is where an input comes from.
type fuzzSender struct {
	src     netip.AddrPort
	leg     int         // index into the Forwarder's legs
	conn    pool.ConnID // a TCP client's connection
	backend bool
}

var fuzzSenders = []fuzzSender{
	{src: netip.MustParseAddrPort("127.0.0.1:40000")},                                 // a UDP client
	{src: netip.MustParseAddrPort("127.0.0.9:61000")},                                 // one behind a NAT
	{src: netip.MustParseAddrPort("127.0.0.1:41000"), leg: 1, conn: 0x1234_0000_0005}, // a TCP client
	{src: netip.MustParseAddrPort("127.0.0.1:5070"), backend: true},                   // a UDP backend (a registrar)
	{src: netip.MustParseAddrPort("[::1]:40000"), leg: 2},                             // an IPv6 client
}

type fuzzSeed struct {
	msg  []byte
	from uint8
}

// fuzzFixture is one Forwarder, its Scratch and the branches minted for the
// seeds. Every fuzz worker builds the same one: the secret is fixed, so
// the seeds' tokens verify in each.
type fuzzFixture struct {
	mu      sync.Mutex
	fw      *engine.Forwarder
	s       *engine.Scratch
	blind   *engine.Forwarder // the same but for its secret: forged(in) asks it
	blindS  *engine.Scratch
	members map[netip.AddrPort]balance.Transport
	minted  map[string]bool // branches of the seeds' forwarded requests
	seeds   []fuzzSeed
}

func newFuzzFixture(tb testing.TB) *fuzzFixture {
	tb.Helper()
	pcs := []balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{
		{Addr: netip.MustParseAddrPort("127.0.0.1:5070")},
		{Addr: netip.MustParseAddrPort("127.0.0.1:5071")},
		{Addr: netip.MustParseAddrPort("[::1]:5072")},
		{Addr: netip.MustParseAddrPort("127.0.0.1:5080"), Transport: balance.TCP},
	}}}
	bal, err := balance.New(pcs)
	if err != nil {
		tb.Fatal(err)
	}
	legs := []engine.LegConfig{
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:5060")},
		{Transport: balance.TCP, Addr: netip.MustParseAddrPort("127.0.0.1:5060")},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("[::1]:5060")},
	}
	fw, err := engine.NewForwarder(engine.Config{Legs: legs, BranchSecret: "fuzz secret 0123456789", RewriteContact: true}, bal)
	if err != nil {
		tb.Fatal(err)
	}
	blind, err := engine.NewForwarder(engine.Config{Legs: legs, BranchSecret: "another secret 9876543210", RewriteContact: true}, bal)
	if err != nil {
		tb.Fatal(err)
	}
	fx := &fuzzFixture{fw: fw, s: fw.NewScratch(), blind: blind, blindS: blind.NewScratch(),
		members: map[netip.AddrPort]balance.Transport{}, minted: map[string]bool{}}
	for _, b := range pcs[0].Backends {
		fx.members[b.Addr] = b.Transport
	}
	fx.dialogSeeds(tb)
	return fx
}

// process runs one message from a sender and returns a copy of the result.
func (fx *fuzzFixture) process(msg []byte, snd fuzzSender) engine.Result {
	r := fx.fw.ProcessConn(fx.s, msg, snd.src, fx.fw.Legs()[snd.leg], snd.conn)
	r.Out = bytes.Clone(r.Out)
	return r
}

// learnedMAC reports whether the Forwarder routed in only because in
// carries a token whose MAC is right: the same input to a Forwarder that
// differs only by its secret is not routed there. Go's fuzzer traces
// comparisons and so reads the 64-bit MAC a token is checked against (a
// sender on the network sees no such comparison); a token made that way
// is as good as minted. A defect that routes without checking the MAC
// routes under either secret and is still caught.
func (fx *fuzzFixture) learnedMAC(in []byte, snd fuzzSender, r engine.Result) bool {
	b := fx.blind.ProcessConn(fx.blindS, in, snd.src, fx.blind.Legs()[snd.leg], snd.conn)
	return b.Out == nil || b.Status != 0 || b.To != r.To || b.Conn != r.Conn
}

// dialogSeeds runs hand-written dialogs through the Forwarder and keeps
// each message, with what siplb made of the earlier ones (its branches,
// Record-Route and Path tokens), as a seed.
func (fx *fuzzFixture) dialogSeeds(tb testing.TB) {
	tb.Helper()
	add := func(msg []byte, from uint8) engine.Result {
		fx.seeds = append(fx.seeds, fuzzSeed{msg, from})
		r := fx.process(msg, fuzzSenders[from])
		if r.Out != nil && r.Status == 0 {
			var m parser.Message
			if parser.Parse(&m, r.Out) == nil && m.IsRequest() {
				fx.minted[string(m.TopVia().Branch)] = true
			}
		}
		return r
	}
	asResponse := func(req []byte, status string) []byte {
		_, rest, _ := strings.Cut(string(req), "\r\n")
		return []byte("SIP/2.0 " + status + "\r\n" + strings.Replace(rest, "To: <sip:bob@example.com>\r\n", "To: <sip:bob@example.com>;tag=b1\r\n", 1))
	}
	routeOf := func(out []byte) string {
		var m parser.Message
		if parser.Parse(&m, out) != nil {
			return ""
		}
		var rs []string
		for i := range m.NumRecordRoute() {
			if u, err := m.RecordRoute(i); err == nil {
				rs = append(rs, "Route: <"+string(u.Raw)+">")
			}
		}
		for _, h := range splitHeaders(out, "Path") {
			rs = append(rs, "Route: "+h)
		}
		return strings.Join(rs, "\r\n")
	}
	for from, via := range []string{"SIP/2.0/UDP 127.0.0.1:40000", "SIP/2.0/UDP 10.0.0.5:5060", "SIP/2.0/TCP 127.0.0.1:41000", "", "SIP/2.0/UDP [::1]:40000"} {
		if via == "" {
			continue
		}
		inv := crlf("INVITE sip:bob@example.com SIP/2.0\nVia: " + via + ";branch=z9hG4bK-s" + string(rune('0'+from)) + ";rport\n" +
			"Max-Forwards: 70\nFrom: <sip:alice@example.com>;tag=a1\nTo: <sip:bob@example.com>\nCall-ID: seed-" + string(rune('0'+from)) +
			"@x\nCSeq: 1 INVITE\nContact: <sip:alice@10.0.0.5:5060>\nContent-Length: 0\n\n")
		r := add([]byte(inv), uint8(from))
		if r.Out == nil {
			tb.Fatalf("seed INVITE from sender %d dropped: %v", from, r.Drop)
		}
		add(asResponse(r.Out, "180 Ringing"), 3)
		add(asResponse(r.Out, "200 OK"), 3)
		add([]byte(strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), "1 INVITE", "1 CANCEL", 1)), uint8(from))
		bye := "BYE sip:alice@10.0.0.5:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-bye" + string(rune('0'+from)) + "\r\n" +
			routeOf(r.Out) + "\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\n" +
			"Call-ID: seed-" + string(rune('0'+from)) + "@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
		add([]byte(bye), 3)
	}
	reg := crlf("REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-reg;rport\nMax-Forwards: 70\n" +
		"From: <sip:carol@example.com>;tag=c1\nTo: <sip:carol@example.com>\nCall-ID: seed-reg@x\nCSeq: 1 REGISTER\n" +
		"Supported: path\nContact: <sip:carol@10.0.0.5:5060>;expires=600\nContent-Length: 0\n\n")
	r := add([]byte(reg), 1)
	add(asResponse(r.Out, "200 OK"), 3)
	var m parser.Message
	if parser.Parse(&m, r.Out) == nil {
		if c, err := m.Contact(0); err == nil {
			call := "INVITE " + string(c.Raw) + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-call\r\n" + routeOf(r.Out) +
				"\r\nMax-Forwards: 70\r\nFrom: <sip:dave@example.com>;tag=d\r\nTo: <sip:carol@example.com>\r\n" +
				"Call-ID: seed-call@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
			add([]byte(call), 3)
		}
	}
	add([]byte(crlf("BYE sip:127.0.0.1:5060;lr SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-strict\nMax-Forwards: 70\n"+
		"Route: <sip:uas@127.0.0.1:5071>\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@x>;tag=2\nCall-ID: seed-strict@x\nCSeq: 2 BYE\nContent-Length: 0\n\n")), 0)
	add([]byte(crlf("ACK sip:bob@10.0.0.2 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-next\nRoute: <sip:127.0.0.1:5060;lr>\n"+
		"Route: <sip:10.9.9.9:5080>\nMax-Forwards: 70\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@x>;tag=2\nCall-ID: seed-next@x\nCSeq: 1 ACK\n\n")), 3)
	add([]byte(crlf("OPTIONS sip:127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-opt\nMax-Forwards: 0\n"+
		"From: <sip:p@x>;tag=p\nTo: <sip:127.0.0.1:5060>\nCall-ID: seed-opt@x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")), 0)
	// A sender cannot choose where the answer goes: a received or an rport
	// value it writes itself is replaced.
	add([]byte(crlf("OPTIONS sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-recv;received=10.1.1.1;rport=9\n"+
		"Max-Forwards: 70\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@x>\nCall-ID: seed-recv@x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")), 0)
	add([]byte(crlf("INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:40000\nMax-Forwards: 70\nFrom: <sip:a@x>;tag=1\n"+
		"To: <sip:b@x>\nCall-ID: seed-2543@x\nCSeq: 1 INVITE\nContent-Length: 0\n\n")), 0)
}

// splitHeaders returns the values of the header lines named name.
func splitHeaders(b []byte, name string) []string {
	head, _, _ := strings.Cut(string(b), "\r\n\r\n")
	var out []string
	for _, l := range strings.Split(head, "\r\n") {
		if n, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func (fx *fuzzFixture) check(t *testing.T, in []byte, from uint8) {
	snd := fuzzSenders[int(from)%len(fuzzSenders)]
	var m parser.Message
	perr := parser.Parse(&m, in)
	isReq := perr == nil && m.IsRequest()
	var top parser.Via
	var numVia, maxFwd int
	var hasMF bool
	var callID string
	if perr == nil {
		top, numVia, callID = m.TopVia(), m.NumVia(), string(m.CallID())
		maxFwd, hasMF = m.MaxForwards()
	}
	r := fx.process(in, snd)
	if r.Out == nil {
		return
	}
	if perr != nil {
		// Only a stateless reply, which echoes the defective lines: it may
		// not parse, but it says what it is and goes back to the sender.
		if r.Status < 400 || !bytes.HasPrefix(r.Out, []byte("SIP/2.0 "+strconv.Itoa(r.Status)+" ")) ||
			r.To != snd.src || r.Leg != fx.fw.Legs()[snd.leg] || r.Conn != snd.conn {
			t.Fatalf("an input that does not parse (%v) got %q to %v conn %#x\nin: %q", perr, r.Out, r.To, r.Conn, in)
		}
		return
	}
	var out parser.Message
	if err := parser.Parse(&out, r.Out); err != nil {
		t.Fatalf("output does not parse: %v\nin:  %q\nout: %q", err, in, r.Out)
	}
	checkMessage(t, &out, r.Out)
	switch {
	case r.Status != 0:
		// A stateless reply: to the sender, on its leg and connection.
		if out.IsRequest() || out.StatusCode() != r.Status || r.To.Addr() != snd.src.Addr() ||
			r.Leg != fx.fw.Legs()[snd.leg] || r.Conn != snd.conn {
			t.Fatalf("reply %d to %v conn %#x on %s; sender %v conn %#x\nin: %q", r.Status, r.To, r.Conn, r.Leg.Name, snd.src, snd.conn, in)
		}
	case isReq:
		if !out.IsRequest() || out.NumVia() != numVia+1 || string(out.CallID()) != callID {
			t.Fatalf("forwarded request: Via %d -> %d, Call-ID %q -> %q\nin:  %q\nout: %q", numVia, out.NumVia(), callID, out.CallID(), in, r.Out)
		}
		if mf, ok := out.MaxForwards(); !ok || (hasMF && mf != maxFwd-1) || (!hasMF && mf != parser.DefaultMaxForwards) {
			t.Fatalf("Max-Forwards %d (present %v) -> %d\nin: %q", maxFwd, hasMF, mf, in)
		}
		if !snd.backend {
			tr, member := fx.members[r.To]
			if (!member || tr != r.Leg.Transport || r.Conn != 0) && !fx.learnedMAC(in, snd, r) {
				t.Fatalf("a request from outside went to %v over %v conn %#x, not to a pool member\nin: %q", r.To, r.Leg.Transport, r.Conn, in)
			}
		}
		fx.checkResponse(t, &out, r, snd)
	default:
		if !fx.minted[string(top.Branch)] && !fx.learnedMAC(in, snd, r) {
			t.Fatalf("a response with a branch siplb never minted was routed: %q\nin: %q", top.Branch, in)
		}
		if out.IsRequest() || out.NumVia() != numVia-1 {
			t.Fatalf("routed response: Via %d -> %d\nin:  %q\nout: %q", numVia, out.NumVia(), in, r.Out)
		}
	}
}

// checkResponse answers a request siplb forwarded, as the next hop would,
// and checks the answer goes back to the request's sender.
func (fx *fuzzFixture) checkResponse(t *testing.T, req *parser.Message, r engine.Result, snd fuzzSender) {
	start := bytes.IndexByte(r.Out, '\n')
	resp := append([]byte("SIP/2.0 200 OK\r\n"), r.Out[start+1:]...)
	var m parser.Message
	if parser.Parse(&m, resp) != nil {
		return
	}
	minted := string(req.TopVia().Branch)
	back := fx.process(resp, fuzzSender{src: r.To, leg: r.Leg.Index, conn: 0, backend: true})
	if back.Out == nil {
		if back.Drop == engine.DropNoNextHop || back.Drop == engine.DropUnresolvable {
			return // the sender's Via names no address siplb can answer
		}
		t.Fatalf("the response to a forwarded request was dropped (%v); branch %q\nreq: %q", back.Drop, minted, r.Out)
	}
	if snd.conn != 0 {
		if back.Conn != snd.conn {
			t.Fatalf("the response went to conn %#x, the request came on %#x", back.Conn, snd.conn)
		}
	} else if back.To.Addr() != snd.src.Addr() {
		t.Fatalf("the response went to %v, the request came from %v\nreq: %q", back.To, snd.src, r.Out)
	}
}
