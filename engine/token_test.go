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
	"github.com/siplb/siplb/pool"
)

// Attacks on the tokens siplb mints: each test plays the attacker.

// victim is an address the attacker wants siplb to send to.
var victim = netip.MustParseAddrPort("127.0.0.77:5099")

// udpFlowToken is the unsigned flow token of a UDP address, as siplb
// wrote it before tokens carried a MAC (the attacker's forgery).
func udpFlowToken(a netip.AddrPort) string {
	b := a.Addr().As4()
	return fmt.Sprintf("u%02x%02x%02x%02x%04x", b[0], b[1], b[2], b[3], a.Port())
}

// dialogWithRoute runs a client's INVITE (with extra headers) through f and
// returns the Record-Route values of the forwarded request, top first, as
// the backend's route set for its requests in the dialog.
func dialogRoute(t *testing.T, f *Forwarder, callID string, extra ...string) []string {
	t.Helper()
	r, m := fwd(t, f, invite(callID, "z9hG4bK"+strings.ReplaceAll(callID, "@", "-"), extra...), client)
	if m == nil {
		t.Fatalf("INVITE dropped: %v", r.Drop)
	}
	var rs []string
	for i := range m.NumRecordRoute() {
		u, err := m.RecordRoute(i)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, "<"+string(u.Raw)+">")
	}
	return rs
}

// backendBye is the backend's BYE in the dialog callID with route set rs.
func backendBye(callID string, rs []string) []byte {
	lines := []string{"BYE sip:alice@10.0.0.1:5060 SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbye-" + strings.ReplaceAll(callID, "@", "-")}
	for _, r := range rs {
		lines = append(lines, "Route: "+r)
	}
	lines = append(lines, "Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b9",
		"To: <sip:alice@example.com>;tag=a1", "Call-ID: "+callID, "CSeq: 1 BYE", "Content-Length: 0")
	return sip(lines...)
}

func TestFlowTokenForgeries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		forged string // the attacker's own Record-Route value naming siplb
	}{
		{"unsigned UDP flow", "<sip:127.0.0.1:5060;lr;lbf=" + udpFlowToken(victim) + ">"},
		{"UDP flow, made-up MAC", "<sip:127.0.0.1:5060;lr;lbf=" + udpFlowToken(victim) + "0123456789abcdef>"},
		{"unsigned TCP flow", "<sip:127.0.0.1:5060;lr;lbf=t00400002>"},
		{"TCP flow, made-up MAC", "<sip:127.0.0.1:5060;lr;lbf=t00000001004000020123456789abcdef>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestForwarder(t)
			rs := dialogRoute(t, f, "forge@x", "Record-Route: "+tc.forged)
			if len(rs) != 2 {
				t.Fatalf("route set %q, want siplb's value above the forged one", rs)
			}
			s := f.NewScratch()
			r := f.Process(s, backendBye("forge@x", rs), backends[0], f.Legs()[0])
			if r.Out == nil {
				t.Fatalf("BYE dropped: %v", r.Drop)
			}
			if r.To != client || r.Conn != 0 {
				t.Errorf("backend's BYE sent to %v conn %#x; want the client %v by its genuine flow", r.To, r.Conn, client)
			}
			if s.Counters.BadTokens.Load() != 1 {
				t.Errorf("bad tokens counted %d, want 1", s.Counters.BadTokens.Load())
			}
		})
	}
}

// A genuine token copied into another dialog is worth nothing there.
func TestFlowTokenReplayedIntoAnotherDialog(t *testing.T) {
	f := newTestForwarder(t)
	// The victim's dialog, behind a NAT: its token names its address.
	r, m := fwd(t, f, invite("victim@x", "z9hG4bKv"), natted)
	if m == nil {
		t.Fatalf("INVITE dropped: %v", r.Drop)
	}
	rr, _ := m.RecordRoute(0)
	stolen := "<" + string(rr.Raw) + ">"
	// The attacker's own dialog carries the victim's value under siplb's.
	rs := dialogRoute(t, f, "attacker@x", "Record-Route: "+stolen)
	s := f.NewScratch()
	out := f.Process(s, backendBye("attacker@x", rs), backends[0], f.Legs()[0])
	if out.To == natted {
		t.Fatalf("the attacker's dialog steered a BYE to the victim %v", natted)
	}
	if out.To != client || s.Counters.BadTokens.Load() != 1 {
		t.Errorf("BYE to %v, bad tokens %d; want the attacker %v and 1", out.To, s.Counters.BadTokens.Load(), client)
	}
	// In its own dialog the same value still works.
	s = f.NewScratch()
	if out := f.Process(s, backendBye("victim@x", []string{stolen}), backends[0], f.Legs()[0]); out.To != natted {
		t.Errorf("the victim's own BYE went to %v, want %v", out.To, natted)
	}
}

// Rotating the secret keeps the tokens signed by the old one valid while it
// is in the ring, and no longer.
func TestSecretRotation(t *testing.T) {
	f := newTestForwarder(t)
	f.SetSecrets("old secret 0123456789")
	r, m := fwd(t, f, invite("rot@x", "z9hG4bKrot"), natted)
	if m == nil {
		t.Fatalf("INVITE dropped: %v", r.Drop)
	}
	rr, _ := m.RecordRoute(0)
	rs := []string{"<" + string(rr.Raw) + ">"}
	resp := bytes.Replace(bytes.Clone(m.Buf), []byte("INVITE sip:bob@example.com SIP/2.0"), []byte("SIP/2.0 180 Ringing"), 1)

	f.SetSecrets("new secret 9876543210", "old secret 0123456789")
	if out := f.Process(f.NewScratch(), backendBye("rot@x", rs), backends[0], f.Legs()[0]); out.To != natted {
		t.Errorf("during the grace period: BYE to %v, want %v\n%s\n%s", out.To, natted, backendBye("rot@x", rs), out.Out)
	}
	if out := f.Process(f.NewScratch(), resp, backends[0], f.Legs()[0]); out.To != natted {
		t.Errorf("during the grace period: response to %v (drop %v), want %v", out.To, out.Drop, natted)
	}
	f.SetSecrets("new secret 9876543210")
	if out := f.Process(f.NewScratch(), backendBye("rot@x", rs), backends[0], f.Legs()[0]); out.To == natted {
		t.Errorf("after the grace period the old token still steers the BYE")
	}
	if out := f.Process(f.NewScratch(), resp, backends[0], f.Legs()[0]); out.Drop != DropForeignVia {
		t.Errorf("after the grace period: response %v, want dropped as foreign_via", out.Drop)
	}
}

// Two Forwarders with no configured secret do not accept each other's
// tokens: the default secret is random, not derived from the legs.
func TestDefaultSecretIsNotDerived(t *testing.T) {
	a, b := newTestForwarder(t), newTestForwarder(t)
	_, m := fwd(t, a, invite("def@x", "z9hG4bKdef"), client)
	resp := bytes.Replace(bytes.Clone(m.Buf), []byte("INVITE sip:bob@example.com SIP/2.0"), []byte("SIP/2.0 200 OK"), 1)
	if r := b.Process(b.NewScratch(), resp, backends[0], b.Legs()[0]); r.Drop != DropForeignVia {
		t.Errorf("another instance with the same legs accepted the branch: %v to %v", r.Drop, r.To)
	}
	if r := a.Process(a.NewScratch(), resp, backends[0], a.Legs()[0]); r.To != client {
		t.Errorf("the minting instance routed its own response to %v (%v)", r.To, r.Drop)
	}
}

// A TCP client cannot reach another client's connection with a flow token:
// connection ids are random and tokens signed, so neither a guessed nor an
// unsigned id addresses a connection.
func TestStreamFlowTokenCannotAddressAnotherConnection(t *testing.T) {
	uas := startTCPUAS(t)
	_, lb, _ := startMixedLB(t, pool.Limits{}, tcpMember(uas))
	call := func(c net.Conn, callID string, extra ...string) string {
		t.Helper()
		local := c.LocalAddr().String()
		lines := []string{"INVITE sip:bob@example.com SIP/2.0",
			"Via: SIP/2.0/TCP " + local + ";branch=z9hG4bK-" + strings.ReplaceAll(callID, "@", "-") + ";rport",
			"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>",
			"Call-ID: " + callID, "CSeq: 1 INVITE"}
		lines = append(lines, extra...)
		c.Write(sip(append(lines, "Content-Length: 0")...))
		got := readResponses(t, c, 1, 5*time.Second)
		if len(got) != 1 {
			t.Fatalf("%s: no answer", callID)
		}
		var m parser.Message
		if err := parser.Parse(&m, got[0]); err != nil {
			t.Fatal(err)
		}
		var rs []string
		for i := range m.NumRecordRoute() {
			u, _ := m.RecordRoute(i)
			rs = append(rs, "Route: <"+string(u.Raw)+">")
		}
		return strings.Join(rs, "\r\n")
	}
	victimConn := dialTCP(t, lb)
	call(victimConn, "victim@x")
	attacker := dialTCP(t, lb)
	own := call(attacker, "probe@x")
	// The attacker reads its own connection id from its Record-Route and
	// forges its neighbours' (ids used to be sequential).
	i := strings.Index(own, ";lbf=t")
	if i < 0 {
		t.Fatalf("no stream flow in %q", own)
	}
	var id uint64
	fmt.Sscanf(own[i+6:i+14], "%x", &id)
	var forged []string
	for _, d := range []uint64{1, 2} {
		forged = append(forged, fmt.Sprintf("Record-Route: <sip:%s;transport=tcp;lr;lbf=t%08x>", lb, id-d))
	}
	routes := call(attacker, "steer@x", forged...)
	bye := "BYE sip:x@10.99.0.1:5060;transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP " + uas.addr.String() +
		";branch=z9hG4bK-steer\r\n" + routes + "\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=uas\r\n" +
		"To: <sip:alice@example.com>;tag=a\r\nCall-ID: steer@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
	uas.send(t, []byte(bye))
	if got := readResponses(t, victimConn, 1, 1500*time.Millisecond); len(got) != 0 {
		t.Fatalf("the attacker's forged flow wrote into the victim's connection: %q", got)
	}
	if got := readResponses(t, attacker, 1, 3*time.Second); len(got) != 1 || !bytes.HasPrefix(got[0], []byte("BYE ")) {
		t.Errorf("the BYE of the attacker's dialog did not come back on its own connection: %q", got)
	}
}

// A TCP client whose Via names a member is not that member: its request to
// an arbitrary address goes to the pool, not to the address.
func TestStreamClientWithMemberViaIsNoBackend(t *testing.T) {
	uas := startUAS(t) // a UDP member on 127.0.0.1, the client's own IP
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	target := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	_, lb, _ := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
	c := dialTCP(t, lb)
	req := sip("MESSAGE sip:x@"+target.String()+" SIP/2.0",
		"Via: SIP/2.0/UDP "+uas.addr.String()+";branch=z9hG4bK-spoof",
		"Max-Forwards: 70", "From: <sip:a@example.com>;tag=f", "To: <sip:x@example.com>;tag=t",
		"Call-ID: spoof@x", "CSeq: 1 MESSAGE", "Content-Length: 0")
	c.Write(req)
	sink.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	buf := make([]byte, 4096)
	if n, _, err := sink.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("relayed to %v on the strength of a Via: %q", target, buf[:n])
	}
	if ms := uas.methods("spoof@x"); len(ms) != 1 || ms[0] != "MESSAGE" {
		t.Errorf("the pool member saw %v, want the MESSAGE", ms)
	}
}

// A source IP listed in backend_sources is a backend whatever its port.
func TestBackendSourcesTrusted(t *testing.T) {
	pc := balance.PoolConfig{Name: "farm", Backends: []balance.BackendConfig{{Addr: backends[0]}},
		BackendSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.8/32")}}
	f := newPoolForwarder(t, pc, Config{})
	req := sip("MESSAGE sip:x@"+victim.String()+" SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.8:40001;branch=z9hG4bK-src",
		"Max-Forwards: 70", "From: <sip:a@example.com>;tag=f", "To: <sip:x@example.com>;tag=t",
		"Call-ID: src@x", "CSeq: 1 MESSAGE", "Content-Length: 0")
	for _, tc := range []struct {
		src  netip.AddrPort
		want netip.AddrPort
	}{
		{netip.MustParseAddrPort("127.0.0.8:40001"), victim},
		{netip.MustParseAddrPort("127.0.0.9:40001"), backends[0]},
	} {
		if r, _ := fwd(t, f, req, tc.src); r.To != tc.want {
			t.Errorf("from %v: sent to %v, want %v", tc.src, r.To, tc.want)
		}
	}
}
