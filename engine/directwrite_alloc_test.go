//go:build !race

package engine

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/siplb/siplb/balance"
)

// directStream runs a server with a TCP leg and one loop, and a client
// that reads and drops everything until the test ends; it returns the
// client's stream.
func directStream(tb testing.TB) (*Server, *streamConn) {
	tb.Helper()
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: netip.MustParseAddrPort("127.0.0.1:9"), Transport: balance.TCP}}}})
	if err != nil {
		tb.Fatal(err)
	}
	legs := []LegConfig{{Transport: balance.TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := ResolvePorts(legs); err != nil {
		tb.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		tb.Fatal(err)
	}
	srv := NewServerWith(f, Options{Loops: 1})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		<-errc
	})
	select {
	case <-srv.Ready():
	case err := <-errc:
		tb.Fatal(err)
	}
	c, err := net.Dial("tcp4", legs[0].Addr.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	go drainConn(c)
	return srv, streamOf(tb, srv, c)
}

// A direct write, and a batch's gathering and writing of 32 messages to
// one stream, allocate nothing.
func TestDirectWriteAllocs(t *testing.T) {
	srv, sc := directStream(t)
	msg := numbered("a", 1, 400)
	var cnt Counters
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{name: "write from outside the loops", f: func() { srv.write(nil, &cnt, sc, msg) }},
		{name: "a batch of 32", f: func() {
			for range 32 {
				srv.gatherBatched(3, sc, msg)
			}
			srv.flushStreams(3, &cnt)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f()
			before := cnt.DirectWrites.Load()
			if n := testing.AllocsPerRun(200, tc.f); n != 0 {
				t.Errorf("%.1f allocations per run, want 0", n)
			}
			if got := cnt.DirectWrites.Load() - before; got < 200 {
				t.Errorf("%d of 201 runs written directly (fallbacks %d)", got, cnt.DirectFallbacks.Load())
			}
		})
	}
}

// BenchmarkDirectWrite is a 500-byte message written to a TCP stream by a
// goroutine outside its loop, straight to the socket (compare
// BenchmarkMailbox, the hand-off it replaces): one at a time, and gathered
// by a recvmmsg batch of 32 into one write.
func BenchmarkDirectWrite(b *testing.B) {
	srv, sc := directStream(b)
	msg := numbered("a", 1, 500-len(numbered("a", 1, 0)))
	var cnt Counters
	b.Run("one", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			srv.write(nil, &cnt, sc, msg)
		}
	})
	b.Run("batch32", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for i := 0; b.Loop(); i++ {
			srv.gatherBatched(3, sc, msg)
			if i%32 == 31 {
				srv.flushStreams(3, &cnt)
			}
		}
		srv.flushStreams(3, &cnt)
	})
}
