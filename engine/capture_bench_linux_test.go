package engine

import (
	"bytes"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/internal/hep"
	"github.com/siplb/siplb/parser"
)

// BenchmarkProcessCapture is BenchmarkProcess's request and response with
// capture off and on: a hep.Sender over UDP or TCP to a collector on
// 127.0.0.1, in a process of its own (hepSinkChild), that reads and
// discards. It measures CPU time, not ns/op (which the pauses below, and a
// loaded machine, make meaningless):
//
//   - cpu-ns/op: the process's (what siplb pays: Process, the encoding
//     and queueing, the sender's goroutine and its system calls, and on
//     loopback the collector's receive path up to its socket and its
//     wake-ups, which the kernel runs in the sender's context);
//   - loop-ns/op: the benchmark's own thread's, locked to it: the data
//     path alone (Process and Capture, and what capture's writes do to
//     its caches), as an event loop would pay it;
//   - send-ns/op: the sender's thread's while it drains
//     (hep.Stats.SendCPU);
//   - sink-ns/op: the collector's (what a collector on the same machine
//     costs besides; in ticks of 10 ms, coarse);
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
		var sink *sinkProcess
		if mode != "off" {
			sink = startSinkProcess(b, mode)
			snd = startSender(b, hep.Config{Collector: netip.MustParseAddrPort(sink.addr), Transport: mode})
		}
		if snd != nil {
			f.SetCapture(snd)
		}
		s := f.NewScratch()
		leg := f.Legs()[0]
		inv := invite("bench@x", "z9hG4bKbench")
		for i := range hep.DefaultQueueSize + captureBurst { // every slot's buffer made
			f.Process(s, inv, client, leg)
			if i%captureBurst == 0 {
				time.Sleep(capturePause)
			}
		}
		b.Run("request-"+mode, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(inv)))
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := startCPU(sink, snd)
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
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := startCPU(sink, snd)
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

// cpuClock reads the CPU time of the process, of the calling thread
// (locked to it), of the sender's drains and of the collector's process.
type cpuClock struct {
	proc, thread, sink int64
	send               time.Duration
	s                  *sinkProcess
}

func processCPU() int64 { return rusage(unix.RUSAGE_SELF) }

func rusage(who int) int64 {
	var p unix.Rusage
	unix.Getrusage(who, &p)
	return p.Utime.Nano() + p.Stime.Nano()
}

func startCPU(s *sinkProcess, snd *hep.Sender) *cpuClock {
	c := &cpuClock{s: s, proc: processCPU(), thread: rusage(unix.RUSAGE_THREAD), sink: s.cpuNs()}
	if snd != nil {
		c.send = snd.Stats().SendCPU
	}
	return c
}

func (c *cpuClock) report(b *testing.B, s *hep.Sender) {
	thread := rusage(unix.RUSAGE_THREAD) - c.thread // before the wait below
	if s != nil {
		time.Sleep(20 * time.Millisecond) // what is queued goes (Run polls every few ms)
	}
	proc, sink := processCPU()-c.proc, c.s.cpuNs()-c.sink
	n := float64(b.N)
	b.ReportMetric(float64(proc)/n, "cpu-ns/op")
	b.ReportMetric(float64(thread)/n, "loop-ns/op")
	if s == nil {
		return
	}
	b.ReportMetric(float64(s.Stats().SendCPU-c.send)/n, "send-ns/op")
	b.ReportMetric(float64(sink)/n, "sink-ns/op")
	st := s.Stats()
	if total := st.Sent + st.Dropped; total > 0 {
		b.ReportMetric(float64(st.Dropped)/float64(total), "dropped/frame")
	}
}
