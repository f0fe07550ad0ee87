package engine

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/internal/hep"
	"github.com/siplb/siplb/parser"
)

// BenchmarkProcessCapture is BenchmarkProcess's request and response with
// capture off and on: a hep.Sender over UDP or TCP to a collector on
// 127.0.0.1 that reads and discards. It measures CPU time, not ns/op
// (which the pauses below, and a loaded machine, make meaningless):
//
//   - cpu-ns/op: the whole process, the collector's thread taken out
//     (what siplb pays: Process, the encoding and queueing, the sender's
//     goroutine and its system calls, and on loopback the collector's
//     receive path up to its socket, which the kernel runs in the
//     sender's context);
//   - sink-ns/op: the collector's thread (what a collector on the same
//     machine costs besides);
//   - dropped/frame: frames the Sender dropped for a full queue, which
//     cost less than frames sent.
//
// The loop pauses capturePause after every captureBurst messages, in
// every mode, so that the Sender keeps up (a quarter of its queue, then
// time to send them): a loop that outran the Sender would measure drops,
// which cost less than sends. Every pause costs the process the Go
// scheduler's waking and spinning, in every mode alike; what is left of
// it is noise in the difference. The shares of the data path and of the
// sender are hep's BenchmarkCaptureLoop and BenchmarkSend.
func BenchmarkProcessCapture(b *testing.B) {
	for _, mode := range []string{"off", "udp", "tcp"} {
		f := newTestForwarder(b)
		var snd *hep.Sender
		var sink *benchSink
		switch mode {
		case "udp":
			sink = udpBenchSink(b)
			snd = startSender(b, hep.Config{Collector: sink.addr})
		case "tcp":
			sink = tcpBenchSink(b)
			snd = startSender(b, hep.Config{Collector: sink.addr, Transport: "tcp"})
		}
		if snd != nil {
			f.SetCapture(snd)
		}
		s := f.NewScratch()
		leg := f.Legs()[0]
		inv := invite("bench@x", "z9hG4bKbench")
		b.Run("request-"+mode, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(inv)))
			cpu := startCPU(sink)
			n := 0
			for b.Loop() {
				if r := f.Process(s, inv, client, leg); r.Out == nil {
					b.Fatal(r.Drop)
				}
				if n++; n%captureBurst == 0 {
					time.Sleep(capturePause)
				}
			}
			cpu.report(b, snd)
		})
		var fm parser.Message
		if err := parser.Parse(&fm, bytes.Clone(f.Process(s, inv, client, leg).Out)); err != nil {
			b.Fatal(err)
		}
		top, _ := fm.Via(0)
		resp := sip("SIP/2.0 200 OK",
			"Via: SIP/2.0/UDP 127.0.0.1:5060;branch="+string(top.Branch)+";rport=5060",
			"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKbench;rport=40000;received=127.0.0.1",
			"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
			"Call-ID: bench@x", "CSeq: 1 INVITE", "Content-Length: 0")
		b.Run("response-"+mode, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(resp)))
			cpu := startCPU(sink)
			n := 0
			for b.Loop() {
				if r := f.Process(s, resp, backends[0], leg); r.Out == nil {
					b.Fatal(r.Drop)
				}
				if n++; n%captureBurst == 0 {
					time.Sleep(capturePause)
				}
			}
			cpu.report(b, snd)
		})
	}
}

// The pacing of BenchmarkProcessCapture.
const (
	captureBurst = 256
	capturePause = 3 * time.Millisecond
)

// cpuClock reads the CPU time of the process and of the collector's
// thread.
type cpuClock struct {
	proc, sink int64
	s          *benchSink
}

func processCPU() int64 {
	var p unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &p)
	return p.Utime.Nano() + p.Stime.Nano()
}

func threadCPU() int64 {
	var t unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &t)
	return t.Utime.Nano() + t.Stime.Nano()
}

func startCPU(s *benchSink) *cpuClock {
	return &cpuClock{s: s, proc: processCPU(), sink: s.cpu()}
}

func (c *cpuClock) report(b *testing.B, s *hep.Sender) {
	if s != nil { // what was queued has gone, and the collector read it
		c.s.settle()
	}
	proc, sink := processCPU(), c.s.cpu()-c.sink
	n := float64(b.N)
	b.ReportMetric(float64(proc-c.proc-sink)/n, "cpu-ns/op")
	if s == nil {
		return
	}
	b.ReportMetric(float64(sink)/n, "sink-ns/op")
	st := s.Stats()
	if total := st.Sent + st.Dropped; total > 0 {
		b.ReportMetric(float64(st.Dropped)/float64(total), "dropped/frame")
	}
}

// benchSink is a collector on 127.0.0.1 that reads and discards, with
// blocking reads on a thread of its own (no netpoller between the kernel
// and it), whose CPU time it keeps so that the benchmark can take it out
// of the process's. The kernel charges the sender, not the sink, for the
// receive path up to the socket and for waking the sink, as it does siplb
// with a collector on its machine.
type benchSink struct {
	addr  netip.AddrPort
	fd    int
	reads atomic.Uint64
	cpuNs atomic.Int64
	stop  atomic.Bool
	done  chan struct{}
}

// cpu returns the collector thread's CPU time so far; 0 for no collector.
func (s *benchSink) cpu() int64 {
	if s == nil {
		return 0
	}
	return s.cpuNs.Load()
}

// settle waits, up to a second, until the collector has read nothing for
// 10 ms (the Sender polls every millisecond).
func (s *benchSink) settle() {
	deadline := time.Now().Add(time.Second)
	for last := s.reads.Load(); time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		n := s.reads.Load()
		if n == last {
			return
		}
		last = n
	}
}

// read reads fd until a read fails, comes back empty, or stop is set,
// noting its thread's CPU after each read.
func (s *benchSink) read(fd int) {
	buf := make([]byte, 1<<16)
	for {
		n, err := unix.Read(fd, buf)
		s.cpuNs.Store(threadCPU())
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 || s.stop.Load() {
			return
		}
		s.reads.Add(1)
	}
}

// listenSink opens a blocking socket of typ on 127.0.0.1.
func listenSink(b *testing.B, typ int) *benchSink {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		b.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		b.Fatal(err)
	}
	a := sa.(*unix.SockaddrInet4)
	return &benchSink{fd: fd, addr: netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), done: make(chan struct{})}
}

func udpBenchSink(b *testing.B) *benchSink {
	s := listenSink(b, unix.SOCK_DGRAM)
	go func() {
		defer close(s.done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s.cpuNs.Store(threadCPU())
		s.read(s.fd)
	}()
	b.Cleanup(func() {
		s.stop.Store(true)
		if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.addr)); err == nil {
			c.Write(nil) // an empty datagram ends the read
			c.Close()
		}
		<-s.done
		unix.Close(s.fd)
	})
	return s
}

// tcpBenchSink takes one connection (the Sender's) and reads it until the
// Sender closes it.
func tcpBenchSink(b *testing.B) *benchSink {
	s := listenSink(b, unix.SOCK_STREAM)
	if err := unix.Listen(s.fd, 1); err != nil {
		unix.Close(s.fd)
		b.Fatal(err)
	}
	go func() {
		defer close(s.done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s.cpuNs.Store(threadCPU())
		c, _, err := unix.Accept4(s.fd, unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		defer unix.Close(c)
		s.read(c)
	}()
	b.Cleanup(func() {
		unix.Shutdown(s.fd, unix.SHUT_RDWR) // ends an Accept still waiting
		<-s.done
		unix.Close(s.fd)
	})
	return s
}
