package hep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
)

// DefaultQueueSize is the number of messages a Sender queues when
// Config.QueueSize is 0 (4 MiB): about a tenth of a second of a busy instance's
// messages, so a collector that stalls costs drops, not memory.
const DefaultQueueSize = 1024

// MaxQueueSize bounds Config.QueueSize.
const MaxQueueSize = 1 << 16

// bytesPerMessage is the room Config.QueueSize counts for one Capture
// call: a message of up to about 2 KiB in and the one sent for it. The
// ring holds more of smaller ones and fewer of larger ones, and at least
// four of the largest.
const bytesPerMessage = 4 << 10

// MaxAuthKey bounds the auth key (password) a Sender writes into every
// frame.
const MaxAuthKey = 255

// maxBatch is the most records Run takes from the queue for one send (two
// frames each): one sendmmsg of up to 512 datagrams (the kernel takes
// 1024), or one writev over TCP, so that a busy poll costs a system call
// or two however many messages it carries.
const maxBatch = 256

// Errors of NewSender.
var (
	ErrNoCollector = errors.New("hep: collector address is not a specific IP and port")
	ErrAuthKey     = errors.New("hep: auth key longer than 255 bytes")
	ErrQueueSize   = errors.New("hep: queue size out of range")
	ErrTransport   = errors.New("hep: transport is neither udp nor tcp")
)

// Config configures a Sender. The zero value of each field but Collector
// means the documented default.
type Config struct {
	Collector netip.AddrPort // where frames go, over UDP (required)
	CaptureID uint32         // the capture agent id of every frame (default 0)
	Password  string         // the auth key chunk; empty: none
	QueueSize int            // messages queued for Run: the queue has QueueSize × 4 KiB, rounded up to a power of two (default DefaultQueueSize, at most MaxQueueSize)
	// Transport is "udp" (the default: one frame a datagram) or "tcp" (a
	// stream of frames, many a write; reconnected when it breaks).
	Transport string
	// NoGSO, over UDP, sends each frame in a datagram of its own as it is.
	// By default, where the kernel has UDP segmentation offload, frames of
	// one size class leave many to a system call entry, padded to their
	// class's size with a chunk collectors skip (send_linux.go).
	NoGSO bool
}

// Stats counts a Sender's frames. Dropped are frames not queued since the
// queue had no room (the collector, or Run, is slower than the traffic);
// TooLarge those whose frame would exceed MaxFrame; SendErrors those the
// socket refused (over UDP, a collector that is down answers ICMP port
// unreachable) or that went while a TCP connection was down or broke.
//
// SendCPU is the CPU time Run's thread spent sending: taking the records,
// the system calls, and on loopback the collector's receive path, which
// the kernel runs in the sender's context. It is read from the thread's
// CPU clock around each drain (Linux; 0 elsewhere). A drain runs locked to
// its thread, so the clock counts it alone: a write that waits for room
// sleeps the thread, and no other goroutine (an event loop) runs on it
// meanwhile and is counted as sending. The wake-ups of Run between drains
// are not in it. What Capture costs the event
// loops is not in it: the process's CPU less SendCPU is what the data path
// and the rest of siplb used.
//
// GSO is whether frames over UDP go out in GSO entries now: asked for (not
// Config.NoGSO), the kernel has it, and no entry was refused for it.
type Stats struct {
	Sent, Dropped, TooLarge, SendErrors uint64
	SendCPU                             time.Duration
	GSO                                 bool
}

// Sender mirrors messages to a collector off the data path. Capture is
// safe for concurrent use; Run sends what Capture queues.
type Sender struct {
	enc    Encoder
	tpl    *template     // enc's frames, written fast (template.go)
	conn   *net.UDPConn  // over UDP
	stream *streamWriter // over TCP (stream.go)
	queue  *ring         // the frames waiting for Run (ring.go)
	clock  *clock        // stamps the packets that come without a time

	sent, dropped, tooLarge, sendErrors atomic.Uint64
	sendCPU                             atomic.Int64 // ns (Stats.SendCPU)

	sleeping atomic.Bool   // Run waits for its next poll
	idle     atomic.Bool   // Run found the queue empty and waits for a Capture (or pollIdle)
	wake     chan struct{} // cuts Run's wait short (capacity 1)
	polls    atomic.Uint64 // Run's wake-ups, for the tests

	batch   [][]byte    // records taken by Run, to send
	drained int         // bytes of records taken by Run's last drain
	out     batchWriter // the platform's send (send_linux.go, send_other.go)
}

// NewSender returns a Sender to cfg.Collector that queues cfg.QueueSize
// messages, with its UDP socket open; over TCP, Run connects. Call Run to
// send.
func NewSender(cfg Config) (*Sender, error) {
	c := cfg.Collector
	if !c.IsValid() || c.Addr().IsUnspecified() || c.Port() == 0 {
		return nil, ErrNoCollector
	}
	if len(cfg.Password) > MaxAuthKey {
		return nil, ErrAuthKey
	}
	n := cfg.QueueSize
	if n == 0 {
		n = DefaultQueueSize
	}
	if n < 0 || n > MaxQueueSize {
		return nil, ErrQueueSize
	}
	if cfg.Transport != "" && cfg.Transport != "udp" && cfg.Transport != "tcp" {
		return nil, ErrTransport
	}
	s := &Sender{
		enc:   Encoder{CaptureID: cfg.CaptureID, AuthKey: []byte(cfg.Password)},
		queue: newRing(n * bytesPerMessage),
		clock: newClock(),
		batch: make([][]byte, 0, maxBatch),
		wake:  make(chan struct{}, 1),
	}
	s.tpl = newTemplate(s.enc)
	if cfg.Transport == "tcp" {
		s.stream = &streamWriter{addr: c}
		return s, nil
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c))
	if err != nil {
		return nil, fmt.Errorf("hep: collector %s: %w", c, err)
	}
	if err := s.out.init(conn, !cfg.NoGSO); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hep: collector %s: %w", c, err)
	}
	s.conn = conn
	return s, nil
}

// Capture queues the frames of in and, unless nil, out (the message sent
// for it), in one record so that both cost one queue operation. It never
// blocks: with no room in the queue both are dropped and counted. It
// copies what it needs from in and out and keeps neither. It allocates
// nothing.
//
// A packet whose Time is zero is stamped with the time of the call, read
// once for both (clock: the monotonic clock alone, cheaper than
// time.Now on a virtual machine).
func (s *Sender) Capture(in, out *Packet) {
	nIn, nOut, frames := 0, 0, uint64(0)
	if in != nil {
		if nIn = s.enc.Len(in); nIn > MaxFrame {
			s.tooLarge.Add(1)
			in, nIn = nil, 0
		} else {
			frames++
		}
	}
	if out != nil {
		if nOut = s.enc.Len(out); nOut > MaxFrame {
			s.tooLarge.Add(1)
			out, nOut = nil, 0
		} else {
			frames++
		}
	}
	if frames == 0 {
		return
	}
	pos, b, ok := s.queue.reserve(nIn + nOut)
	if !ok {
		s.dropped.Add(frames)
		return
	}
	var now int64
	if (in != nil && in.Time.IsZero()) || (out != nil && out.Time.IsZero()) {
		now = s.clock.now()
	}
	if in != nil {
		b = s.tpl.appendFrame(b, in, nIn, now)
	}
	if out != nil {
		b = s.tpl.appendFrame(b, out, nOut, now)
	}
	if len(b) != nIn+nOut {
		// Cannot happen (Len is what the template writes, a test holds
		// them together); were it to, the record must not claim bytes it
		// was not given: it is committed as filler and the frames counted
		// as too large.
		s.queue.skip(pos, nIn+nOut)
		s.tooLarge.Add(frames)
		return
	}
	if (s.queue.commit(pos, len(b)) && s.sleeping.Load()) || (s.idle.Load() && s.idle.CompareAndSwap(true, false)) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Run sends the queued frames until ctx is done, then closes the socket
// (the connection, over TCP).
// Call it once. It returns ctx's cause.
//
// Run polls the queue rather than waiting on it: a Capture that woke a
// parked goroutine for every message would pay for the wake-up on the data
// path. It drains the queue every busy poll (pollStream over TCP; over
// UDP, pollUDPMin to pollUDPMax: udpWait) while there is traffic; a
// Capture wakes it early only when Run sleeps and half the ring has been
// queued since the last wake-up point.
// After idleRounds empty polls Run waits for the next Capture instead,
// which wakes it (one wake-up when traffic starts again), or for pollIdle.
func (s *Sender) Run(ctx context.Context) error {
	defer s.close()
	t := time.NewTimer(pollIdle) // reset to each poll's wait before it is waited on
	defer t.Stop()
	done := ctx.Done()
	idle := 0
	last := time.Now()
	for {
		s.polls.Add(1)
		s.clock.sync()
		s.drained = 0
		if s.timedDrain() {
			idle = 0
		} else {
			idle++
		}
		wait := pollStream
		if s.stream == nil {
			now := time.Now()
			wait = udpWait(now.Sub(last), s.drained)
			last = now
		}
		if idle > idleRounds {
			// Idle: the next Capture wakes Run. Stored before the queue is
			// looked at, so a Capture either reserved before the look (Run
			// sees it and polls on) or sees the flag after its commit.
			s.idle.Store(true)
			if !s.queue.empty() {
				s.idle.Store(false)
				idle = 0
			} else {
				wait = pollIdle
			}
		}
		// A Capture at a wake-up point between drain and this store sees
		// Run awake and wakes nobody: Run then sleeps the whole poll, with
		// half the ring still free.
		s.sleeping.Store(true)
		t.Reset(wait)
		select {
		case <-done:
			return context.Cause(ctx)
		case <-t.C:
		case <-s.wake:
		}
		s.sleeping.Store(false)
		s.idle.Store(false) // the drain that follows finds what woke Run, if anything did
	}
}

// The polling of Run.
//
// Every wake-up of Run costs the process far more than its timer: the Go
// scheduler's work, a context switch or two of its threads and of the
// collector's, and on a shared core what the drain's sweep through the
// ring does to an event loop's caches. On the 2-core VM an idle Run that
// woke every 20 ms cost a siplb with capture on about 4 % more CPU per
// OPTIONS at 20,000/s than one whose Run never woke (bench-capture, each
// beside a siplb with capture off, 12 rounds). So the polls are as rare as
// the queue allows:
//
//   - Over TCP a busy poll is 100 ms, and a Capture whose record crosses a
//     half of the queue wakes a sleeping Run sooner: with the default queue
//     (4 MiB) and records of about 1.4 KiB, above about 15k records a second.
//     Frames reach the collector up to a poll late; each carries the time of
//     its message, stamped by Capture.
//   - Over UDP a burst is what the collector's socket buffer must take at
//     once, which Linux sizes at 208 KiB by default (fewer datagrams than
//     that: each counts its buffer's size, not its length). So Run sleeps
//     as long as it takes the traffic to queue udpBurst (128 KiB, about 190
//     frames of SIP), from pollUDPMin to pollUDPMax (udpWait): at 80k
//     frames a second (20k OPTIONS through siplb) 2 ms, at 8k frames 20 ms.
//     A fixed 2 ms poll cost the data path +19 % where this costs +8 %, at
//     2k OPTIONS a second (bench-capture RATE=2000, 8 rounds), and a 100 ms
//     one at 20k OPTIONS a second +6.0 % against 2 ms's +10.4 % (10
//     rounds): the wake-ups' price, which a burst of 100 ms of frames
//     would not fit a collector's buffer to save. A Capture that woke Run
//     at every 128 KiB instead cost the data path twice 2 ms's share at
//     20k OPTIONS a second (+19.1 % against +9.4 %): the wake-up is then
//     the event loop's to pay.
//   - After idleRounds empty polls Run waits for the first Capture, which
//     wakes it, and at most pollIdle, so that the clock is measured again
//     at least that often.
const (
	pollStream = 100 * time.Millisecond
	pollUDPMin = 2 * time.Millisecond
	pollUDPMax = 20 * time.Millisecond
	udpBurst   = 128 << 10
	pollIdle   = time.Second
	idleRounds = 10
)

// udpWait is Run's next sleep over UDP, after a drain of drained bytes
// queued over since: the time udpBurst takes to queue at that rate, from
// pollUDPMin to pollUDPMax.
func udpWait(since time.Duration, drained int) time.Duration {
	if drained <= 0 {
		return pollUDPMax
	}
	return min(max(time.Duration(int64(since)*udpBurst/int64(drained)), pollUDPMin), pollUDPMax)
}

// timedDrain is drain, with the thread CPU it took added to sendCPU
// (Stats.SendCPU): two clock reads a poll with something queued, a few
// hundred a second when busy, none when idle.
//
// The drain is locked to its thread: were a write to wait in the
// netpoller unlocked, the thread could run an event loop's goroutine
// meanwhile and the clock would count the loop's work as the sender's,
// which would make the data path's share (the process's CPU less
// SendCPU) look smaller than it is. Locked, a wait costs a hand-over of
// the thread's P, and only a write that finds the socket full waits.
func (s *Sender) timedDrain() bool {
	if s.queue.empty() {
		return false
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0, ok0 := threadClock()
	sent := s.drain()
	if t1, ok1 := threadClock(); sent && ok0 && ok1 && t1 > t0 {
		s.sendCPU.Add(t1 - t0)
	}
	return sent
}

// drain sends what the queue holds, maxBatch records a send, and reports
// whether there was anything.
func (s *Sender) drain() bool {
	sent := false
	for {
		for len(s.batch) < maxBatch {
			rec := s.queue.take()
			if rec == nil {
				break
			}
			s.drained += len(rec)
			s.batch = append(s.batch, rec)
		}
		if len(s.batch) == 0 {
			return sent
		}
		sent = true
		s.flush()
		s.clock.sync() // a drain that traffic keeps going still measures the clock
	}
}

func (s *Sender) close() {
	if s.stream != nil {
		s.stream.close()
		return
	}
	s.conn.Close()
}

// flush sends the frames of the batch's records and frees their room.
func (s *Sender) flush() {
	if s.stream != nil {
		sent, failed := s.stream.write(s.batch)
		s.sent.Add(uint64(sent))
		s.sendErrors.Add(uint64(failed))
		s.free()
		return
	}
	s.out.reset()
	for _, rec := range s.batch {
		for b := rec; len(b) >= frameHeaderLen; {
			n := int(b[4])<<8 | int(b[5])
			if n < frameHeaderLen || n > len(b) {
				break // cannot happen: Capture wrote these frames
			}
			s.out.add(b[:n])
			b = b[n:]
		}
	}
	sent, failed := s.out.write()
	s.sent.Add(uint64(sent))
	s.sendErrors.Add(uint64(failed))
	s.free()
}

// free gives the batch's records back to the queue and empties it.
func (s *Sender) free() {
	s.queue.release()
	clear(s.batch)
	s.batch = s.batch[:0]
}

// Stats returns the counts so far.
func (s *Sender) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Dropped: s.dropped.Load(), TooLarge: s.tooLarge.Load(), SendErrors: s.sendErrors.Load(),
		SendCPU: time.Duration(s.sendCPU.Load()), GSO: s.conn != nil && s.out.segmenting()}
}
