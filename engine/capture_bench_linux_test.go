package engine

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/internal/hep"
	"github.com/siplb/siplb/parser"
)

// BenchmarkProcessCapture is BenchmarkProcess's request and response with
// capture off and on: a hep.Sender over UDP to a local socket nobody reads
// (udp), or over TCP to a local collector that reads and discards (tcp,
// whose reading is this process's CPU too). Besides
// ns/op, which a loaded machine inflates, it reports CPU time: thread-ns/op
// is the benchmark's own thread (the data path's cost: Process, and with
// capture on the encoding and queueing), process-ns/op the whole process
// (with capture on, also the sender's goroutine and its sends in the
// kernel). dropped/frame is the share of frames the sender dropped because
// the loop outran it: a dropped frame costs the data path less.
func BenchmarkProcessCapture(b *testing.B) {
	for _, mode := range []string{"off", "udp", "tcp"} {
		f := newTestForwarder(b)
		var snd *hep.Sender
		switch mode {
		case "udp":
			snd = startSender(b, hep.Config{Collector: discardSink(b)})
		case "tcp":
			snd = startSender(b, hep.Config{Collector: tcpSink(b), Transport: "tcp"})
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
			cpu := startCPU(b)
			for b.Loop() {
				if r := f.Process(s, inv, client, leg); r.Out == nil {
					b.Fatal(r.Drop)
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
			cpu := startCPU(b)
			for b.Loop() {
				if r := f.Process(s, resp, backends[0], leg); r.Out == nil {
					b.Fatal(r.Drop)
				}
			}
			cpu.report(b, snd)
		})
	}
}

// cpuClock reads the CPU time of the benchmark's thread (locked to it) and
// of the process.
type cpuClock struct {
	thread, proc int64
}

func cpuTimes() (thread, proc int64) {
	var t, p unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &t)
	unix.Getrusage(unix.RUSAGE_SELF, &p)
	ns := func(r *unix.Rusage) int64 { return r.Utime.Nano() + r.Stime.Nano() }
	return ns(&t), ns(&p)
}

func startCPU(b *testing.B) *cpuClock {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	c := &cpuClock{}
	c.thread, c.proc = cpuTimes()
	return c
}

func (c *cpuClock) report(b *testing.B, s *hep.Sender) {
	thread, proc := cpuTimes()
	b.ReportMetric(float64(thread-c.thread)/float64(b.N), "thread-ns/op")
	b.ReportMetric(float64(proc-c.proc)/float64(b.N), "process-ns/op")
	if s == nil {
		return
	}
	st := s.Stats()
	if total := st.Sent + st.Dropped; total > 0 {
		b.ReportMetric(float64(st.Dropped)/float64(total), "dropped/frame")
	}
}

// tcpSink is a TCP collector on 127.0.0.1 that reads and discards.
func tcpSink(b *testing.B) netip.AddrPort {
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
