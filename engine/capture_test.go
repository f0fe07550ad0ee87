package engine

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/guard"
	"github.com/siplb/siplb/internal/hep"
	"github.com/siplb/siplb/parser"
)

// recordCapture keeps copies of what it is given.
type recordCapture struct {
	calls []capturedCall
}

type capturedCall struct {
	in     hep.Packet
	out    *hep.Packet
	hasOut bool
}

func (r *recordCapture) Capture(in, out *hep.Packet) {
	c := capturedCall{in: clonePacket(in)}
	if out != nil {
		o := clonePacket(out)
		c.out, c.hasOut = &o, true
	}
	r.calls = append(r.calls, c)
}

func clonePacket(p *hep.Packet) hep.Packet {
	c := *p
	c.Payload = bytes.Clone(p.Payload)
	c.CorrelationID = bytes.Clone(p.CorrelationID)
	return c
}

// backendResponse is a backend's 200 to the request r forwarded.
func backendResponse(t *testing.T, r Result, callID string) []byte {
	t.Helper()
	var m parser.Message
	if err := parser.Parse(&m, bytes.Clone(r.Out)); err != nil {
		t.Fatal(err)
	}
	top, _ := m.Via(0)
	return sip("SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch="+string(top.Branch),
		"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKc1;rport=40000;received=127.0.0.1",
		"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Call-ID: "+callID, "CSeq: 1 INVITE", "Content-Length: 0")
}

func TestCaptureMirrorsWhatIsProcessed(t *testing.T) {
	f := newTestForwarder(t)
	rec := &recordCapture{}
	f.SetCapture(rec)
	s := f.NewScratch()
	leg := f.Legs()[0]

	inv := invite("cap@x", "z9hG4bKc1")
	ri := f.Process(s, inv, client, leg)
	if ri.Out == nil {
		t.Fatalf("INVITE dropped: %v", ri.Drop)
	}
	fwdInv := bytes.Clone(ri.Out)
	resp := backendResponse(t, ri, "cap@x")
	mangled := []byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKm\r\n\r\n")

	tests := []struct {
		name    string
		in      []byte
		src     netip.AddrPort
		wantOut bool
		outTo   netip.AddrPort // zero: a backend
		callID  string
	}{
		{name: "response routed back", in: resp, src: ri.To, wantOut: true, outTo: client, callID: "cap@x"},
		{name: "stateless 400", in: mangled, src: client, wantOut: true, outTo: client},
		{name: "options to the balancer answered", in: sip("OPTIONS sip:127.0.0.1:5060 SIP/2.0",
			"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKo1;rport", "Max-Forwards: 70",
			"From: <sip:probe@example.com>;tag=p", "To: <sip:127.0.0.1:5060>", "Call-ID: opt@x",
			"CSeq: 7 OPTIONS", "Content-Length: 0"), src: client, wantOut: true, outTo: client, callID: "opt@x"},
		{name: "foreign response dropped, captured in", in: sip("SIP/2.0 200 OK",
			"Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKforeign", "From: <sip:a@x>;tag=1", "To: <sip:b@x>;tag=2",
			"Call-ID: foreign@x", "CSeq: 1 INVITE", "Content-Length: 0"), src: backends[0], callID: "foreign@x"},
	}
	if len(rec.calls) != 1 {
		t.Fatalf("the INVITE made %d captures, want 1", len(rec.calls))
	}
	c := rec.calls[0]
	if !bytes.Equal(c.in.Payload, inv) || c.in.Src != client || c.in.Dst != legAddr || c.in.IPProto != hep.ProtoUDP {
		t.Errorf("INVITE in: %v -> %v proto %d, payload equal %v; want %v -> %v udp",
			c.in.Src, c.in.Dst, c.in.IPProto, bytes.Equal(c.in.Payload, inv), client, legAddr)
	}
	if !c.hasOut || !bytes.Equal(c.out.Payload, fwdInv) || c.out.Src != legAddr || c.out.Dst != ri.To || !isBackend(c.out.Dst) {
		t.Errorf("INVITE out: %+v, want the forwarded INVITE from %v to a backend (%v)", c.out, legAddr, ri.To)
	}
	if string(c.in.CorrelationID) != "cap@x" || string(c.out.CorrelationID) != "cap@x" {
		t.Errorf("correlation ids %q, %q; want the Call-ID cap@x", c.in.CorrelationID, c.out.CorrelationID)
	}
	if !c.out.Time.IsZero() || !c.in.Time.IsZero() {
		t.Errorf("times: in %v, out %v: want zero (the Capture stamps them, the data path reads no clock)", c.in.Time, c.out.Time)
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec.calls = nil
			r := f.Process(s, tc.in, tc.src, leg)
			if len(rec.calls) != 1 {
				t.Fatalf("%d captures, want 1", len(rec.calls))
			}
			c := rec.calls[0]
			if !bytes.Equal(c.in.Payload, tc.in) || c.in.Src != tc.src || c.in.Dst != legAddr {
				t.Errorf("in: %v -> %v, want %v -> %v with the message received", c.in.Src, c.in.Dst, tc.src, legAddr)
			}
			if string(c.in.CorrelationID) != tc.callID {
				t.Errorf("in correlation id %q, want %q", c.in.CorrelationID, tc.callID)
			}
			if c.hasOut != tc.wantOut || c.hasOut != (r.Out != nil) {
				t.Fatalf("out captured %v (result has out %v), want %v", c.hasOut, r.Out != nil, tc.wantOut)
			}
			if c.hasOut && (!bytes.Equal(c.out.Payload, r.Out) || c.out.Dst != tc.outTo || c.out.Src != legAddr) {
				t.Errorf("out: %v -> %v, want %v -> %v with the bytes sent", c.out.Src, c.out.Dst, legAddr, tc.outTo)
			}
		})
	}
}

// Keep-alives, datagrams that are not SIP and sources the edge defences
// refuse are not mirrored.
func TestCaptureSkipsWhatIsNotSIP(t *testing.T) {
	acl, err := guard.NewACL("listen[0]", guard.ACLConfig{Deny: []string{"127.0.0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	f := newGuardedForwarder(t, guard.Config{}, acl)
	rec := &recordCapture{}
	f.SetCapture(rec)
	s := f.NewScratch()
	tests := []struct {
		name string
		in   []byte
		src  netip.AddrPort
	}{
		{"keep-alive", []byte("\r\n\r\n"), client},
		{"not sip", []byte("\x16\x03\x01 hello"), client},
		{"denied source", invite("deny@x", "z9hG4bKd"), netip.MustParseAddrPort("127.0.0.3:5060")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec.calls = nil
			f.Process(s, tc.in, tc.src, f.Legs()[0])
			if len(rec.calls) != 0 {
				t.Errorf("%d captures, want none", len(rec.calls))
			}
		})
	}
}

// Over TCP (and TLS, WS: every leg but UDP), the packets say TCP.
func TestCaptureStreamLeg(t *testing.T) {
	tcpLeg := netip.MustParseAddrPort("127.0.0.1:5061")
	pc := balance.PoolConfig{Name: "farm", Backends: []balance.BackendConfig{{Addr: backends[0], Transport: balance.TCP, Weight: 1, Priority: 1}}}
	f := newPoolForwarder(t, pc, Config{Legs: []LegConfig{{Transport: balance.TCP, Addr: tcpLeg}}})
	rec := &recordCapture{}
	f.SetCapture(rec)
	inv := bytes.Replace(invite("tcp@x", "z9hG4bKt"), []byte("SIP/2.0/UDP"), []byte("SIP/2.0/TCP"), 1)
	r := f.ProcessConn(f.NewScratch(), inv, client, f.Legs()[0], 7)
	if r.Out == nil || len(rec.calls) != 1 || !rec.calls[0].hasOut {
		t.Fatalf("forwarded %v, %d captures; want the INVITE forwarded and captured in and out", r.Drop, len(rec.calls))
	}
	c := rec.calls[0]
	if c.in.IPProto != hep.ProtoTCP || c.out.IPProto != hep.ProtoTCP || c.in.Dst != tcpLeg || c.out.Dst != backends[0] {
		t.Errorf("in %v -> %v proto %d, out %v -> %v proto %d; want TCP to %v and on to %v",
			c.in.Src, c.in.Dst, c.in.IPProto, c.out.Src, c.out.Dst, c.out.IPProto, tcpLeg, backends[0])
	}
}

// With capture on, Process returns what it returns with capture off.
func TestCaptureLeavesResultAlone(t *testing.T) {
	pc := balance.PoolConfig{Name: "farm"}
	for _, a := range backends {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a, Transport: balance.UDP, Weight: 1, Priority: 1})
	}
	cfg := Config{BranchSecret: "the same secret for both"}
	off, on := newPoolForwarder(t, pc, cfg), newPoolForwarder(t, pc, cfg)
	on.SetCapture(&recordCapture{})
	inv := invite("same@x", "z9hG4bKsame")
	a := off.Process(off.NewScratch(), inv, client, off.Legs()[0])
	b := on.Process(on.NewScratch(), inv, client, on.Legs()[0])
	if a.To != b.To || a.Drop != b.Drop || !bytes.Equal(a.Out, b.Out) {
		t.Errorf("with capture: to %v drop %v\n%s\nwithout: to %v drop %v\n%s", b.To, b.Drop, b.Out, a.To, a.Drop, a.Out)
	}
}

// discardSink is a UDP socket on 127.0.0.1 that nobody reads: sends to it
// cost what sends to a remote collector cost, and the kernel drops what
// overflows its buffer.
func discardSink(tb testing.TB) netip.AddrPort {
	tb.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// startSender runs a hep.Sender of cfg (capture id 1, password pw) until
// the test ends.
func startSender(tb testing.TB, cfg hep.Config) *hep.Sender {
	tb.Helper()
	cfg.CaptureID, cfg.Password = 1, "pw"
	s, err := hep.NewSender(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	return s
}
