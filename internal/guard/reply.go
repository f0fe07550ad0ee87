package guard

import (
	"net/netip"
	"sync/atomic"
)

// ReplyLimiter bounds the stateless replies sent to UDP senders, per source
// (IPv4 address, IPv6 /64) and in total, so that a sender spoofing a
// victim's address cannot make the balancer reflect more at it than the
// limits allow, whatever it sends.
//
// Each limit is a token bucket kept as one word, the theoretical arrival
// time of the generic cell rate algorithm (ITU-T I.371): a reply is allowed
// when the bucket's time, advanced by one interval (1/rate), is at most
// burst intervals ahead of now, and allowing it stores the advanced time.
// A refused reply writes nothing, so a flood past the limit costs only
// loads. The per-source buckets are a fixed table of TableSize words
// (rounded up to a power of two) indexed by a seeded hash of the source;
// sources that share a bucket share its budget, which can only refuse
// replies, never send more. Spoofed random sources touch random buckets and
// use no memory.
//
// A ReplyLimiter is safe for concurrent use; the buckets are updated by
// compare-and-swap, so the limits are exact.
type ReplyLimiter struct {
	perIval, perSpan int64 // per source: ns per reply, and burst × that
	totIval, totSpan int64
	shift            uint
	seed             uint64
	buckets          []atomic.Int64
	_                [64]byte // keep total off the cache line of the fields above, read by every call
	total            atomic.Int64
	_                [56]byte
}

// NewReplyLimiter builds a limiter from c, filling its defaults; the errors
// of an invalid c name its keys under "replies".
func NewReplyLimiter(c ReplyConfig) (*ReplyLimiter, error) {
	c = c.Defaults()
	if err := c.Validate("replies"); err != nil {
		return nil, err
	}
	n := tableBits(c.TableSize)
	per := 1e9 / int64(c.PerSourceRate)
	tot := 1e9 / int64(c.TotalRate)
	return &ReplyLimiter{
		perIval: per, perSpan: per * int64(c.PerSourceBurst),
		totIval: tot, totSpan: tot * int64(c.TotalBurst),
		shift:   64 - n,
		seed:    newSeed(),
		buckets: make([]atomic.Int64, 1<<n),
	}, nil
}

// Allow reports whether a stateless reply may be sent to ip at now (Unix
// nanoseconds), and if so takes it from both budgets. It allocates nothing.
func (r *ReplyLimiter) Allow(ip netip.Addr, now int64) bool {
	b := &r.buckets[mix(sourceKey(ip), r.seed)>>r.shift]
	if !take(b, now, r.perIval, r.perSpan) {
		return false
	}
	// A reply refused by the total has used its source's token; the source
	// loses one reply of its budget while the total is exhausted.
	return take(&r.total, now, r.totIval, r.totSpan)
}

// take takes one token from the bucket whose theoretical arrival time is
// *t, if it has one.
func take(t *atomic.Int64, now, ival, span int64) bool {
	for {
		old := t.Load()
		next := max(old, now) + ival
		if next-now > span {
			return false
		}
		if t.CompareAndSwap(old, next) {
			return true
		}
	}
}
