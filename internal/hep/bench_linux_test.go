package hep

import (
	"io"
	"net"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func threadCPU() int64 {
	var r unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &r)
	return r.Utime.Nano() + r.Stime.Nano()
}

// BenchmarkCaptureLoop is what capture costs the data path: a Capture
// call of a request in and its forward out (about 600 bytes each), with
// nothing sent; every quarter of the queue the benchmark takes the slots
// and gives them back as Run would (discard), so that nothing is dropped.
// An op is one Capture call, two frames; cpu-ns/op is the thread's CPU
// time, which a loaded machine inflates less than ns/op.
func BenchmarkCaptureLoop(b *testing.B) {
	s := newTestSender(b, Config{Collector: listenUDP(b).addr, CaptureID: 1, Password: "pw"})
	in, out := testPackets(600)
	in.Time, out.Time = zeroTime, zeroTime // stamped by Capture, as the engine's are
	for range DefaultQueueSize {
		s.Capture(&in, &out) // every slot's buffer made
	}
	s.discard()
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t := threadCPU()
	n := 0
	for b.Loop() {
		s.Capture(&in, &out)
		if n++; n%(DefaultQueueSize/4) == 0 {
			s.discard()
		}
	}
	b.ReportMetric(float64(threadCPU()-t)/float64(b.N), "cpu-ns/op")
	if st := s.Stats(); st.Dropped > 0 {
		b.Fatalf("%d frames dropped", st.Dropped)
	}
}

// BenchmarkSend is what Run costs per frame: the CPU of the thread that
// sends (sendmmsg over UDP, writev over TCP), the kernel's work included,
// which on loopback runs the collector's receive path up to its socket
// in the sender's context. Each round queues batch Capture calls (two
// frames each), then drains them on a locked thread; only the drain is
// timed (cpu-ns/frame). The collector reads on goroutines of its own.
func BenchmarkSend(b *testing.B) {
	for _, tc := range []struct {
		name  string
		tcp   bool
		batch int
	}{
		{"udp-batch16", false, 16},
		{"udp-batch128", false, 128},
		{"tcp-batch16", true, 16},
		{"tcp-batch64", true, 64},
		{"tcp-batch128", true, 128},
		{"tcp-batch256", true, 256},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{CaptureID: 1, Password: "pw"}
			if tc.tcp {
				ln, err := net.Listen("tcp4", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						go func() { io.Copy(io.Discard, c); c.Close() }()
					}
				}()
				cfg.Collector, cfg.Transport = ln.Addr().(*net.TCPAddr).AddrPort(), "tcp"
			} else {
				sink := listenUDP(b)
				sink.conn.SetReadBuffer(8 << 20)
				go func() {
					buf := make([]byte, 1<<16)
					for {
						if _, err := sink.conn.Read(buf); err != nil {
							return
						}
					}
				}()
				cfg.Collector = sink.addr
			}
			s := newTestSender(b, cfg)
			in, out := testPackets(600)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var cpu int64
			frames := 0
			for b.Loop() {
				for range tc.batch {
					s.Capture(&in, &out)
				}
				t := threadCPU()
				s.drain()
				cpu += threadCPU() - t
				frames += 2 * tc.batch
			}
			st := s.Stats()
			if st.Dropped+st.SendErrors > 0 {
				b.Logf("stats %+v", st)
			}
			b.ReportMetric(float64(cpu)/float64(frames), "cpu-ns/frame")
		})
	}
}
