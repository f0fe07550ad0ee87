package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/guard"
	"github.com/siplb/siplb/parser"
)

// BenchmarkProcess is the whole per-message work of the data path (parse,
// decide, edit) for the messages of a call, over IPv4 and IPv6: the
// initial INVITE from a client, the member's response to it, and a BYE
// from the member inside the dialog (Route processing, the client's flow
// in siplb's Record-Route). The coarse clock runs as under a Server.
func BenchmarkProcess(b *testing.B) {
	b.Run("request", func(b *testing.B) { benchRequest(b, newTestForwarder(b), fixture4) })
	b.Run("request-guarded", func(b *testing.B) {
		g, err := guard.New(guard.Config{Flood: guard.FloodConfig{Window: 100 * time.Millisecond, Density: guard.MaxFloodDensity}})
		if err != nil {
			b.Fatal(err)
		}
		f := newTestForwarder(b)
		gf, err := NewForwarder(Config{Legs: []LegConfig{{Transport: balance.UDP, Addr: legAddr}}, Guard: g}, f.bal)
		if err != nil {
			b.Fatal(err)
		}
		benchRequest(b, gf, fixture4)
	})
	b.Run("response", func(b *testing.B) { benchResponse(b, newTestForwarder(b), fixture4) })
	b.Run("bye-from-backend", func(b *testing.B) { benchInDialog(b, newTestForwarder(b), fixture4) })
	b.Run("request-ipv6", func(b *testing.B) { benchRequest(b, newTestForwarder6(b), fixture6) })
	b.Run("response-ipv6", func(b *testing.B) { benchResponse(b, newTestForwarder6(b), fixture6) })
	b.Run("bye-from-backend-ipv6", func(b *testing.B) { benchInDialog(b, newTestForwarder6(b), fixture6) })
}

// startClock sets the coarse clock as a running Server does (runClock), so
// the benchmark does not read the wall clock per message.
func startClock(f *Forwarder) { f.clock.Store(time.Now().UnixNano()) }

func benchLoop(b *testing.B, f *Forwarder, in []byte, fx fixture, fromBackend bool) {
	startClock(f)
	s, leg := f.NewScratch(), f.Legs()[0]
	src := fx.client
	if fromBackend {
		src = fx.backends[0]
	}
	if r := f.Process(s, in, src, leg); r.Out == nil || r.Status != 0 {
		b.Fatalf("not forwarded: drop %v status %d", r.Drop, r.Status)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	n := 0
	for b.Loop() {
		if r := f.Process(s, in, src, leg); r.Out == nil {
			b.Fatal(r.Drop)
		}
		// The clock moves as under a Server (runClock): with it stopped,
		// the guarded run's source stays in one flood window and is
		// blocked once it has sent MaxFloodDensity requests in it.
		if n++; n&1023 == 0 {
			startClock(f)
		}
	}
}

func benchRequest(b *testing.B, f *Forwarder, fx fixture) {
	benchLoop(b, f, fx.invite("bench@x", "z9hG4bKbench"), fx, false)
}

// forwarded is the INVITE as f forwards it to a member, parsed.
func forwarded(b *testing.B, f *Forwarder, fx fixture) *parser.Message {
	var m parser.Message
	if err := parser.Parse(&m, bytes.Clone(f.Process(f.NewScratch(), fx.invite("bench@x", "z9hG4bKbench"), fx.client, f.Legs()[0]).Out)); err != nil {
		b.Fatal(err)
	}
	return &m
}

func benchResponse(b *testing.B, f *Forwarder, fx fixture) {
	top, _ := forwarded(b, f, fx).Via(0)
	resp := sip("SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP "+fx.leg+";branch="+string(top.Branch)+";rport=5060",
		"Via: SIP/2.0/UDP "+fx.client.String()+";branch=z9hG4bKbench;rport="+itoa(int(fx.client.Port()))+";received="+fx.client.Addr().String(),
		"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Call-ID: bench@x", "CSeq: 1 INVITE", "Content-Length: 0")
	benchLoop(b, f, resp, fx, true)
}

func benchInDialog(b *testing.B, f *Forwarder, fx fixture) {
	rr, _ := forwarded(b, f, fx).RecordRoute(0)
	bye := sip("BYE sip:alice@"+fx.client.String()+" SIP/2.0",
		"Via: SIP/2.0/UDP "+fx.backends[0].String()+";branch=z9hG4bKbb1",
		"Route: <"+string(rr.Raw)+">",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b1", "To: <sip:alice@example.com>;tag=a1",
		"Call-ID: bench@x", "CSeq: 2 BYE", "Content-Length: 0")
	benchLoop(b, f, bye, fx, true)
}
