//go:build !race

package engine

import (
	"bytes"
	"testing"

	"github.com/siplb/siplb/internal/guard"
	"github.com/siplb/siplb/parser"
)

// The forward path (parse → decide → edit) allocates nothing per message:
// requests from outside and from a backend, responses, and stateless replies,
// over IPv4 and IPv6. The edge defences (a Guard) cost no allocation either.
func TestProcessAllocs(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testProcessAllocs(t, newTestForwarder(t), fixture4) })
	t.Run("guarded", func(t *testing.T) {
		testProcessAllocs(t, newGuardedForwarder(t, guard.Config{Replies: guard.ReplyConfig{PerSourceRate: 100000, PerSourceBurst: 100000}}, nil), fixture4)
	})
	t.Run("ipv6", func(t *testing.T) { testProcessAllocs(t, newTestForwarder6(t), fixture6) })
}

func testProcessAllocs(t *testing.T, f *Forwarder, fx fixture) {
	s := f.NewScratch()
	leg := f.Legs()[0]
	inv := fx.invite("alloc@x", "z9hG4bKalloc")
	var fm parser.Message
	if err := parser.Parse(&fm, bytes.Clone(f.Process(s, inv, fx.client, leg).Out)); err != nil {
		t.Fatal(err)
	}
	top, _ := fm.Via(0)
	rr, _ := fm.RecordRoute(0)
	resp := sip("SIP/2.0 180 Ringing",
		"Via: SIP/2.0/UDP "+fx.leg+";branch="+string(top.Branch)+";rport=5060",
		"Via: SIP/2.0/UDP "+fx.client.String()+";branch=z9hG4bKalloc;rport="+itoa(int(fx.client.Port()))+";received="+fx.client.Addr().String(),
		"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Call-ID: alloc@x", "CSeq: 1 INVITE", "Content-Length: 0")
	bye := sip("BYE sip:alice@"+fx.client.String()+" SIP/2.0",
		"Via: SIP/2.0/UDP "+fx.backends[1].String()+";branch=z9hG4bKbb1",
		"Route: <"+string(rr.Raw)+">",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b9", "To: <sip:alice@example.com>;tag=a1",
		"Call-ID: alloc@x", "CSeq: 1 BYE", "Content-Length: 0")
	mf0 := fx.invite("mf0@x", "z9hG4bKmf0", "Max-Forwards: 0")
	bad := sip("INVITE sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP "+fx.client.String()+";branch=z9hG4bKb",
		"From: <sip:a@x>;tag=1", "To: <sip:b@x>", "CSeq: 1 INVITE")
	// Admission (overload.go): Replaces and Refer-To affinity, a member's
	// overload report in siplb's Via.
	repl := fx.invite("repl@x", "z9hG4bKrepl", "Replaces: alloc@x;to-tag=b1;from-tag=a1")
	ref := sip("REFER sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP "+fx.client.String()+";branch=z9hG4bKref;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
		"Call-ID: ref@x", "CSeq: 1 REFER", "Refer-To: <sip:carol@example.com?Replaces=alloc%40x%3Bto-tag%3Db1%3Bfrom-tag%3Da1>",
		"Contact: <sip:alice@example.com>", "Content-Length: 0")
	ocResp := bytes.Replace(resp, []byte(";rport=5060\r\n"), []byte(";rport=5060;oc=0;oc-algo=\"loss\";oc-validity=0;oc-seq=1.5\r\n"), 1)
	cases := []struct {
		name string
		in   []byte
		from int // 0 client, 1 backend
	}{
		{name: "initial INVITE", in: inv},
		{name: "response", in: resp, from: 1},
		{name: "BYE from backend", in: bye, from: 1},
		{name: "483 reply", in: mf0},
		{name: "400 reply", in: bad},
		{name: "INVITE with Replaces", in: repl},
		{name: "REFER with Refer-To Replaces", in: ref},
		{name: "response with an overload report", in: ocResp, from: 1},
	}
	for _, tc := range cases {
		src := fx.client
		if tc.from == 1 {
			src = fx.backends[1]
		}
		if r := f.Process(s, tc.in, src, leg); r.Out == nil {
			t.Fatalf("%s: dropped as %v", tc.name, r.Drop)
		}
		if n := testing.AllocsPerRun(100, func() { f.Process(s, tc.in, src, leg) }); n != 0 {
			t.Errorf("%s: %.1f allocations per message, want 0", tc.name, n)
		}
	}
	v6 := []byte("2001:db8::1")
	if n := testing.AllocsPerRun(100, func() { parseIP(v6) }); n != 0 {
		t.Errorf("parseIP of an IPv6 address: %.1f allocations, want 0", n)
	}
}
