package engine

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
)

// The fixture: one UDP leg on 127.0.0.1:5060 in front of three backends; the
// client is at 127.0.0.1:40000.
var (
	legAddr  = netip.MustParseAddrPort("127.0.0.1:5060")
	client   = netip.MustParseAddrPort("127.0.0.1:40000")
	natted   = netip.MustParseAddrPort("127.0.0.9:61000") // a client behind NAT
	backends = []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:5070"),
		netip.MustParseAddrPort("127.0.0.1:5071"),
		netip.MustParseAddrPort("127.0.0.1:5072"),
	}
)

func newTestForwarder(t testing.TB, states ...balance.State) *Forwarder {
	t.Helper()
	pc := balance.PoolConfig{Name: "farm", Algorithm: balance.HashCallID}
	for i, a := range backends {
		bc := balance.BackendConfig{Addr: a, Transport: balance.UDP, Weight: 1, Priority: 1}
		if i < len(states) {
			bc.State = states[i]
		}
		pc.Backends = append(pc.Backends, bc)
	}
	return newPoolForwarder(t, pc, Config{})
}

// newPoolForwarder is a Forwarder in front of the one pool pc, with cfg's
// legs or else one UDP leg on legAddr.
func newPoolForwarder(t testing.TB, pc balance.PoolConfig, cfg Config) *Forwarder {
	t.Helper()
	bal, err := balance.New([]balance.PoolConfig{pc})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Legs) == 0 {
		cfg.Legs = []LegConfig{{Transport: balance.UDP, Addr: legAddr}}
	}
	f, err := NewForwarder(cfg, bal)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sip joins header lines with CRLF and ends the header section.
func sip(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n")
}

func invite(callID, branch string, extra ...string) []byte {
	mf := "Max-Forwards: 70"
	for _, e := range extra {
		if strings.HasPrefix(e, "Max-Forwards") {
			mf = e
		}
	}
	lines := []string{
		"INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=" + branch + ";rport",
		mf,
		"From: <sip:alice@example.com>;tag=a1",
		"To: <sip:bob@example.com>",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		"Contact: <sip:alice@127.0.0.1:40000>",
	}
	for _, e := range extra {
		if !strings.HasPrefix(e, "Max-Forwards") {
			lines = append(lines, e)
		}
	}
	return sip(append(lines, "Content-Length: 0")...)
}

// fwd runs one message through a fresh Scratch and returns a copy of the
// result's bytes, parsed.
func fwd(t *testing.T, f *Forwarder, in []byte, src netip.AddrPort) (Result, *parser.Message) {
	t.Helper()
	s := f.NewScratch()
	r := f.Process(s, in, src, f.Legs()[0])
	if r.Out == nil {
		return r, nil
	}
	out := bytes.Clone(r.Out)
	r.Out = out
	var m parser.Message
	if err := parser.Parse(&m, out); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, out)
	}
	return r, &m
}

func TestForwardInitialInvite(t *testing.T) {
	f := newTestForwarder(t)
	r, m := fwd(t, f, invite("call-1@x", "z9hG4bKc1"), client)
	if m == nil {
		t.Fatalf("dropped: %v", r.Drop)
	}
	if !isBackend(r.To) {
		t.Fatalf("sent to %v, not a backend", r.To)
	}
	if got := m.NumVia(); got != 2 {
		t.Fatalf("NumVia = %d, want 2", got)
	}
	top, _ := m.Via(0)
	if !strings.HasPrefix(string(top.Branch), "z9hG4bK"+f.Legs()[0].Tag()) || len(top.Branch) != branchLen {
		t.Errorf("top branch %q lacks the leg tag %s", top.Branch, f.Legs()[0].Tag())
	}
	if string(top.Host) != "127.0.0.1" || top.Port != 5060 {
		t.Errorf("top Via sent-by %s:%d, want 127.0.0.1:5060", top.Host, top.Port)
	}
	second, _ := m.Via(1)
	if second.RPort != 40000 || string(second.Received) != "127.0.0.1" {
		t.Errorf("client Via rport=%d received=%q, want 40000 and 127.0.0.1 (RFC 3581)", second.RPort, second.Received)
	}
	if mf, _ := m.MaxForwards(); mf != 69 {
		t.Errorf("Max-Forwards = %d, want 69", mf)
	}
	rr, err := m.RecordRoute(0)
	if err != nil || string(rr.Host) != "127.0.0.1" || rr.Port != 5060 || !rr.LR {
		t.Errorf("Record-Route = %+v (%v), want <sip:127.0.0.1:5060;lr>", rr, err)
	}
}

func isBackend(a netip.AddrPort) bool {
	for _, b := range backends {
		if a == b {
			return true
		}
	}
	return false
}

// Every message of a dialog reaches the INVITE's backend, with no state.
func TestForwardDialogStaysOnBackend(t *testing.T) {
	f := newTestForwarder(t)
	for i := range 50 {
		callID := "dialog-" + strings.Repeat("x", i) + "@h"
		r, fm := fwd(t, f, invite(callID, "z9hG4bKinv"), client)
		if fm == nil {
			t.Fatalf("INVITE dropped: %v", r.Drop)
		}
		invBranch, _ := fm.Via(0)
		backend := r.To

		cancel := sip("CANCEL sip:bob@example.com SIP/2.0",
			"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv;rport",
			"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
			"Call-ID: "+callID, "CSeq: 1 CANCEL", "Content-Length: 0")
		rc, cm := fwd(t, f, cancel, client)
		if rc.To != backend {
			t.Errorf("%s: CANCEL went to %v, INVITE to %v", callID, rc.To, backend)
		}
		cb, _ := cm.Via(0)
		if !bytes.Equal(cb.Branch, invBranch.Branch) {
			t.Errorf("%s: CANCEL branch %q, INVITE branch %q: they must be equal (§16.11)", callID, cb.Branch, invBranch.Branch)
		}

		// ACK for a non-2xx: same branch as the INVITE, To tag set.
		ack := sip("ACK sip:bob@example.com SIP/2.0",
			"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv;rport",
			"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b9",
			"Call-ID: "+callID, "CSeq: 1 ACK", "Content-Length: 0")
		ra, am := fwd(t, f, ack, client)
		if ra.To != backend {
			t.Errorf("%s: ACK went to %v, INVITE to %v", callID, ra.To, backend)
		}
		if ab, _ := am.Via(0); !bytes.Equal(ab.Branch, invBranch.Branch) {
			t.Errorf("%s: ACK branch %q, INVITE branch %q: they must be equal (§16.11)", callID, ab.Branch, invBranch.Branch)
		}

		// BYE inside the dialog, routed by the Record-Route set and the
		// backend's Contact.
		bye := sip("BYE sip:echo@"+backend.String()+" SIP/2.0",
			"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbye;rport",
			"Route: <sip:127.0.0.1:5060;lr>",
			"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b9",
			"Call-ID: "+callID, "CSeq: 2 BYE", "Content-Length: 0")
		rb, bm := fwd(t, f, bye, client)
		if rb.To != backend {
			t.Errorf("%s: BYE went to %v, INVITE to %v", callID, rb.To, backend)
		}
		if bm != nil && bm.NumRoute() != 0 {
			t.Errorf("%s: BYE still carries %d Route values; ours must be popped", callID, bm.NumRoute())
		}
	}
}

func TestForwardReplies(t *testing.T) {
	f := newTestForwarder(t)
	down := newTestForwarder(t, balance.Disabled, balance.Disabled, balance.Disabled)
	tests := []struct {
		name       string
		f          *Forwarder
		in         []byte
		wantStatus int
		wantReason string
		wantHeader string
	}{
		{
			name:       "max-forwards zero",
			f:          f,
			in:         invite("mf0@x", "z9hG4bKmf", "Max-Forwards: 0"),
			wantStatus: 483, wantReason: "Too Many Hops",
		},
		{
			name: "options to the balancer",
			f:    f,
			in: sip("OPTIONS sip:127.0.0.1:5060 SIP/2.0",
				"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKo1;rport", "Max-Forwards: 70",
				"From: <sip:probe@example.com>;tag=p", "To: <sip:127.0.0.1:5060>", "Call-ID: opt@x",
				"CSeq: 7 OPTIONS", "Content-Length: 0"),
			wantStatus: 200, wantReason: "OK",
		},
		{
			name: "sips over udp",
			f:    f,
			in: sip("INVITE sips:bob@example.com SIP/2.0",
				"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKs1;rport", "Max-Forwards: 70",
				"From: <sips:alice@example.com>;tag=a1", "To: <sips:bob@example.com>", "Call-ID: sips@x",
				"CSeq: 1 INVITE", "Content-Length: 0"),
			wantStatus: 416, wantReason: "SIPS Requires TLS",
		},
		{
			name:       "no backend up",
			f:          down,
			in:         invite("none@x", "z9hG4bKn1"),
			wantStatus: 503, wantReason: "Service Unavailable", wantHeader: "Retry-After: 5",
		},
		{
			name: "missing call-id",
			f:    f,
			in: sip("INVITE sip:bob@example.com SIP/2.0",
				"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKm1;rport", "Max-Forwards: 70",
				"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
				"CSeq: 1 INVITE", "Content-Length: 0"),
			wantStatus: 400, wantReason: "Missing Call-ID",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.f.Process(tc.f.NewScratch(), tc.in, client, tc.f.Legs()[0])
			if r.Out == nil {
				t.Fatalf("no reply; dropped as %v", r.Drop)
			}
			// A reply to a request without Call-ID has none either, so it is
			// checked as bytes, not parsed.
			statusLine := fmt.Sprintf("SIP/2.0 %d %s\r\n", tc.wantStatus, tc.wantReason)
			if r.Status != tc.wantStatus || !bytes.HasPrefix(r.Out, []byte(statusLine)) {
				t.Fatalf("reply %q (Result.Status %d), want %q", bytes.SplitN(r.Out, []byte("\r\n"), 2)[0], r.Status, statusLine)
			}
			if r.To != client {
				t.Errorf("reply sent to %v, want the client %v", r.To, client)
			}
			if tc.wantHeader != "" && !bytes.Contains(r.Out, []byte(tc.wantHeader+"\r\n")) {
				t.Errorf("reply lacks %q:\n%s", tc.wantHeader, r.Out)
			}
			if !bytes.Contains(r.Out, []byte("\r\nTo: <sip")) || !bytes.Contains(r.Out, []byte(";tag=")) {
				t.Errorf("reply has no To with a tag:\n%s", r.Out)
			}
		})
	}
}

func TestForwardResponses(t *testing.T) {
	f := newTestForwarder(t)
	_, fm := fwd(t, f, invite("resp@x", "z9hG4bKr1"), client)
	ours, _ := fm.Via(0)
	tests := []struct {
		name     string
		topVia   string
		wantTo   netip.AddrPort
		wantDrop Drop
	}{
		{name: "ours", topVia: "SIP/2.0/UDP 127.0.0.1:5060;branch=" + string(ours.Branch) + ";rport=5060", wantTo: client},
		{name: "foreign", topVia: "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKsomeoneelse", wantDrop: DropForeignVia},
		{name: "forged connection", topVia: "SIP/2.0/UDP 127.0.0.1:5060;branch=" + forge(string(ours.Branch)), wantDrop: DropForeignVia},
		{name: "foreign tag", topVia: "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKdeadbeef00" + strings.Repeat("0", 24), wantDrop: DropForeignVia},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := sip("SIP/2.0 200 OK",
				"Via: "+tc.topVia,
				"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKr1;rport=40000;received=127.0.0.1",
				"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
				"Call-ID: resp@x", "CSeq: 1 INVITE", "Content-Length: 0")
			r, m := fwd(t, f, resp, backends[0])
			if r.Drop != tc.wantDrop {
				t.Fatalf("Drop = %v, want %v", r.Drop, tc.wantDrop)
			}
			if tc.wantDrop != DropNone {
				return
			}
			if r.To != tc.wantTo {
				t.Errorf("sent to %v, want %v", r.To, tc.wantTo)
			}
			if m.NumVia() != 1 {
				t.Errorf("NumVia = %d, want 1 (ours removed)", m.NumVia())
			}
		})
	}
}

func TestForwardResponseNAT(t *testing.T) {
	f := newTestForwarder(t)
	// The client says 10.0.0.5:5060 but its datagrams come from natted.
	in := sip("REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat;rport",
		"Max-Forwards: 70", "From: <sip:carol@example.com>;tag=c1", "To: <sip:carol@example.com>",
		"Call-ID: nat@x", "CSeq: 1 REGISTER", "Contact: <sip:carol@10.0.0.5:5060>", "Content-Length: 0")
	_, m := fwd(t, f, in, natted)
	resp := bytes.Replace(bytes.Clone(m.Buf), []byte("REGISTER sip:example.com SIP/2.0"), []byte("SIP/2.0 200 OK"), 1)
	r, _ := fwd(t, f, resp, backends[0])
	if r.To != natted {
		t.Errorf("response sent to %v, want the NAT address %v (RFC 3581)", r.To, natted)
	}
}

func TestForwardLoop(t *testing.T) {
	f := newTestForwarder(t)
	_, m := fwd(t, f, invite("loop@x", "z9hG4bKl1"), client)
	// The forwarded request comes straight back, as a misrouted peer would
	// send it.
	r, rm := fwd(t, f, bytes.Clone(m.Buf), client)
	if rm == nil || r.Status != 482 {
		t.Fatalf("looped request: status %d drop %v, want 482", r.Status, r.Drop)
	}
}

func TestForwardFromBackend(t *testing.T) {
	f := newTestForwarder(t)
	bye := sip("BYE sip:alice@127.0.0.1:40000 SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKbb1",
		"Route: <sip:127.0.0.1:5060;lr>",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b9", "To: <sip:alice@example.com>;tag=a1",
		"Call-ID: back@x", "CSeq: 1 BYE", "Content-Length: 0")
	r, m := fwd(t, f, bye, backends[1])
	if m == nil {
		t.Fatalf("dropped: %v", r.Drop)
	}
	if r.To != client {
		t.Errorf("BYE from backend sent to %v, want the client %v", r.To, client)
	}
	if m.NumRoute() != 0 {
		t.Errorf("Route not popped")
	}
}

func TestForwardOutsideNoOpenRelay(t *testing.T) {
	f := newTestForwarder(t)
	// A request from outside naming a foreign host goes to a pool member.
	in := sip("INVITE sip:victim@10.1.2.3:5060 SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKrelay",
		"Max-Forwards: 70", "From: <sip:a@x>;tag=1", "To: <sip:victim@10.1.2.3>;tag=2",
		"Call-ID: relay@x", "CSeq: 1 INVITE", "Content-Length: 0")
	r, _ := fwd(t, f, in, client)
	if !isBackend(r.To) {
		t.Errorf("request from outside sent to %v, not a pool member", r.To)
	}
}

func TestForwardMalformedResponseDropped(t *testing.T) {
	f := newTestForwarder(t)
	r, _ := fwd(t, f, []byte("SIP/2.0 200 OK\r\nVia: garbage\r\n\r\n"), backends[0])
	if r.Drop != DropMalformedResponse {
		t.Errorf("Drop = %v, want malformed_response", r.Drop)
	}
}

func TestForwardMaxForwardsInserted(t *testing.T) {
	f := newTestForwarder(t)
	in := bytes.Replace(invite("nomf@x", "z9hG4bKnm"), []byte("Max-Forwards: 70\r\n"), nil, 1)
	_, m := fwd(t, f, in, client)
	if mf, ok := m.MaxForwards(); !ok || mf != 70 {
		t.Errorf("Max-Forwards = %d (present %v), want 70 inserted", mf, ok)
	}
}

// rewrite_contact: a REGISTER's Contact becomes one of siplb's carrying the
// client's flow; the backend's INVITE to it is restored and sent to the
// client's NAT address; the 200 shows the client its own Contact.
func TestForwardRewriteContact(t *testing.T) {
	f := newPoolForwarder(t, balance.PoolConfig{Name: "farm", Backends: []balance.BackendConfig{{Addr: backends[0]}}}, Config{ForceRewrite: true})
	reg := sip("REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKrw;rport",
		"Max-Forwards: 70", "From: <sip:carol@example.com>;tag=c1", "To: <sip:carol@example.com>",
		"Call-ID: rw@x", "CSeq: 1 REGISTER", "Contact: <sip:carol@10.0.0.5:5060;ob>;expires=600", "Content-Length: 0")
	r, m := fwd(t, f, reg, natted)
	if m == nil {
		t.Fatalf("REGISTER dropped: %v", r.Drop)
	}
	cu, err := m.Contact(0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(cu.User), contactPrefix) || string(cu.Host) != "127.0.0.1" || cu.Port != 5060 {
		t.Fatalf("Contact not rewritten to siplb: %s", cu.Raw)
	}
	// The registrar's 200 echoes the registered Contact; the client gets
	// its own back.
	resp := bytes.Replace(bytes.Clone(m.Buf), []byte("REGISTER sip:example.com SIP/2.0"), []byte("SIP/2.0 200 OK"), 1)
	_, rm := fwd(t, f, resp, backends[0])
	if c, _ := rm.Contact(0); string(c.Raw) != "sip:carol@10.0.0.5:5060;ob" {
		t.Errorf("200 Contact = %s, want the client's own", c.Raw)
	}
	// The registrar calls the registered Contact.
	inv := sip("INVITE "+string(cu.Raw)+" SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcall",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b", "To: <sip:carol@example.com>",
		"Call-ID: call-rw@x", "CSeq: 1 INVITE", "Content-Length: 0")
	r, im := fwd(t, f, inv, backends[0])
	if im == nil {
		t.Fatalf("INVITE dropped: %v", r.Drop)
	}
	if r.To != natted {
		t.Errorf("INVITE sent to %v, want the client's NAT address %v", r.To, natted)
	}
	if got := string(im.RequestURI()); got != "sip:carol@10.0.0.5:5060;ob" {
		t.Errorf("Request-URI = %s, want the client's original Contact", got)
	}
}

type observed struct {
	src    netip.AddrPort
	status int
}

type recordObserver struct{ got []observed }

func (r *recordObserver) Observe(src netip.AddrPort, status int) {
	r.got = append(r.got, observed{src, status})
}

// Final responses that siplb routes back are reported with their source
// (passive health: a run of 5xx marks a backend down, any other shows it
// alive); provisional ones are not, nor are responses whose top Via is not
// siplb's (a forged source must not keep a dead backend up).
func TestForwardObservesFinalResponses(t *testing.T) {
	f := newTestForwarder(t)
	obs := &recordObserver{}
	f.SetObserver(obs)
	_, fm := fwd(t, f, invite("obs@x", "z9hG4bKo1"), client)
	ours, _ := fm.Via(0)
	for _, tc := range []struct{ status, branch string }{
		{"180 Ringing", string(ours.Branch)},
		{"503 Service Unavailable", string(ours.Branch)},
		{"200 OK", forge(string(ours.Branch))},
		{"200 OK", "z9hG4bKnotours"},
	} {
		resp := sip("SIP/2.0 "+tc.status,
			"Via: SIP/2.0/UDP 127.0.0.1:5060;branch="+tc.branch,
			"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKo1;rport=40000",
			"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
			"Call-ID: obs@x", "CSeq: 1 INVITE", "Content-Length: 0")
		f.Process(f.NewScratch(), resp, backends[2], f.Legs()[0])
	}
	if len(obs.got) != 1 || obs.got[0] != (observed{backends[2], 503}) {
		t.Errorf("observed %v, want one 503 from %v", obs.got, backends[2])
	}
}

func TestForwardKeepAliveIgnored(t *testing.T) {
	f := newTestForwarder(t)
	s := f.NewScratch()
	for _, in := range []string{"\r\n", "\r\n\r\n", "\n"} {
		r := f.Process(s, []byte(in), client, f.Legs()[0])
		if r.Out != nil || r.Drop != DropNone {
			t.Errorf("keep-alive %q: Out %q Drop %v, want silence", in, r.Out, r.Drop)
		}
	}
	if got := s.Counters.KeepAlives.Load(); got != 3 {
		t.Errorf("KeepAlives = %d, want 3", got)
	}
}

// A member added by a reload (or DNS) whose transport has no listener is not
// a target: a request naming it goes to the pool's pick, never crashes.
func TestForwardMemberWithoutListener(t *testing.T) {
	pcs := []balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: backends[0]}}}}
	bal, _ := balance.New(pcs)
	f, err := NewForwarder(Config{Legs: []LegConfig{{Transport: balance.UDP, Addr: legAddr}}}, bal)
	if err != nil {
		t.Fatal(err)
	}
	tcpMember := netip.MustParseAddrPort("127.0.0.1:5080")
	pcs[0].Backends = append(pcs[0].Backends, balance.BackendConfig{Addr: tcpMember, Transport: balance.TCP})
	if err := bal.Reload(pcs); err != nil {
		t.Fatal(err)
	}
	bye := sip("BYE sip:bob@127.0.0.1:5080 SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKnl;rport",
		"Max-Forwards: 70", "From: <sip:a@x>;tag=1", "To: <sip:b@x>;tag=2",
		"Call-ID: nolistener@x", "CSeq: 2 BYE", "Content-Length: 0")
	r, _ := fwd(t, f, bye, client)
	if r.To != backends[0] {
		t.Errorf("BYE sent to %v, want the pool's UDP member %v", r.To, backends[0])
	}
}

// forge changes the connection id in a branch of ours, keeping the rest, as
// an attacker who saw one would.
func forge(b string) string {
	return b[:branchConnOff] + "00400001" + b[branchMACOff:]
}

// A rewritten Contact only restores under its MAC: a client cannot write
// one of ours naming another client's flow.
func TestUnrewriteContactChecksMAC(t *testing.T) {
	f := newTestForwarder(t)
	leg := f.Legs()[0]
	good := appendRewrittenContact(nil, f.ring.Load().keys[0].contact, leg, []byte("sip:carol@10.0.0.5"), natted, 0, balance.UDP)
	var u parser.URI
	if err := parser.ParseURI(&u, good); err != nil {
		t.Fatal(err)
	}
	if _, orig, ok := f.ring.Load().unrewriteContact(nil, &u); !ok || string(orig) != "sip:carol@10.0.0.5" {
		t.Fatalf("unrewrite(%s) = %q, %v", good, orig, ok)
	}
	tampered := bytes.Replace(good, []byte("lbc.u"), []byte("lbc.t00400001"), 1)
	tampered = bytes.Replace(tampered, []byte(string(u.User[5:5+12])), nil, 1)
	if err := parser.ParseURI(&u, tampered); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.ring.Load().unrewriteContact(nil, &u); ok {
		t.Errorf("tampered Contact %s restored", tampered)
	}
}

// A client sees siplb's branch on the requests a backend sends it. Replayed
// in forged 5xx responses with a member's address as their source, that
// branch must not tell of the member's health: only a response to a
// request siplb sent to a member does.
func TestForgedResponseCannotMarkMemberDown(t *testing.T) {
	f := newTestForwarder(t)
	obs := &recordObserver{}
	f.SetObserver(obs)
	bye := sip("BYE sip:alice@127.0.0.1:40000 SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKbb1",
		"Route: <sip:127.0.0.1:5060;lr>",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b9", "To: <sip:alice@example.com>;tag=a1",
		"Call-ID: replay@x", "CSeq: 1 BYE", "Content-Length: 0")
	r, m := fwd(t, f, bye, backends[1])
	if m == nil || r.To != client {
		t.Fatalf("BYE not sent to the client: %v %v", r.Drop, r.To)
	}
	seen, _ := m.Via(0) // what the client sees
	forged := sip("SIP/2.0 503 Service Unavailable",
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch="+string(seen.Branch),
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKx",
		"From: <sip:bob@example.com>;tag=b9", "To: <sip:alice@example.com>;tag=a1",
		"Call-ID: replay@x", "CSeq: 1 BYE", "Content-Length: 0")
	for range 10 {
		f.Process(f.NewScratch(), forged, backends[2], f.Legs()[0])
	}
	if len(obs.got) != 0 {
		t.Errorf("forged responses reported to the health checks: %v", obs.got)
	}
	if be, _ := f.bal.Table().Lookup(backends[2]); be.Stats.Read().Responses[4] != 0 {
		t.Errorf("forged 5xx counted on the member")
	}
}
