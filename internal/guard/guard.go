package guard

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Guard is the engine's one handle on the edge defences built from a
// Config: the trusted sources, the flood detector, the scanner filter and
// the reply limiter, with counters by reason. Its methods are safe for
// concurrent use, allocate nothing, and are what the engine calls:
//
//   - Check, first for every received datagram (and every message framed
//     from a stream), before parsing it;
//   - Scanner, with the User-Agent value (or the From display name) of a
//     parsed request;
//   - AllowReply, before sending a stateless reply to a UDP sender.
//
// The nil Guard passes everything, matches no scanner and allows every
// reply, so an engine without one needs no special case.
type Guard struct {
	trusted  *CIDRSet
	flood    *Flood // nil: disabled
	scanners *Scanners
	replies  *ReplyLimiter
	_        [64]byte // the fields above are read on every call; keep the counters' writes off their line
	blocked  paddedCounter
	newly    paddedCounter
	scanner  paddedCounter
	limited  paddedCounter
}

// paddedCounter is a counter on a cache line of its own, so that counting
// one reason does not slow the counting of another.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

// Stats is a snapshot of a Guard's counters, each counting since New.
type Stats struct {
	Blocked      uint64 // messages dropped because their source is blocked (including those that began a block)
	NewlyBlocked uint64 // blocks begun
	Scanner      uint64 // messages that matched a scanner signature
	ReplyLimited uint64 // stateless replies not sent because of a reply limit
}

// New builds a Guard from cfg, filling its defaults. Its errors name the
// keys under cfg's own names ("flood.density: …"); a program that nests
// the section calls cfg.Defaults().Validate("security") first for errors
// with the full path.
func New(cfg Config) (*Guard, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(""); err != nil {
		return nil, err
	}
	g := &Guard{}
	var err error
	if g.trusted, err = ParseCIDRSet("trusted", cfg.Trusted); err != nil {
		return nil, err
	}
	if !cfg.Flood.Disabled {
		if g.flood, err = NewFlood(cfg.Flood); err != nil {
			return nil, err
		}
	}
	if !cfg.Scanners.Disabled {
		if g.scanners, err = NewScanners("scanners.user_agents", cfg.Scanners.UserAgents); err != nil {
			return nil, err
		}
	}
	if g.replies, err = NewReplyLimiter(cfg.Replies); err != nil {
		return nil, err
	}
	return g, nil
}

// BlockTime is how long a block lasts once a source stops exceeding the
// density: the time the data path may keep a blocked source out by cheaper
// means (a kernel socket filter) before letting the detector look again.
// Zero when the flood detector is off.
func (g *Guard) BlockTime() time.Duration {
	if g == nil || g.flood == nil {
		return 0
	}
	return time.Duration(uint64(g.flood.rem-1) * g.flood.window)
}

// Check decides about one message from ip received at now (Unix
// nanoseconds; a coarse clock is enough): a trusted source passes, any
// other is counted by the flood detector. The caller drops the message when
// the verdict's Drop is true, and logs the source when it is NewlyBlocked.
func (g *Guard) Check(ip netip.Addr, now int64) Verdict {
	if g == nil || g.flood == nil || g.trusted.Contains(ip) {
		return Pass
	}
	v := g.flood.Check(ip, now)
	switch v {
	case NewlyBlocked:
		g.newly.Add(1)
		fallthrough
	case Blocked:
		g.blocked.Add(1)
	}
	return v
}

// Scanner reports whether ua, a User-Agent value or a From display name,
// matches a scanner signature; the caller then drops the request without a
// reply (answering tells a scanner that something listens).
func (g *Guard) Scanner(ua []byte) bool {
	if g == nil || !g.scanners.Match(ua) {
		return false
	}
	g.scanner.Add(1)
	return true
}

// AllowReply reports whether a stateless reply may be sent to ip at now,
// taking it from ip's budget and the total when it may. Trusted sources are
// not limited.
func (g *Guard) AllowReply(ip netip.Addr, now int64) bool {
	if g == nil || g.trusted.Contains(ip) {
		return true
	}
	if g.replies.Allow(ip, now) {
		return true
	}
	g.limited.Add(1)
	return false
}

// Trusted reports whether ip is in the trusted list.
func (g *Guard) Trusted(ip netip.Addr) bool {
	return g != nil && g.trusted.Contains(ip)
}

// Stats returns the counters. Each is read atomically, not all together:
// a snapshot taken while messages arrive may be one message apart between
// Blocked and NewlyBlocked.
func (g *Guard) Stats() Stats {
	if g == nil {
		return Stats{}
	}
	return Stats{
		Blocked:      g.blocked.Load(),
		NewlyBlocked: g.newly.Load(),
		Scanner:      g.scanner.Load(),
		ReplyLimited: g.limited.Load(),
	}
}
