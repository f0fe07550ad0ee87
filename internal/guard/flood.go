package guard

import (
	"math"
	"net/netip"
	"sync/atomic"
)

// Verdict is what Flood.Check (and Guard.Check) decide about one message.
type Verdict uint8

const (
	// Pass: go on with the message.
	Pass Verdict = iota
	// Blocked: drop the message; its source is blocked.
	Blocked
	// NewlyBlocked: drop the message; this message put its source over the
	// density and began the block. It is returned once per block (see the
	// package comment for the rare exception), so the caller logs it.
	NewlyBlocked
)

// Drop reports whether the message is to be dropped.
func (v Verdict) Drop() bool { return v != Pass }

// String names v as it appears in logs: "pass", "blocked", "newly_blocked".
func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Blocked:
		return "blocked"
	case NewlyBlocked:
		return "newly_blocked"
	}
	return "verdict(?)"
}

// A flood slot's state word: the window it was last counted in (32 bits,
// the window number modulo 2³²), the windows its block has left counting
// that one (12 bits; 0: not blocked) and the messages counted in that window
// (20 bits). Zero is an empty slot: a used slot counts at least one message.
// Windows are compared by their signed 32-bit difference, so a slot left
// untouched for 2³¹ windows (6.8 years of 100 ms windows) would be misread.
const (
	countBits = 20
	countMask = 1<<countBits - 1
	remBits   = 12
	remMask   = 1<<remBits - 1
	floodWays = 4 // slots per set: one 64-byte cache line
)

// Flood is the flood detector (Kamailio's pike): it counts the messages of
// each source (IPv4 address, IPv6 /64) in fixed sampling windows, and blocks
// a source whose count in a window goes over the density. A blocked source
// stays blocked until BlockTime (rounded up to whole windows) has passed
// since the last window in which it went over the density: between
// BlockTime and BlockTime+Window after it stops flooding.
//
// Memory is one table of TableSize slots (rounded up to a power of two),
// allocated by NewFlood, in sets of four slots chosen by a seeded hash of the
// source. Each slot holds a source's full key, so a source only ever counts
// its own messages. A source seen for the first time takes the slot of its
// set that is free, expired or least busy, in that order; blocked sources are
// kept over unblocked ones, and among blocked ones the one nearest its end
// goes first. Losing its slot makes a source start counting from zero: an
// eviction can delay a block, never cause one. Since the victim is always the
// least busy of four, spoofed random sources (one message each) evict one
// another and not a source that sends hundreds a second; only more busy
// sources than the table holds (a botnet of real addresses larger than
// TableSize) can push a flooder out before it is caught, and then it is
// caught on a later window.
//
// A Flood is safe for concurrent use; see the package comment for the races
// it accepts.
type Flood struct {
	window  uint64 // ns
	density uint32
	rem     uint32 // a new block's remaining windows, counting the one in progress
	shift   uint   // the hash's top bits index the sets
	seed    uint64
	sets    []floodSet
}

type floodSet [floodWays]floodSlot

type floodSlot struct {
	key   atomic.Uint64 // sourceKey of the owner
	state atomic.Uint64 // see countBits
}

// NewFlood builds a detector from c, filling its defaults; the errors of an
// invalid c name its keys under "flood".
func NewFlood(c FloodConfig) (*Flood, error) {
	c = c.Defaults()
	if err := c.Validate("flood"); err != nil {
		return nil, err
	}
	n := tableBits(c.TableSize)
	setBits := n - 2 // floodWays == 4
	return &Flood{
		window:  uint64(c.Window),
		density: uint32(c.Density),
		rem:     uint32(blockWindows(c.BlockTime, c.Window)) + 1,
		shift:   64 - setBits,
		seed:    newSeed(),
		sets:    make([]floodSet, 1<<setBits),
	}, nil
}

// Slots is the number of sources the table holds.
func (f *Flood) Slots() int { return len(f.sets) * floodWays }

// Check counts one message from ip at now (Unix nanoseconds, a coarse clock
// is enough) and says whether to pass or drop it. It allocates nothing, and
// the message of a source already blocked, and over the density in this
// window, writes nothing.
func (f *Flood) Check(ip netip.Addr, now int64) Verdict {
	key := sourceKey(ip)
	set := &f.sets[mix(key, f.seed)>>f.shift]
	e := uint32(uint64(now) / f.window)
retry:
	for i := range set {
		sl := &set[i]
		if sl.key.Load() != key {
			continue
		}
		s := sl.state.Load()
		if s == 0 {
			continue // an empty slot: its key 0 is the key of ::/64 too
		}
		v, next, write := f.count(s, e)
		if !write {
			return v
		}
		if !sl.state.CompareAndSwap(s, next) {
			goto retry
		}
		return v
	}
	// Not in its set: take a slot. The state is replaced first and the key
	// after, so that no reader can pair this key with the previous owner's
	// count; a reader of the previous owner may add one message to the new
	// count in between (the package comment's accepted race).
	victim, old := 0, uint64(0)
	best := uint64(math.MaxUint64)
	for i := range set {
		s := set[i].state.Load()
		if sc := f.score(s, e); sc < best {
			victim, old, best = i, s, sc
			if sc == 0 {
				break
			}
		}
	}
	if !set[victim].state.CompareAndSwap(old, uint64(e)<<32|1) {
		goto retry
	}
	set[victim].key.Store(key)
	return Pass // Density >= 1, so one message never crosses it
}

// count adds one message to state s in window e: it returns the verdict,
// the new state, and whether the state must be written.
func (f *Flood) count(s uint64, e uint32) (Verdict, uint64, bool) {
	se, rem, c := unpack(s)
	if d := int32(e - se); d > 0 { // a later window: the count restarts and the block runs down
		if uint32(d) >= rem {
			rem = 0
		} else {
			rem -= uint32(d)
		}
		c, se = 0, e
	} // d < 0: another loop's coarse clock is a little behind; count in the stored window
	if c > f.density && rem > 0 {
		return Blocked, s, false // already over in this window, and the block already runs from it
	}
	c++
	v := Pass
	if rem > 0 {
		v = Blocked
	}
	if c > f.density {
		if rem == 0 {
			v = NewlyBlocked
		}
		rem = f.rem // blocked from this window on, for BlockTime more
	}
	return v, uint64(se)<<32 | uint64(rem)<<countBits | uint64(c), true
}

// score ranks state s in window e for eviction, lowest first: free or
// expired 0, else the count of its current (or previous) window, and any
// blocked source above all unblocked ones, by the windows its block has left.
func (f *Flood) score(s uint64, e uint32) uint64 {
	if s == 0 {
		return 0
	}
	se, rem, c := unpack(s)
	d := int32(e - se)
	if d > 0 {
		if uint32(d) >= rem {
			rem = 0
		} else {
			rem -= uint32(d)
		}
	}
	switch {
	case rem > 0:
		return 1<<32 | uint64(rem)
	case d > 1:
		return 0
	}
	return uint64(c)
}

func unpack(s uint64) (epoch, rem, count uint32) {
	return uint32(s >> 32), uint32(s>>countBits) & remMask, uint32(s) & countMask
}
