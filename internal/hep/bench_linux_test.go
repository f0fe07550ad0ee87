package hep

import (
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
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
// sends (sendmmsg over UDP, in GSO entries unless the row is udp-plain;
// writev over TCP), the kernel's work included,
// which on loopback runs the collector's receive path up to its socket
// in the sender's context. Each round queues batch Capture calls (two
// frames each), then drains them on a locked thread; only the drain is
// timed (cpu-ns/frame). The collector reads on goroutines of its own.
func BenchmarkSend(b *testing.B) {
	for _, tc := range []struct {
		name  string
		tcp   bool
		batch int
		noGSO bool
	}{
		{"udp-batch16", false, 16, false},
		{"udp-batch128", false, 128, false},
		{"udp-plain-batch16", false, 16, true},
		{"udp-plain-batch128", false, 128, true},
		{"tcp-batch16", true, 16, false},
		{"tcp-batch64", true, 64, false},
		{"tcp-batch128", true, 128, false},
		{"tcp-batch256", true, 256, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{CaptureID: 1, Password: "pw", NoGSO: tc.noGSO}
			if tc.tcp {
				cfg.Collector, cfg.Transport = tcpDiscard(b), "tcp"
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

// tcpDiscard is a TCP collector on 127.0.0.1 that reads and discards.
func tcpDiscard(b *testing.B) netip.AddrPort {
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
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// BenchmarkSendFloor is the floor under BenchmarkSend's TCP rows: the same
// bytes (BenchmarkSend's frames, 2 per Capture call, batch calls a round)
// written to the same kind of collector with one write call a round, no
// queue and no encoding. What the kernel's loopback TCP path costs the
// writer per frame is the least any sender of these frames pays on this
// machine; a Sender row near it has nothing left to take out but the
// bytes themselves.
func BenchmarkSendFloor(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run("tcp-batch"+strconv.Itoa(batch), func(b *testing.B) {
			c, err := net.Dial("tcp4", tcpDiscard(b).String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			in, out := testPackets(600)
			var enc Encoder
			enc.CaptureID, enc.AuthKey = 1, []byte("pw")
			var round []byte
			for range batch {
				round = enc.Append(round, &in)
				round = enc.Append(round, &out)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var cpu int64
			frames := 0
			for b.Loop() {
				t := threadCPU()
				if _, err := c.Write(round); err != nil {
					b.Fatal(err)
				}
				cpu += threadCPU() - t
				frames += 2 * batch
			}
			b.ReportMetric(float64(cpu)/float64(frames), "cpu-ns/frame")
			b.ReportMetric(float64(len(round))/float64(2*batch), "bytes/frame")
		})
	}
}
