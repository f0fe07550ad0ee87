package engine

import (
	"os"
	"runtime"
	"sync"

	"github.com/siplb/siplb/balance"
)

// gnet's event loops wait in epoll_wait, a system call made with the
// thread's P (the runtime's right to run Go code) kept: the P stays the
// loop's until the loop's wait ends, or until the runtime's monitor
// (sysmon) takes it back, which it does only after the wait has lasted one
// of its ticks (20 µs when busy, up to 10 ms when it found nothing to take
// for a while). With one loop per P (the default) every P may sit in an idle
// loop's wait at once, and then a goroutine that Go's netpoller wakes — a
// batched UDP socket (udpbatch_linux.go), a TLS or WebSocket stream, the
// TCP acceptor, DNS — waits for sysmon before it runs. That was the
// cross-transport latency defect: a TCP client to a UDP backend added 4-5 ms
// on average and 15-20 ms at p99, since the backend's answer arrives on a
// batched UDP socket while both loops wait for it (issue 15).
//
// reserveProcs gives the runtime one P per loop on top of what it had, so
// the loops' waits never hold the Ps the rest needs. An idle P costs nothing
// (a parked P runs no thread); under load the loops are in the kernel most
// of the time, so the extra Ps add no contention that the loops did not
// already cause. An operator's GOMAXPROCS (the environment variable) is left
// as it is. While a reservation holds, the runtime no longer follows a change
// of the CPU limit (runtime.GOMAXPROCS turns that off); the default comes
// back when the last server stops.

// Only a server that mixes stream legs (TCP, TLS, WebSocket) with batched
// UDP legs reserves (mixesTransports): one with UDP legs alone measured
// worse with the extra Ps on the 2-core VM (make bench, UDP OPTIONS, two
// alternating pairs: open-loop p99 234 and 28 ms against 19 and 13 ms with
// GOMAXPROCS=2, saturation 44.8k and 40.0k/s against 51.8k and 46.0k/s),
// and there the loops wait on no other transport's answers.

// mixesTransports reports whether s serves a stream leg beside batched UDP
// sockets: then a message crosses from a loop to a netpoller goroutine.
func (s *Server) mixesTransports() bool {
	if !s.batched {
		return false
	}
	udp, stream := false, false
	for _, l := range s.f.Legs() {
		if l.Transport == balance.UDP {
			udp = true
		} else {
			stream = true
		}
	}
	return udp && stream
}

// procs is the process-wide reservation: GOMAXPROCS is one per process.
var procs struct {
	mu       sync.Mutex
	reserved int // Ps added for the loops of the servers running now
	base     int // GOMAXPROCS before the first reservation
}

// reserveProcs raises GOMAXPROCS by n, the event loops a server is about to
// run, and returns the function that gives them back (idempotent). When the
// last reservation ends, the runtime's default (which follows the CPU
// limit) is restored.
func reserveProcs(n int) (release func()) {
	if n <= 0 || os.Getenv("GOMAXPROCS") != "" {
		return func() {}
	}
	procs.mu.Lock()
	if procs.reserved == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.reserved += n
	runtime.GOMAXPROCS(procs.base + procs.reserved)
	procs.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			procs.mu.Lock()
			defer procs.mu.Unlock()
			procs.reserved -= n
			if procs.reserved == 0 {
				runtime.SetDefaultGOMAXPROCS()
				return
			}
			runtime.GOMAXPROCS(procs.base + procs.reserved)
		})
	}
}
