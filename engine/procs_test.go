package engine

import (
	"context"
	"net/netip"
	"runtime"
	"testing"

	"github.com/siplb/siplb/balance"
)

// Each reservation adds its Ps and gives them back once, however often its
// release is called; an operator's GOMAXPROCS is left alone.
func TestReserveProcs(t *testing.T) {
	before := defaultProcs(t)
	r1 := reserveProcs(2)
	if got := runtime.GOMAXPROCS(0); got != before+2 {
		t.Fatalf("after reserving 2: GOMAXPROCS %d, want %d", got, before+2)
	}
	r2 := reserveProcs(1)
	if got := runtime.GOMAXPROCS(0); got != before+3 {
		t.Fatalf("after reserving 2 and 1: GOMAXPROCS %d, want %d", got, before+3)
	}
	r1()
	r1()
	if got := runtime.GOMAXPROCS(0); got != before+1 {
		t.Fatalf("after releasing the 2 (twice): GOMAXPROCS %d, want %d", got, before+1)
	}
	r2()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("after releasing all: GOMAXPROCS %d, want %d", got, before)
	}
	if got := reserveProcs(0); runtime.GOMAXPROCS(0) != before {
		got()
		t.Fatalf("reserving 0 changed GOMAXPROCS")
	}

	t.Setenv("GOMAXPROCS", "3")
	r := reserveProcs(4)
	defer r()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("with GOMAXPROCS set by the operator: %d, want it left at %d", got, before)
	}
}

// A running server holds one P per event loop on top of the runtime's, and
// gives them back when it stops: the loops' waits in epoll_wait keep their Ps
// (procs.go), and without the extra ones a goroutine on Go's netpoller (a
// batched UDP socket answering for a TCP client) waits for the runtime's
// monitor, milliseconds.
func TestServerReservesProcs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		legs  []balance.Transport
		extra int // Ps added while 2 loops run
	}{
		{"udp and tcp", []balance.Transport{balance.UDP, balance.TCP}, 2},
		{"udp only", []balance.Transport{balance.UDP}, 0},
		{"tcp only", []balance.Transport{balance.TCP}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := defaultProcs(t)
			bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: netip.MustParseAddrPort("127.0.0.1:9"), Transport: tc.legs[0]}}}})
			if err != nil {
				t.Fatal(err)
			}
			var legs []LegConfig
			for _, tr := range tc.legs {
				legs = append(legs, LegConfig{Transport: tr, Addr: netip.MustParseAddrPort("127.0.0.1:0")})
			}
			ResolvePorts(legs)
			f, err := NewForwarder(Config{Legs: legs}, bal)
			if err != nil {
				t.Fatal(err)
			}
			srv := NewServerWith(f, Options{Loops: 2})
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- srv.Run(ctx) }()
			select {
			case <-srv.Ready():
			case err := <-errc:
				cancel()
				t.Fatalf("server: %v", err)
			}
			running := runtime.GOMAXPROCS(0)
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("server: %v", err)
			}
			if running != before+tc.extra {
				t.Errorf("GOMAXPROCS %d while 2 loops run, want %d", running, before+tc.extra)
			}
			if got := runtime.GOMAXPROCS(0); got != before {
				t.Errorf("GOMAXPROCS %d after the server stopped, want %d", got, before)
			}
		})
	}
}

// defaultProcs unsets GOMAXPROCS for the test and puts the runtime on its
// default (what reserveProcs restores), giving back the caller's setting
// at the end; it returns the default.
func defaultProcs(t *testing.T) int {
	orig := runtime.GOMAXPROCS(0)
	t.Setenv("GOMAXPROCS", "")
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	return runtime.GOMAXPROCS(0)
}
