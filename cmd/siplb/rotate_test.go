package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/parser"
)

// A reload that changes the branch secret keeps the old one verifying for
// the grace period, then drops it.
func TestRotationGrace(t *testing.T) {
	be := netip.MustParseAddrPort("127.0.0.1:5070")
	bal, err := balance.New([]balance.PoolConfig{{Name: "p", Backends: []balance.BackendConfig{{Addr: be}}}})
	if err != nil {
		t.Fatal(err)
	}
	leg := netip.MustParseAddrPort("127.0.0.1:5060")
	fwd, err := engine.NewForwarder(engine.Config{Legs: []engine.LegConfig{{Transport: balance.UDP, Addr: leg}}}, bal)
	if err != nil {
		t.Fatal(err)
	}
	r := newRotation(fwd, "secret-A-0123456789", nil, slog.New(slog.DiscardHandler))
	defer r.stop()
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	inv := strings.Join([]string{"INVITE sip:b@example.com SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKrot;rport",
		"Max-Forwards: 70", "From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>", "Call-ID: rot@x", "CSeq: 1 INVITE",
		"Content-Length: 0", "", ""}, "\r\n")
	s := fwd.NewScratch()
	out := fwd.Process(s, []byte(inv), client, fwd.Legs()[0])
	if out.Out == nil {
		t.Fatalf("INVITE dropped: %v", out.Drop)
	}
	resp := bytes.Replace(bytes.Clone(out.Out), []byte("INVITE sip:b@example.com SIP/2.0"), []byte("SIP/2.0 180 Ringing"), 1)
	var m parser.Message
	if err := parser.Parse(&m, resp); err != nil {
		t.Fatal(err)
	}
	answered := func() bool { return fwd.Process(fwd.NewScratch(), resp, be, fwd.Legs()[0]).To == client }
	if !answered() {
		t.Fatal("the response to a branch of the current secret is not routed")
	}
	r.apply("secret-B-0123456789", nil, 300*time.Millisecond)
	if !answered() {
		t.Error("during the grace period the old secret's branch is refused")
	}
	time.Sleep(500 * time.Millisecond)
	if answered() {
		t.Error("after the grace period the old secret's branch still routes")
	}
	// A configured previous secret verifies with no end.
	r.apply("secret-C-0123456789", []string{"secret-A-0123456789"}, 0)
	if !answered() {
		t.Error("a configured previous_secrets entry does not verify")
	}
}
