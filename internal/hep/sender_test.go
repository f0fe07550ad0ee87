package hep

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// udpSink is a collector on 127.0.0.1.
type udpSink struct {
	conn *net.UDPConn
	addr netip.AddrPort
}

func listenUDP(t testing.TB) *udpSink {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpSink{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// read returns the next datagram, failing the test after 2 s.
func (s *udpSink) read(t *testing.T) []byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	s.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatalf("collector read: %v", err)
	}
	return buf[:n]
}

func newTestSender(t testing.TB, cfg Config) *Sender {
	t.Helper()
	s, err := NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

// runSender runs s until the test ends.
func runSender(t testing.TB, s *Sender) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func testPackets(size int) (in, out Packet) {
	msg := bytes.Repeat([]byte("y"), size)
	in = Packet{Time: time.Now(), Src: netip.MustParseAddrPort("127.0.0.2:40000"), Dst: netip.MustParseAddrPort("127.0.0.1:5060"),
		IPProto: ProtoUDP, CorrelationID: []byte("call-1"), Payload: msg}
	out = Packet{Time: time.Now(), Src: netip.MustParseAddrPort("127.0.0.1:5060"), Dst: netip.MustParseAddrPort("127.0.0.3:5080"),
		IPProto: ProtoTCP, CorrelationID: []byte("call-1"), Payload: append([]byte("Via: x\r\n"), msg...)}
	return in, out
}

func TestSenderDelivers(t *testing.T) {
	tests := []struct {
		name string
		size int // payload bytes: small and large slots
	}{
		{"small", 500},
		{"large", 20000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := listenUDP(t)
			s := newTestSender(t, Config{Collector: sink.addr, CaptureID: 42, Password: "pw"})
			runSender(t, s)
			in, out := testPackets(tc.size)
			s.Capture(&in, &out)
			s.Capture(&in, nil)
			for i, want := range []*Packet{&in, &out, &in} {
				f, err := decode(sink.read(t))
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if got := f.chunks[15]; !bytes.Equal(got, want.Payload) {
					t.Errorf("datagram %d: payload of %d bytes, want %d", i, len(got), len(want.Payload))
				}
				if got := f.u16(8); got != int(want.Dst.Port()) {
					t.Errorf("datagram %d: destination port %d, want %d", i, got, want.Dst.Port())
				}
				if f.u32(12) != 42 || string(f.chunks[14]) != "pw" {
					t.Errorf("datagram %d: capture id %d, auth key %q; want 42, pw", i, f.u32(12), f.chunks[14])
				}
			}
			waitStats(t, s, Stats{Sent: 3})
		})
	}
}

// waitStats waits up to 2 s for s's frame counts to be want's (SendCPU
// is not compared).
func waitStats(t *testing.T, s *Sender, want Stats) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for frameCounts(s.Stats()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("Stats = %+v, want %+v", s.Stats(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func frameCounts(st Stats) Stats {
	st.SendCPU, st.GSO = 0, false
	return st
}

// With Run not keeping up (not running), Capture fills the queue and then
// drops and counts, without blocking; once Run runs, what was queued goes.
func TestSenderDropsWhenFull(t *testing.T) {
	sink := listenUDP(t)
	s := newTestSender(t, Config{Collector: sink.addr, QueueSize: 8})
	in, out := testPackets(100)
	rec := recordHeader + align8(s.enc.Len(&in)+s.enc.Len(&out))
	fit := uint64(len(s.queue.buf)) / rec // records of one size never need a pad
	calls := fit + 50
	for range calls {
		s.Capture(&in, &out)
	}
	if got, want := s.Stats().Dropped, 2*(calls-fit); got != want {
		t.Errorf("Dropped = %d, want %d (%d records of %d bytes fit in %d)", got, want, fit, rec, len(s.queue.buf))
	}
	big, _ := testPackets(10000)
	s.Capture(&big, nil) // no room either
	if got, want := s.Stats().Dropped, 2*(calls-fit)+1; got != want {
		t.Errorf("Dropped = %d, want %d", got, want)
	}
	runSender(t, s)
	for range 3 {
		if _, err := decode(sink.read(t)); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, s, Stats{Sent: 2 * fit, Dropped: 2*(calls-fit) + 1})
	// Emptied, the queue takes the large message.
	s.Capture(&big, nil)
	waitStats(t, s, Stats{Sent: 2*fit + 1, Dropped: 2*(calls-fit) + 1})
}

func TestSenderTooLarge(t *testing.T) {
	sink := listenUDP(t)
	s := newTestSender(t, Config{Collector: sink.addr})
	runSender(t, s)
	huge, _ := testPackets(MaxFrame)
	_, out := testPackets(100)
	s.Capture(&huge, &out)
	if f, err := decode(sink.read(t)); err != nil || !bytes.Equal(f.chunks[15], out.Payload) {
		t.Fatalf("the message that fits was not sent: %v", err)
	}
	waitStats(t, s, Stats{Sent: 1, TooLarge: 1})
}

// A collector that is down costs send errors, counted, and nothing else.
func TestSenderCollectorDown(t *testing.T) {
	sink := listenUDP(t)
	addr := sink.addr
	sink.conn.Close() // the port now answers ICMP port unreachable
	s := newTestSender(t, Config{Collector: addr})
	runSender(t, s)
	in, _ := testPackets(100)
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().SendErrors == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no send error counted: %+v", s.Stats())
		}
		s.Capture(&in, nil)
		time.Sleep(time.Millisecond)
	}
}

func TestNewSenderErrors(t *testing.T) {
	ok := netip.MustParseAddrPort("127.0.0.1:9060")
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"no collector", Config{}, ErrNoCollector},
		{"unspecified collector", Config{Collector: netip.MustParseAddrPort("0.0.0.0:9060")}, ErrNoCollector},
		{"port 0", Config{Collector: netip.MustParseAddrPort("127.0.0.1:0")}, ErrNoCollector},
		{"long password", Config{Collector: ok, Password: string(make([]byte, 256))}, ErrAuthKey},
		{"negative queue", Config{Collector: ok, QueueSize: -1}, ErrQueueSize},
		{"huge queue", Config{Collector: ok, QueueSize: MaxQueueSize + 1}, ErrQueueSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSender(tc.cfg); !errors.Is(err, tc.want) {
				t.Errorf("NewSender(%+v) = %v, want %v", tc.cfg, err, tc.want)
			}
		})
	}
}

func BenchmarkCapture(b *testing.B) {
	sink := listenUDP(b)
	go func() { // drain the sink
		buf := make([]byte, 1<<16)
		for {
			if _, err := sink.conn.Read(buf); err != nil {
				return
			}
		}
	}()
	s := newTestSender(b, Config{Collector: sink.addr})
	runSender(b, s)
	in, out := testPackets(600)
	b.ReportAllocs()
	for b.Loop() {
		s.Capture(&in, &out)
	}
	b.ReportMetric(float64(s.Stats().Dropped)/float64(b.N), "drops/op")
}

// An idle Run waits for the next Capture, not for a timer: it does not
// wake while nothing is queued, and the first Capture after the quiet
// wakes it at once, over either transport (the idle wait lasts pollIdle,
// a second, which the frame must not wait for).
func TestRunIdleWaitsForCapture(t *testing.T) {
	tests := []struct {
		transport string
		rounds    int // quiet spells (over TCP each takes idleRounds polls of 100 ms to reach)
	}{
		{"udp", 20},
		{"tcp", 2},
	}
	for _, tc := range tests {
		t.Run(tc.transport, func(t *testing.T) {
			var next func() *frame
			var s *Sender
			if tc.transport == "udp" {
				sink := listenUDP(t)
				s = newTestSender(t, Config{Collector: sink.addr})
				next = func() *frame {
					f, err := decode(sink.read(t))
					if err != nil {
						t.Fatalf("decode: %v", err)
					}
					return f
				}
			} else {
				ln := listenTCP(t)
				s = newTestSender(t, Config{Collector: ln.Addr().(*net.TCPAddr).AddrPort(), Transport: "tcp"})
				var r *bufio.Reader
				next = func() *frame {
					if r == nil {
						r = bufio.NewReader(accept(t, ln))
					}
					return readFrame(t, r)
				}
			}
			runSender(t, s)
			in, _ := testPackets(300)
			for k := range tc.rounds {
				deadline := time.Now().Add(3 * time.Second)
				for !s.idle.Load() {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: Run did not go idle within 3 s of its last frame", k)
					}
					time.Sleep(time.Millisecond)
				}
				if k == 0 {
					p0 := s.polls.Load()
					time.Sleep(150 * time.Millisecond)
					if n := s.polls.Load() - p0; n > 1 {
						t.Fatalf("idle Run woke %d times in 150 ms with nothing queued, want at most 1", n)
					}
				}
				at := time.Now()
				s.Capture(&in, nil)
				if f := next(); !bytes.Equal(f.chunks[15], in.Payload) {
					t.Fatalf("round %d: payload of %d bytes, want %d", k, len(f.chunks[15]), len(in.Payload))
				}
				if d := time.Since(at); d > 300*time.Millisecond {
					t.Fatalf("round %d: the frame after a quiet spell took %v, want it at once (well within pollIdle, %v)", k, d, pollIdle)
				}
			}
			waitStats(t, s, Stats{Sent: uint64(tc.rounds)})
		})
	}
}

// Over UDP Run sleeps as long as udpBurst takes to queue at the rate of
// its last drain, within pollUDPMin and pollUDPMax.
func TestUDPWait(t *testing.T) {
	tests := []struct {
		since   time.Duration
		drained int
		want    time.Duration
	}{
		{2 * time.Millisecond, 160 << 10, pollUDPMin}, // 80k frames a second: the least
		{10 * time.Millisecond, 128 << 10, 10 * time.Millisecond},
		{20 * time.Millisecond, 64 << 10, pollUDPMax}, // slower: the most
		{20 * time.Millisecond, 0, pollUDPMax},        // nothing queued
		{time.Second, 1 << 20, pollUDPMax},            // after an idle wait
		{5 * time.Millisecond, 512 << 10, pollUDPMin},
		{20 * time.Millisecond, 160 << 10, 16 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := udpWait(tc.since, tc.drained); got != tc.want {
			t.Errorf("udpWait(%v, %d) = %v, want %v", tc.since, tc.drained, got, tc.want)
		}
	}
}
