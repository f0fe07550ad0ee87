package hep

import (
	"sync/atomic"
	"time"
)

// ring is a bounded queue of preallocated slots that any number of
// goroutines fill (Capture) and one empties (Run). It is both the free list
// and the queue, so that a Capture costs one compare-and-swap to claim a
// slot and one store to hand it over, and never waits: the shape is Dmitry
// Vyukov's bounded queue, each slot's sequence number saying whose turn it
// is.
//
// The slot of position p (slot p mod len) has seq p while it is free for
// the producer of p, p+1 once that producer has filled it (Run's turn), and
// p+len once Run has sent it (free for the producer of the next round). A
// producer that finds the slot of the tail not free for it finds the ring
// full: every slot is queued, being filled or being sent.
type ring struct {
	tail atomic.Uint64 // the next position a producer claims
	_    [56]byte      // tail's cache line is the producers'
	mask uint64        // len(slots) - 1
	// wakeMask: the producer of a position p with p&wakeMask == wakeMask
	// wakes Run if it sleeps (every quarter of the ring).
	wakeMask uint64
	slots    []slot
	large    bool     // slots of largeSlot bytes
	_        [64]byte // what producers read is not on head's line
	head     uint64   // the next position Run takes; Run's own
}

// slot is one queued Capture call: its frames, back to back.
type slot struct {
	seq    atomic.Uint64
	buf    []byte // made on the slot's first use, of its ring's capacity
	frames int    // in buf
	_      [64 - 8 - 24 - 8]byte
}

// newRing returns a ring of at least n slots: n rounded up to a power of
// two, so that a position's slot is a mask away.
func newRing(n int, large bool) *ring {
	size := 1
	for size < n {
		size <<= 1
	}
	r := &ring{mask: uint64(size - 1), wakeMask: uint64(max(1, size/4) - 1), slots: make([]slot, size), large: large}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// claim returns a free slot and its position for the caller to fill and
// then publish, or nil when the ring is full. It never waits: a lost race
// for a position moves on to the next.
func (r *ring) claim() (*slot, uint64) {
	pos := r.tail.Load()
	for {
		sl := &r.slots[pos&r.mask]
		switch d := int64(sl.seq.Load() - pos); {
		case d == 0:
			if r.tail.CompareAndSwap(pos, pos+1) {
				return sl, pos
			}
		case d < 0:
			return nil, 0
		}
		pos = r.tail.Load() // another producer took pos
	}
}

// publish hands the slot claimed at pos to Run.
func (sl *slot) publish(pos uint64) { sl.seq.Store(pos + 1) }

// take returns the next filled slot, or nil when there is none yet (the
// next one may still be being filled). Run only.
func (r *ring) take() *slot {
	sl := &r.slots[r.head&r.mask]
	if sl.seq.Load() != r.head+1 {
		return nil
	}
	r.head++
	return sl
}

// release gives a slot take returned back to the producers. Run only.
func (r *ring) release(sl *slot) {
	sl.seq.Store(sl.seq.Load() - 1 + uint64(len(r.slots)))
}

// clock is the wall clock read through the monotonic clock alone: one
// vDSO call (time.Since of a monotonic time) instead of time.Now's two.
// Run measures the offset between the two clocks again at every poll and
// after every batch it sends, so that a step of the wall clock shows
// within a poll, and a slew costs at most 2.5 µs (500 ppm, NTP's most,
// over a busy poll of 5 ms; 10 µs over an idle one of 20 ms). Between two
// measurements the stamps only go forward.
type clock struct {
	epoch time.Time    // a monotonic reading, fixed
	off   atomic.Int64 // wall UnixNano minus the monotonic time since epoch
}

func newClock() *clock {
	c := &clock{epoch: time.Now()}
	c.sync()
	return c
}

// now returns the wall clock in UnixNano.
func (c *clock) now() int64 { return c.off.Load() + int64(time.Since(c.epoch)) }

// sync measures the offset again.
func (c *clock) sync() {
	t := time.Now()
	c.off.Store(t.UnixNano() - int64(t.Sub(c.epoch)))
}
