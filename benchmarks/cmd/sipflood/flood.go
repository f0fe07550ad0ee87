package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults of the flags.
const (
	defaultSources  = 8
	defaultDuration = 10 * time.Second
	defaultBatch    = 32
	defaultDrain    = 300 * time.Millisecond
	defaultMix      = "invite,register,garbage,scanner"
	maxBatch        = 1024
	maxSources      = 250
)

var (
	errNotLoopback = errors.New("not a loopback address (only 127.0.0.0/8 and ::1 are allowed)")
	errBounds      = errors.New("bad bound")
)

// config is what one flood does.
type config struct {
	target   netip.AddrPort
	src      netip.Addr // the first source; the others follow it
	sources  int
	mix      mix
	duration time.Duration // stop sending after this
	max      uint64        // messages over all sources; 0: no bound but the duration
	rate     float64       // messages per second over all sources; 0: as fast as possible
	batch    int           // messages per sendmmsg
	drain    time.Duration // after sending, count replies this long
	replies  bool          // count what comes back
	seed     uint64        // of the random fields; 0: from the clock
}

// check refuses anything that is not bounded or not on loopback, and
// returns the source addresses.
func (c *config) check() ([]netip.Addr, error) {
	if !c.target.IsValid() || c.target.Port() == 0 {
		return nil, fmt.Errorf("-target %q: want IP:PORT", c.target)
	}
	if !c.target.Addr().Unmap().IsLoopback() {
		return nil, fmt.Errorf("-target %s: %w", c.target, errNotLoopback)
	}
	if c.duration <= 0 {
		return nil, fmt.Errorf("-duration %v: %w: it must be positive", c.duration, errBounds)
	}
	if c.sources < 1 || c.sources > maxSources {
		return nil, fmt.Errorf("-sources %d: %w: 1-%d", c.sources, errBounds, maxSources)
	}
	if c.batch < 1 || c.batch > maxBatch {
		return nil, fmt.Errorf("-batch %d: %w: 1-%d", c.batch, errBounds, maxBatch)
	}
	if c.rate < 0 || c.drain < 0 {
		return nil, fmt.Errorf("-rate, -drain: %w: negative", errBounds)
	}
	if c.target.Addr().Unmap().Is4() != c.src.Unmap().Is4() {
		return nil, fmt.Errorf("-src %s: not of -target %s's address family", c.src, c.target)
	}
	srcs := make([]netip.Addr, c.sources)
	a := c.src.Unmap()
	for i := range srcs {
		if !a.IsValid() || !a.IsLoopback() {
			return nil, fmt.Errorf("source %d (%s): %w; -src and -sources must stay inside it", i+1, a, errNotLoopback)
		}
		srcs[i] = a
		a = a.Next()
	}
	return srcs, nil
}

// Result is what a flood sent and got back, over all sources and per source.
type Result struct {
	Target  string            `json:"target"`
	Mix     map[string]uint32 `json:"mix"`
	Rate    float64           `json:"rate_limit_per_s,omitempty"` // 0: as fast as possible
	Elapsed time.Duration     `json:"elapsed_ns"`                 // first send to last
	PerSec  float64           `json:"sent_per_s"`
	Counts
	Sources []SourceResult `json:"sources"`
}

// SourceResult is one source's share.
type SourceResult struct {
	Addr string `json:"addr"`
	Counts
}

// Counts are what one source, or all, sent and received.
type Counts struct {
	Sent           uint64            `json:"sent"` // datagrams the kernel took
	SentByKind     map[string]uint64 `json:"sent_by_kind"`
	SendErrors     uint64            `json:"send_errors"` // sends refused (ICMP unreachable and the like)
	Replies        uint64            `json:"replies"`     // datagrams received back
	RepliesByClass map[string]uint64 `json:"replies_by_class,omitempty"`
}

func (c *Counts) add(o *Counts) {
	c.Sent += o.Sent
	c.SendErrors += o.SendErrors
	c.Replies += o.Replies
	for k, v := range o.SentByKind {
		c.SentByKind[k] += v
	}
	for k, v := range o.RepliesByClass {
		c.RepliesByClass[k] += v
	}
}

// source is one sending socket and its counters. Its sending goroutine
// owns gen, b and the send counters; its reading goroutine owns the reply
// counters; both are read once the two have ended.
type source struct {
	conn    *net.UDPConn
	local   netip.AddrPort
	gen     *gen
	b       *batch
	limited bool    // budget bounds the messages
	budget  uint64  // messages left to send, when limited
	rate    float64 // messages per second, 0: no pacing

	sent        [numKinds]uint64
	sendErrs    uint64
	first, last time.Time // of the first and the last send

	replies uint64
	byClass [7]uint64 // 0: not a SIP response, 1-6: its status class
}

// flood sends from every source at once until the duration, the budget or
// ctx ends, then counts replies for the drain time (unless ctx ends).
func flood(ctx context.Context, c config) (*Result, error) {
	srcs, err := c.check()
	if err != nil {
		return nil, err
	}
	seed := c.seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	var sources []*source
	defer func() {
		for _, s := range sources {
			s.conn.Close()
		}
	}()
	for i, a := range srcs {
		conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)), net.UDPAddrFromAddrPort(c.target))
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", a, err)
		}
		_ = conn.SetWriteBuffer(4 << 20)
		_ = conn.SetReadBuffer(1 << 20)
		local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
		local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
		s := &source{conn: conn, local: local, gen: newGen(local, c.target, c.mix, seed+uint64(i)*0x632be59bd9b4e019),
			b: newBatch(conn, c.batch), rate: c.rate / float64(len(srcs))}
		if c.max > 0 {
			s.limited = true
			s.budget = c.max / uint64(len(srcs))
			if uint64(i) < c.max%uint64(len(srcs)) {
				s.budget++
			}
		}
		sources = append(sources, s)
	}

	end := time.Now().Add(c.duration)
	sendCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var readers, senders sync.WaitGroup
	if c.replies {
		for _, s := range sources {
			readers.Go(s.read)
		}
	}
	for _, s := range sources {
		// A send waiting for room ends at the deadline or on cancellation.
		_ = s.conn.SetWriteDeadline(end)
		stop := context.AfterFunc(sendCtx, func() { _ = s.conn.SetWriteDeadline(time.Now()) })
		senders.Go(func() {
			defer stop()
			s.send(sendCtx)
		})
	}
	senders.Wait()
	if c.replies {
		t := time.NewTimer(c.drain)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	for _, s := range sources {
		s.conn.Close()
	}
	readers.Wait()
	return collect(c, sources), nil
}

// collect sums the sources' counters, once their goroutines have ended.
func collect(c config, sources []*source) *Result {
	res := &Result{Target: c.target.String(), Mix: c.mix.named(), Rate: c.rate, Counts: newCounts()}
	var first, last time.Time
	for _, s := range sources {
		sr := SourceResult{Addr: s.local.String(), Counts: s.counts()}
		res.add(&sr.Counts)
		res.Sources = append(res.Sources, sr)
		if !s.first.IsZero() && (first.IsZero() || s.first.Before(first)) {
			first = s.first
		}
		if s.last.After(last) {
			last = s.last
		}
	}
	if res.Elapsed = last.Sub(first); !first.IsZero() && res.Elapsed > 0 {
		res.PerSec = float64(res.Sent) / res.Elapsed.Seconds()
	}
	return res
}

func newCounts() Counts {
	return Counts{SentByKind: map[string]uint64{}, RepliesByClass: map[string]uint64{}}
}

// counts returns s's counters by name.
func (s *source) counts() Counts {
	c := newCounts()
	for k, n := range s.sent {
		c.SentByKind[kindNames[k]] = n
		c.Sent += n
	}
	c.SendErrors = s.sendErrs
	c.Replies = s.replies
	for i, n := range s.byClass {
		if n == 0 {
			continue
		}
		name := "other"
		if i > 0 {
			name = fmt.Sprintf("%dxx", i)
		}
		c.RepliesByClass[name] = n
	}
	return c
}

// send fills and sends batches until ctx ends or the budget is spent,
// pacing them when a rate is set.
func (s *source) send(ctx context.Context) {
	b := s.b
	var due time.Time
	for ctx.Err() == nil {
		n := b.size()
		if s.limited {
			if s.budget == 0 {
				return
			}
			n = int(min(uint64(n), s.budget))
		}
		for i := range n {
			b.kinds[i], b.lens[i] = s.gen.next(b.slot(i))
		}
		if s.rate > 0 {
			now := time.Now()
			if due.IsZero() {
				due = now
			}
			if d := due.Sub(now); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			due = due.Add(time.Duration(float64(n) / s.rate * float64(time.Second)))
		}
		if s.first.IsZero() {
			s.first = time.Now()
		}
		errs, err := b.send(n, &s.sent)
		s.sendErrs += errs
		s.last = time.Now()
		if s.limited {
			s.budget -= uint64(n)
		}
		if err != nil {
			return // the deadline, or the socket closed
		}
	}
}

// count records one datagram received by s.
func (s *source) count(b []byte) {
	s.replies++
	s.byClass[classOf(b)]++
}

// classOf returns a response's status class (1-6), 0 for anything else.
func classOf(b []byte) int {
	if len(b) < 12 || string(b[:8]) != "SIP/2.0 " || b[8] < '1' || b[8] > '6' {
		return 0
	}
	return int(b[8] - '0')
}
