package hep

import (
	"context"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func processCPU() time.Duration {
	var r unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// SendCPU counts the sender thread's CPU: more than nothing once frames
// went, and never more than the whole process used meanwhile.
func TestSenderSendCPU(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			addr := listenUDP(t).addr
			if transport == "tcp" {
				ln := listenTCP(t)
				go func() { // read and discard every connection's frames
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						go func() {
							buf := make([]byte, 1<<16)
							for {
								if _, err := c.Read(buf); err != nil {
									c.Close()
									return
								}
							}
						}()
					}
				}()
				addr = ln.Addr().(*net.TCPAddr).AddrPort()
			}
			cpu0 := processCPU()
			s := newTestSender(t, Config{Collector: addr, Transport: transport})
			runSender(t, s)
			if st := s.Stats(); st.SendCPU != 0 {
				t.Fatalf("SendCPU %v before anything was sent", st.SendCPU)
			}
			in, out := testPackets(600)
			const calls = 4000
			for i := range calls {
				s.Capture(&in, &out)
				if i%200 == 199 {
					time.Sleep(time.Millisecond) // let Run keep up: no drops
				}
			}
			st, used := accounted(t, s, 2*calls, 5*time.Second), processCPU()-cpu0
			if st.Sent == 0 {
				t.Fatalf("Stats = %+v: nothing sent", st)
			}
			if st.SendCPU <= 0 || st.SendCPU > used {
				t.Errorf("SendCPU %v for %d frames; want more than 0 and at most the process's %v", st.SendCPU, st.Sent, used)
			}
			t.Logf("%s: %d frames, SendCPU %v (%.0f ns a frame), process %v", transport, st.Sent, st.SendCPU, float64(st.SendCPU)/float64(st.Sent), used)
		})
	}
}

// A drain whose write waits for room counts none of the CPU another
// goroutine uses meanwhile. With one P, the goroutine that runs while the
// sender waits runs on the thread the sender left, unless the drain holds
// it. Where the sender resumes is the scheduler's choice, so the test runs
// three rounds: without the lock in timedDrain, a single round's SendCPU
// held the spinner's 600 ms (0.7 to 2 s) in four runs of six, and the three
// rounds failed six runs of six.
func TestSendCPUWaitCountsNoOtherGoroutine(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const spin = 600 * time.Millisecond
	for round := range 3 {
		st := waitedDrain(t, spin)
		if st.Sent == 0 {
			t.Fatalf("round %d: Stats = %+v: nothing sent", round, st)
		}
		if st.SendCPU >= spin/2 {
			t.Fatalf("round %d: SendCPU %v for %d frames: holds the %v another goroutine spun while the write waited", round, st.SendCPU, st.Sent, spin)
		}
		t.Logf("round %d: %d frames, SendCPU %v", round, st.Sent, st.SendCPU)
	}
}

// waitedDrain queues more frames than a TCP collector's socket takes, lets
// Run's write wait while a goroutine spins for spin, then lets the
// collector read, and returns the Stats once every frame is accounted for.
func waitedDrain(t *testing.T, spin time.Duration) Stats {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { // a small window: the sender's writes fill it at once
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
		})
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	read := make(chan struct{})
	go func() { // accept at once, read only once told
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		<-read
		io.Copy(io.Discard, c)
	}()
	s := newTestSender(t, Config{Collector: ln.Addr().(*net.TCPAddr).AddrPort(), Transport: "tcp", QueueSize: 4096})
	runSender(t, s)
	in, out := testPackets(1000)
	const calls = 6000 // about 12 MB: far more than the socket buffers hold
	for range calls {
		s.Capture(&in, &out)
	}
	time.Sleep(100 * time.Millisecond) // Run's first poll: its write fills the socket and waits
	spun := make(chan struct{})
	go func() {
		for t0 := time.Now(); time.Since(t0) < spin; {
		}
		close(spun)
	}()
	<-spun
	close(read)
	return accounted(t, s, 2*calls, 10*time.Second)
}

// accounted waits until s has sent, dropped or failed frames frames, at
// most within, then for the last drain's clock read, and returns its Stats.
func accounted(t *testing.T, s *Sender, frames uint64, within time.Duration) Stats {
	t.Helper()
	deadline := time.Now().Add(within)
	for st := s.Stats(); st.Sent+st.Dropped+st.SendErrors < frames; st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("Stats = %+v: not every frame accounted for in %v", st, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the last drain's clock read
	return s.Stats()
}
