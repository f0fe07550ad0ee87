package engine

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/siplb/siplb/balance"
)

// The leg tag is part of every branch siplb writes: instances of one
// configuration, and of different versions during an upgrade, must agree.
func TestLegTagStable(t *testing.T) {
	l, err := newLeg(0, LegConfig{Addr: legAddr}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Tag(), "6feb607b"; got != want {
		t.Errorf("tag of udp/%s = %s, want %s", legAddr, got, want)
	}
}

// Strict routing, both ways (RFC 3261 §16.4, §16.6 step 6).
func TestStrictRouting(t *testing.T) {
	dialog := func(ruri string, routes ...string) []byte {
		lines := []string{"BYE " + ruri + " SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKsr;rport"}
		for _, r := range routes {
			lines = append(lines, "Route: "+r)
		}
		return sip(append(lines, "Max-Forwards: 70", "From: <sip:a@x>;tag=1", "To: <sip:b@x>;tag=2",
			"Call-ID: strict@x", "CSeq: 2 BYE", "Content-Length: 0")...)
	}
	initial := bytes.Replace(dialog("sip:bob@example.com", "<sip:127.0.0.1:5072>"), []byte(";tag=2"), nil, 1)
	tests := []struct {
		name      string
		in        []byte
		src       netip.AddrPort
		wantTo    netip.AddrPort // "" for a pool member
		wantRURI  string
		wantRoute []string
	}{
		{
			// §16.4: our Record-Route as the Request-URI came through a
			// strict router; the last Route value is the target.
			name: "previous hop strict", src: client,
			in:     dialog("sip:127.0.0.1:5060;lr", "<sip:uas@127.0.0.1:5071>"),
			wantTo: backends[1], wantRURI: "sip:uas@127.0.0.1:5071",
		},
		{
			name: "previous hop strict, a route left", src: client,
			in:     dialog("sip:127.0.0.1:5060", "<sip:127.0.0.1:5072;lr>", "<sip:uas@127.0.0.1:5071>"),
			wantTo: backends[2], wantRURI: "sip:uas@127.0.0.1:5071", wantRoute: []string{"sip:127.0.0.1:5072;lr"},
		},
		{
			// §16.6 step 6: the next hop has no lr: it routes by the
			// Request-URI, which then goes last in the Route set.
			name: "next hop strict, from a backend", src: backends[0],
			in:     dialog("sip:alice@10.0.0.1", "<sip:127.0.0.1:5060;lr>", "<sip:10.9.9.9:5080>", "<sip:10.9.9.10;lr>"),
			wantTo: netip.MustParseAddrPort("10.9.9.9:5080"), wantRURI: "sip:10.9.9.9:5080",
			wantRoute: []string{"sip:10.9.9.10;lr", "sip:alice@10.0.0.1"},
		},
		{
			name: "next hop loose, from a backend", src: backends[0],
			in:     dialog("sip:alice@10.0.0.1", "<sip:127.0.0.1:5060;lr>", "<sip:10.9.9.9:5080;lr>"),
			wantTo: netip.MustParseAddrPort("10.9.9.9:5080"), wantRURI: "sip:alice@10.0.0.1",
			wantRoute: []string{"sip:10.9.9.9:5080;lr"},
		},
		{
			name: "next hop a strict member, from outside", src: client,
			in:     dialog("sip:x@10.0.0.1", "<sip:127.0.0.1:5060;lr>", "<sip:127.0.0.1:5072>"),
			wantTo: backends[2], wantRURI: "sip:127.0.0.1:5072", wantRoute: []string{"sip:x@10.0.0.1"},
		},
		{
			// A new dialog from outside goes to the pick, whatever its Route
			// says: its Request-URI is not the Route's business then.
			name: "initial request from outside", src: client,
			in:       initial,
			wantRURI: "sip:bob@example.com", wantRoute: []string{"sip:127.0.0.1:5072"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestForwarder(t)
			r, m := fwd(t, f, tc.in, tc.src)
			if m == nil {
				t.Fatalf("dropped as %v", r.Drop)
			}
			if (tc.wantTo.IsValid() && r.To != tc.wantTo) || (!tc.wantTo.IsValid() && !isBackend(r.To)) {
				t.Errorf("sent to %v, want %v", r.To, tc.wantTo)
			}
			if got := string(m.RequestURI()); got != tc.wantRURI {
				t.Errorf("Request-URI %s, want %s", got, tc.wantRURI)
			}
			var routes []string
			for i := range m.NumRoute() {
				u, err := m.Route(i)
				if err != nil {
					t.Fatal(err)
				}
				routes = append(routes, string(u.Raw))
			}
			if fmt.Sprint(routes) != fmt.Sprint(tc.wantRoute) {
				t.Errorf("Route %q, want %q", routes, tc.wantRoute)
			}
		})
	}
}

// Each hashed algorithm hashes its own key: requests that share it reach
// one backend whatever else differs; different keys spread over the pool.
func TestHashKeys(t *testing.T) {
	req := func(callID, from, to, ruriUser string) []byte {
		return sip("INVITE sip:"+ruriUser+"@example.com SIP/2.0",
			"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-"+strings.ReplaceAll(callID, "@", "-")+";rport", "Max-Forwards: 70",
			"From: \"X\" <sip:"+from+"@example.com;user=phone>;tag=f", "To: <sip:"+to+"@example.org>",
			"Call-ID: "+callID, "CSeq: 1 INVITE", "Content-Length: 0")
	}
	for _, tc := range []struct {
		alg balance.Algorithm
		// same builds the i-th of requests that share the key; other the
		// i-th of requests that differ only in it.
		same, other func(i int) []byte
	}{
		{balance.HashCallID,
			func(i int) []byte {
				return req("one-call@x", fmt.Sprint("u", i), fmt.Sprint("v", i), fmt.Sprint("w", i))
			},
			func(i int) []byte { return req(fmt.Sprint("call-", i, "@x"), "alice", "bob", "bob") }},
		{balance.HashFromUser,
			func(i int) []byte { return req(fmt.Sprint("c", i), "alice", fmt.Sprint("v", i), fmt.Sprint("w", i)) },
			func(i int) []byte { return req("c", fmt.Sprint("user-", i), "bob", "bob") }},
		{balance.HashToUser,
			func(i int) []byte { return req(fmt.Sprint("c", i), fmt.Sprint("u", i), "bob", fmt.Sprint("w", i)) },
			func(i int) []byte { return req("c", "alice", fmt.Sprint("user-", i), "bob") }},
		{balance.HashRequestURI,
			func(i int) []byte { return req(fmt.Sprint("c", i), fmt.Sprint("u", i), fmt.Sprint("v", i), "bob") },
			func(i int) []byte { return req("c", "alice", "bob", fmt.Sprint("user-", i)) }},
	} {
		t.Run(tc.alg.String(), func(t *testing.T) {
			pc := balance.PoolConfig{Name: "farm", Algorithm: tc.alg}
			for _, a := range backends {
				pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a})
			}
			f := newPoolForwarder(t, pc, Config{})
			var first netip.AddrPort
			for i := range 30 {
				r, _ := fwd(t, f, tc.same(i), client)
				if i == 0 {
					first = r.To
				}
				if r.To != first || !isBackend(r.To) {
					t.Fatalf("request %d with the same key went to %v, the first to %v", i, r.To, first)
				}
			}
			seen := map[netip.AddrPort]int{}
			for i := range 60 {
				r, _ := fwd(t, f, tc.other(i), client)
				seen[r.To]++
			}
			if len(seen) != len(backends) {
				t.Errorf("60 different keys reached %v, want all %d backends", seen, len(backends))
			}
		})
	}
}

// RFC 2543 clients send no z9hG4bK cookie: the transaction is then the
// From tag, Call-ID, Request-URI, top Via and CSeq number (§16.11), so a
// retransmission, the CANCEL and the ACK of a non-2xx response get the
// INVITE's branch, and a new transaction gets another.
func TestRFC2543Transactions(t *testing.T) {
	for _, branch := range []string{";branch=1f2e3d", ""} {
		t.Run("branch "+branch, func(t *testing.T) {
			f := newTestForwarder(t)
			msg := func(method, cseq, toTag string) []byte {
				return sip(method+" sip:bob@example.com SIP/2.0",
					"Via: SIP/2.0/UDP 127.0.0.1:40000"+branch, "Max-Forwards: 70",
					"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>"+toTag,
					"Call-ID: old@x", "CSeq: "+cseq+" "+method, "Content-Length: 0")
			}
			top := func(in []byte) (string, netip.AddrPort) {
				t.Helper()
				r, m := fwd(t, f, in, client)
				if m == nil {
					t.Fatalf("dropped as %v", r.Drop)
				}
				v, _ := m.Via(0)
				return string(v.Branch), r.To
			}
			inv, to := top(msg("INVITE", "1", ""))
			for _, tc := range []struct {
				name string
				in   []byte
				same bool
			}{
				{"retransmission", msg("INVITE", "1", ""), true},
				{"CANCEL", msg("CANCEL", "1", ""), true},
				{"ACK of a non-2xx", msg("ACK", "1", ";tag=b7"), true},
				{"a new INVITE", msg("INVITE", "2", ""), false},
				{"BYE", msg("BYE", "3", ";tag=b7"), false},
			} {
				b, dst := top(tc.in)
				if (b == inv) != tc.same {
					t.Errorf("%s: branch %s, INVITE's %s; same = %v, want %v", tc.name, b, inv, b == inv, tc.same)
				}
				if tc.same && dst != to {
					t.Errorf("%s went to %v, the INVITE to %v", tc.name, dst, to)
				}
			}
		})
	}
}

// A loop is caught (§16.3 step 4) while a spiral goes on.
func TestLoopDetection(t *testing.T) {
	peer := netip.MustParseAddrPort("127.0.0.50:5060") // an element outside that sends the request back
	viaOf := func(n int) string {
		return fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bK-peer-%d", peer, n)
	}
	pushVia := func(b []byte, via string) []byte {
		i := bytes.Index(b, []byte("\r\n")) + 2
		return append(append(append(bytes.Clone(b[:i]), via...), "\r\n"...), b[i:]...)
	}
	t.Run("reflected", func(t *testing.T) {
		f := newTestForwarder(t)
		_, m := fwd(t, f, invite("refl@x", "z9hG4bKrf"), client)
		r, _ := fwd(t, f, bytes.Clone(m.Buf), client)
		if r.Status != 482 {
			t.Fatalf("a request sent straight back: status %d drop %v, want 482", r.Status, r.Drop)
		}
	})
	t.Run("reflected ACK", func(t *testing.T) {
		f := newTestForwarder(t)
		ack := sip("ACK sip:bob@127.0.0.1:5071 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKack;rport",
			"Max-Forwards: 70", "From: <sip:a@x>;tag=1", "To: <sip:b@x>;tag=2", "Call-ID: ack@x", "CSeq: 1 ACK", "Content-Length: 0")
		_, m := fwd(t, f, ack, client)
		s := f.NewScratch()
		r := f.Process(s, bytes.Clone(m.Buf), client, f.Legs()[0])
		if r.Out != nil || r.Drop != DropLoop || s.Counters.Drops[DropLoop].Load() != 1 {
			t.Fatalf("a looped ACK: out %q drop %v, want dropped and counted as loop", firstLine(r.Out), r.Drop)
		}
	})
	t.Run("ACK with Max-Forwards 0", func(t *testing.T) {
		f := newTestForwarder(t)
		ack := sip("ACK sip:bob@127.0.0.1:5071 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKack0;rport",
			"Max-Forwards: 0", "From: <sip:a@x>;tag=1", "To: <sip:b@x>;tag=2", "Call-ID: ack0@x", "CSeq: 1 ACK", "Content-Length: 0")
		s := f.NewScratch()
		if r := f.Process(s, ack, client, f.Legs()[0]); r.Drop != DropTooManyHops || s.Counters.Drops[DropTooManyHops].Load() != 1 {
			t.Fatalf("drop %v, want too_many_hops counted", r.Drop)
		}
	})
	t.Run("through a peer", func(t *testing.T) {
		// The peer sends it back unchanged but for its Via: the first
		// return has another previous hop, so it may be a spiral; the
		// second comes from the same hop with the same Route set and
		// Request-URI: a loop.
		f := newTestForwarder(t)
		_, m := fwd(t, f, invite("peer@x", "z9hG4bKpr"), client)
		r, m2 := fwd(t, f, pushVia(m.Buf, viaOf(1)), peer)
		if m2 == nil || r.Status != 0 {
			t.Fatalf("first return: status %d drop %v, want it forwarded", r.Status, r.Drop)
		}
		r, _ = fwd(t, f, pushVia(m2.Buf, viaOf(2)), peer)
		if r.Status != 482 {
			t.Fatalf("second return: status %d drop %v, want 482", r.Status, r.Drop)
		}
	})
	t.Run("spiral with a new Request-URI", func(t *testing.T) {
		f := newTestForwarder(t)
		_, m := fwd(t, f, invite("spiral@x", "z9hG4bKsp"), client)
		back := bytes.Replace(pushVia(m.Buf, viaOf(1)), []byte("INVITE sip:bob@example.com"), []byte("INVITE sip:bob@10.0.0.7"), 1)
		for range 2 {
			r, m2 := fwd(t, f, back, peer)
			if m2 == nil || r.Status != 0 {
				t.Fatalf("spiral: status %d drop %v, want it forwarded", r.Status, r.Drop)
			}
			back = bytes.Replace(pushVia(m2.Buf, viaOf(2)), []byte("INVITE sip:bob@10.0.0.7"), []byte("INVITE sip:bob@10.0.0.8"), 1)
		}
	})
}

// IPv6 legs, backends and clients: the same rules, brackets where a
// sent-by or a URI needs them, none in received (RFC 3261 §18.2.1).
func TestForwardIPv6(t *testing.T) {
	f := newTestForwarder6(t)
	fx := fixture6
	r, m := fwd(t, f, fx.invite("v6@x", "z9hG4bKv6"), fx.client)
	if m == nil || !fx.isBackend(r.To) {
		t.Fatalf("INVITE: to %v drop %v, want a v6 backend", r.To, r.Drop)
	}
	top, _ := m.Via(0)
	if string(top.Host) != "::1" || top.Port != 5060 {
		t.Errorf("siplb's Via sent-by %s:%d, want [::1]:5060", top.Host, top.Port)
	}
	second, _ := m.Via(1)
	rr, _ := m.RecordRoute(0)
	if !bytes.Contains(m.Buf, []byte("\r\nVia: SIP/2.0/UDP [::1]:5060;branch=")) {
		t.Errorf("siplb's Via does not write [::1]:5060:\n%s", m.Buf)
	}
	if string(second.Received) != "2001:db8::1" || second.RPort != 40000 {
		t.Errorf("client Via received=%q rport=%d, want 2001:db8::1 and 40000", second.Received, second.RPort)
	}
	if !strings.HasPrefix(string(rr.Raw), "sip:[::1]:5060;lr;"+flowParam+"=u20010db8") {
		t.Errorf("Record-Route %s, want siplb's with the client's v6 flow", rr.Raw)
	}
	resp := bytes.Replace(bytes.Clone(m.Buf), []byte("INVITE sip:bob@example.com SIP/2.0"), []byte("SIP/2.0 200 OK"), 1)
	if r, _ := fwd(t, f, resp, r.To); r.To != fx.client {
		t.Errorf("response to %v (drop %v), want the client %v", r.To, r.Drop, fx.client)
	}
	bye := func(callID string, rr []byte) []byte {
		return sip("BYE sip:alice@[2001:db8::1]:40000 SIP/2.0", "Via: SIP/2.0/UDP [::1]:5071;branch=z9hG4bKv6bye",
			"Route: <"+string(rr)+">", "Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b9",
			"To: <sip:alice@example.com>;tag=a1", "Call-ID: "+callID, "CSeq: 1 BYE", "Content-Length: 0")
	}
	if r, _ := fwd(t, f, bye("v6@x", rr.Raw), fx.backends[1]); r.To != fx.client {
		t.Errorf("backend's BYE to %v (drop %v), want the client %v by its flow", r.To, r.Drop, fx.client)
	}
	// Behind a NAT: the flow names the v6 source, not what the Via says.
	_, m = fwd(t, f, fx.invite("v6nat@x", "z9hG4bKv6n"), fx.natted)
	rr, _ = m.RecordRoute(0)
	if r, _ := fwd(t, f, bye("v6nat@x", rr.Raw), fx.backends[1]); r.To != fx.natted {
		t.Errorf("backend's BYE to %v (drop %v), want the NAT address %v", r.To, r.Drop, fx.natted)
	}
	opt := sip("OPTIONS sip:[::1]:5060 SIP/2.0", "Via: SIP/2.0/UDP [2001:db8::1]:40000;branch=z9hG4bKv6o;rport",
		"Max-Forwards: 70", "From: <sip:p@x>;tag=p", "To: <sip:[::1]:5060>", "Call-ID: v6o@x", "CSeq: 1 OPTIONS", "Content-Length: 0")
	if r, _ := fwd(t, f, opt, fx.client); r.Status != 200 || r.To != fx.client {
		t.Errorf("OPTIONS to siplb: status %d to %v, want 200 to %v", r.Status, r.To, fx.client)
	}
	if r, _ := fwd(t, f, fx.invite("v6mf@x", "z9hG4bKv6m", "Max-Forwards: 0"), fx.client); r.Status != 483 || r.To != fx.client {
		t.Errorf("Max-Forwards 0: status %d to %v, want 483 to %v", r.Status, r.To, fx.client)
	}
}

func (fx fixture) isBackend(a netip.AddrPort) bool {
	for _, b := range fx.backends {
		if a == b {
			return true
		}
	}
	return false
}

// A sender cannot choose where the responses go: siplb replaces a received
// or rport value it wrote itself (else a backend's answers, 200 and its
// retransmissions, would be reflected to a third party).
func TestForwardReceivedNotTakenFromSender(t *testing.T) {
	for _, via := range []string{
		"127.0.0.1:40000;branch=z9hG4bKrx;received=10.1.1.1",
		"127.0.0.1:40000;branch=z9hG4bKrx;rport=9",
		"127.0.0.1:40000;branch=z9hG4bKrx;received=10.1.1.1;rport=9",
		"10.0.0.5:5060;branch=z9hG4bKrx;rport;received=10.1.1.1",
	} {
		t.Run(via, func(t *testing.T) {
			f := newTestForwarder(t)
			in := sip("OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP "+via, "Max-Forwards: 70",
				"From: <sip:a@x>;tag=1", "To: <sip:b@x>", "Call-ID: rx@x", "CSeq: 1 OPTIONS", "Content-Length: 0")
			_, m := fwd(t, f, in, client)
			resp := bytes.Replace(bytes.Clone(m.Buf), []byte("OPTIONS sip:bob@example.com SIP/2.0"), []byte("SIP/2.0 200 OK"), 1)
			r, _ := fwd(t, f, resp, backends[0])
			want := client
			if !strings.Contains(via, "rport") {
				want = netip.AddrPortFrom(client.Addr(), 40000)
			}
			if r.To != want {
				t.Errorf("response to %v, want the sender %v", r.To, want)
			}
		})
	}
}
