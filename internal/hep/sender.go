package hep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// DefaultQueueSize is the number of message slots a Sender queues when
// Config.QueueSize is 0: about a tenth of a second of a busy instance's
// messages, so a collector that stalls costs drops, not memory.
const DefaultQueueSize = 1024

// MaxQueueSize bounds Config.QueueSize (the memory of the slots: at most
// about 8 KiB each, and 128 KiB each of the few large ones).
const MaxQueueSize = 1 << 16

// MaxAuthKey bounds the auth key (password) a Sender writes into every
// frame.
const MaxAuthKey = 255

// smallSlot is the capacity of an ordinary slot: the frames of one
// Capture call (a message in and the one sent for it) of up to about 4 KiB
// each. largeSlot holds two frames of any size; a Sender has one large
// slot per largeEvery slots, and at least minLarge.
const (
	smallSlot  = 8 << 10
	largeSlot  = 2 * MaxFrame
	largeEvery = 64
	minLarge   = 4
)

// maxBatch is the most slots Run takes from the queue for one send (two
// frames each, one sendmmsg).
const maxBatch = 32

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
	QueueSize int            // slots queued for Run (default DefaultQueueSize, at most MaxQueueSize)
	// Transport is "udp" (the default: one frame a datagram) or "tcp" (a
	// stream of frames, many a write; reconnected when it breaks).
	Transport string
}

// Stats counts a Sender's frames. Dropped are frames not queued since no
// slot was free (the collector, or Run, is slower than the traffic);
// TooLarge those whose frame would exceed MaxFrame; SendErrors those the
// socket refused (over UDP, a collector that is down answers ICMP port
// unreachable) or that went while a TCP connection was down or broke.
type Stats struct {
	Sent, Dropped, TooLarge, SendErrors uint64
}

// Sender mirrors messages to a collector off the data path. Capture is
// safe for concurrent use; Run sends what Capture queues.
type Sender struct {
	enc    Encoder
	tpl    *template     // enc's frames, written fast (template.go)
	conn   *net.UDPConn  // over UDP
	stream *streamWriter // over TCP (stream.go)
	queue  chan *slot    // what Run sends; its capacity is every slot, so a send never blocks
	small  chan *slot    // free slots of smallSlot bytes
	large  chan *slot    // free slots of largeSlot bytes

	sent, dropped, tooLarge, sendErrors atomic.Uint64

	sleeping atomic.Bool   // Run waits for its next poll
	wake     chan struct{} // cuts Run's wait short (capacity 1)
	wakeAt   int           // queue length at which Capture wakes Run

	batch []*slot
	out   batchWriter // the platform's send (send_linux.go, send_other.go)
}

// slot is one queued Capture call: its frames, back to back.
type slot struct {
	buf    []byte // made on the slot's first use, of its class's capacity
	frames int    // in buf
	large  bool
}

// NewSender returns a Sender to cfg.Collector that queues cfg.QueueSize
// slots, with its UDP socket open; over TCP, Run connects. Call Run to
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
	nLarge := max(minLarge, n/largeEvery)
	s := &Sender{
		enc:   Encoder{CaptureID: cfg.CaptureID, AuthKey: []byte(cfg.Password)},
		queue: make(chan *slot, n+nLarge),
		small: make(chan *slot, n),
		large: make(chan *slot, nLarge),
		batch: make([]*slot, 0, maxBatch),
		wake:  make(chan struct{}, 1),
	}
	s.wakeAt = max(1, cap(s.queue)/4)
	s.tpl = newTemplate(s.enc)
	for range n {
		s.small <- &slot{}
	}
	for range nLarge {
		s.large <- &slot{large: true}
	}
	if cfg.Transport == "tcp" {
		s.stream = &streamWriter{addr: c}
		return s, nil
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c))
	if err != nil {
		return nil, fmt.Errorf("hep: collector %s: %w", c, err)
	}
	if err := s.out.init(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hep: collector %s: %w", c, err)
	}
	s.conn = conn
	return s, nil
}

// Capture queues the frames of in and, unless nil, out (the message sent
// for it), in one slot so that both cost one queue operation. It never
// blocks: with no slot free both are dropped and counted. It copies what
// it needs from in and out and keeps neither. It allocates nothing once
// every slot has been used once.
func (s *Sender) Capture(in, out *Packet) {
	nIn, nOut, frames := 0, 0, uint64(0)
	if in != nil {
		if nIn = s.enc.Len(in); nIn > MaxFrame {
			s.tooLarge.Add(1)
			in = nil
		} else {
			frames++
		}
	}
	if out != nil {
		if nOut = s.enc.Len(out); nOut > MaxFrame {
			s.tooLarge.Add(1)
			out = nil
		} else {
			frames++
		}
	}
	need := 0
	if in != nil {
		need += nIn
	}
	if out != nil {
		need += nOut
	}
	if frames == 0 {
		return
	}
	free := s.small
	if need > smallSlot {
		free = s.large
	}
	var sl *slot
	select {
	case sl = <-free:
	default:
		s.dropped.Add(frames)
		return
	}
	if sl.buf == nil {
		sl.buf = make([]byte, 0, slotCap(sl.large))
	}
	b := sl.buf[:0]
	if in != nil {
		b = s.tpl.appendFrame(b, in, nIn)
	}
	if out != nil {
		b = s.tpl.appendFrame(b, out, nOut)
	}
	sl.buf, sl.frames = b, int(frames)
	s.queue <- sl
	if len(s.queue) >= s.wakeAt && s.sleeping.Load() {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func slotCap(large bool) int {
	if large {
		return largeSlot
	}
	return smallSlot
}

// Run sends the queued frames until ctx is done, then closes the socket
// (the connection, over TCP).
// Call it once. It returns ctx's cause.
//
// Run polls the queue rather than waiting on it: a Capture that woke a
// parked goroutine for every message would pay for the wake-up on the data
// path. It drains the queue every pollBusy while there is traffic and every
// pollIdle after idleRounds empty polls; a Capture wakes it early only when
// the queue is a quarter full and Run sleeps.
func (s *Sender) Run(ctx context.Context) error {
	defer s.close()
	t := time.NewTimer(pollBusy)
	defer t.Stop()
	done := ctx.Done()
	idle := 0
	for {
		if s.drain() {
			idle = 0
		} else {
			idle++
		}
		wait := pollBusy
		if idle > idleRounds {
			wait = pollIdle
		}
		s.sleeping.Store(true)
		if len(s.queue) >= s.wakeAt { // filled since drain, before the flag
			s.sleeping.Store(false)
			continue
		}
		t.Reset(wait)
		select {
		case <-done:
			return context.Cause(ctx)
		case <-t.C:
		case <-s.wake:
		}
		s.sleeping.Store(false)
	}
}

// The polling of Run.
const (
	pollBusy   = time.Millisecond
	pollIdle   = 20 * time.Millisecond
	idleRounds = 100
)

// drain sends what the queue holds, maxBatch slots a send, and reports
// whether there was anything.
func (s *Sender) drain() bool {
	sent := false
	for {
	fill:
		for len(s.batch) < maxBatch {
			select {
			case sl := <-s.queue:
				s.batch = append(s.batch, sl)
			default:
				break fill
			}
		}
		if len(s.batch) == 0 {
			return sent
		}
		sent = true
		s.flush()
	}
}

func (s *Sender) close() {
	if s.stream != nil {
		s.stream.close()
		return
	}
	s.conn.Close()
}

// flush sends the frames of the batch's slots and frees the slots.
func (s *Sender) flush() {
	if s.stream != nil {
		sent, failed := s.stream.write(s.batch)
		s.sent.Add(uint64(sent))
		s.sendErrors.Add(uint64(failed))
		s.free()
		return
	}
	s.out.reset()
	for _, sl := range s.batch {
		for b := sl.buf; len(b) >= frameHeaderLen; {
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

// free gives the batch's slots back and empties it.
func (s *Sender) free() {
	for _, sl := range s.batch {
		if sl.large {
			s.large <- sl
		} else {
			s.small <- sl
		}
	}
	clear(s.batch)
	s.batch = s.batch[:0]
}

// Stats returns the counts so far.
func (s *Sender) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Dropped: s.dropped.Load(), TooLarge: s.tooLarge.Load(), SendErrors: s.sendErrors.Load()}
}
