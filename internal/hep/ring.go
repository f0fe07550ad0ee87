package hep

import (
	"math/bits"
	"sync/atomic"
	"time"
	"unsafe"
)

// ring is a bounded byte ring that any number of goroutines append records
// to (Capture: the frames of one call, back to back) and one drains (Run).
// A record is an 8-byte header and the frames, at an 8-byte boundary;
// records follow one another, so a batch of them spans the bytes it needs
// (a burst touches a few pages, not a page per message) and Run sends
// them from where they were written.
//
// A producer reserves its record's bytes with one compare-and-swap on the
// tail, writes the frames and then the header (one store): the header
// holds the record's position, so a header left from an earlier lap never
// reads as written. Run takes the records in order up to the first one not
// yet written, sends them, and then releases their bytes to the producers
// by moving the head. A record that would cross the end of the buffer
// starts at its beginning instead, after a pad record over the rest.
//
// The ring is full when a record does not fit between the tail and the
// head: the producer drops it (the caller counts) and never waits.
type ring struct {
	tail atomic.Uint64 // the next byte position a producer reserves
	_    [56]byte      // tail's cache line is the producers'
	head atomic.Uint64 // bytes before head are free: Run has sent them
	_    [56]byte
	buf  []byte // len(buf) is a power of two, 8-byte aligned
	mask uint64
	// step: the producer whose record crosses a multiple of 1<<step wakes
	// Run if it sleeps: half the ring.
	step uint
	_    [64]byte // what producers read is not on next's line
	next uint64   // Run's: the next record to take (head <= next <= tail)
}

// recordHeader is the length of a record's header.
const recordHeader = 8

// A header is seq<<hdrSeqShift | kind | n: seq is the record's position
// divided by 8, plus 1 (so that zeroed memory reads as no record), cut to
// 40 bits; n the bytes of frames that follow; kind padRecord for the
// filler before the end of the buffer.
const (
	hdrSeqShift = 24
	padRecord   = 1 << 23
	hdrLenMask  = padRecord - 1
)

// maxRecord bounds a record's frames: two frames of MaxFrame.
const maxRecord = 2 * MaxFrame

func header(pos uint64, kind uint64, n int) uint64 {
	return (pos/8+1)<<hdrSeqShift | kind | uint64(n)
}

// newRing returns a ring of at least size bytes: rounded up to a power of
// two, and room for four records of the largest size.
func newRing(size int) *ring {
	n := 1
	for n < size || n < 4*(recordHeader+maxRecord) {
		n <<= 1
	}
	words := make([]uint64, n/8) // 8-byte aligned, for the headers' atomic stores
	return &ring{buf: unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n), mask: uint64(n - 1), step: uint(bits.TrailingZeros(uint(n)) - 1)}
}

func align8(n int) uint64 { return uint64(n+7) &^ 7 }

func (r *ring) hdr(pos uint64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.buf[pos&r.mask]))
}

// reserve returns the position of a record of n bytes of frames (n at
// most maxRecord) and the slice, of length 0 and capacity n, to append
// them to; ok is false when the ring is full. It never waits: a lost race
// for the tail tries again at the new tail.
func (r *ring) reserve(n int) (pos uint64, b []byte, ok bool) {
	size := uint64(len(r.buf))
	total := recordHeader + align8(n)
	for {
		pos = r.tail.Load()
		pad := uint64(0)
		if off := pos & r.mask; off+total > size {
			pad = size - off
		}
		if pos+pad+total-r.head.Load() > size {
			return 0, nil, false
		}
		if !r.tail.CompareAndSwap(pos, pos+pad+total) {
			continue
		}
		if pad > 0 {
			r.hdr(pos).Store(header(pos, padRecord, int(pad-recordHeader)))
			pos += pad
		}
		off := pos&r.mask + recordHeader
		return pos, r.buf[off : off : off+uint64(n)], true
	}
}

// commit hands the record reserved at pos, now holding n bytes of frames,
// to Run, and reports whether Run is to be woken: the record reaches past
// a multiple of the wake step, or starts on one (after the pad at the end
// of a lap, which reports nothing), once for each multiple.
func (r *ring) commit(pos uint64, n int) (wake bool) {
	storeRelease((*uint64)(unsafe.Pointer(&r.buf[pos&r.mask])), header(pos, 0, n))
	end := pos + recordHeader + align8(n)
	return (pos-1)>>r.step != (end-1)>>r.step
}

// skip hands the record reserved at pos, of n bytes, to Run as filler,
// which Run passes over.
func (r *ring) skip(pos uint64, n int) {
	r.hdr(pos).Store(header(pos, padRecord, int(align8(n))))
}

// empty reports whether no record has been reserved since the last take
// (one may be reserved and not yet written when it says false). Run only.
func (r *ring) empty() bool { return r.next == r.tail.Load() }

// take returns the frames of the next record written, or nil when there
// is none yet (the next may still be being written). Run only; what take
// returns stays valid until release.
func (r *ring) take() []byte {
	for {
		if r.empty() {
			return nil
		}
		h := r.hdr(r.next).Load()
		if h>>hdrSeqShift != (r.next/8+1)&(1<<(64-hdrSeqShift)-1) {
			return nil // reserved, not yet written
		}
		n := int(h & hdrLenMask)
		if n > maxRecord || r.next+recordHeader+uint64(n) > r.tail.Load() {
			return nil // cannot happen: only producers write headers
		}
		off := r.next&r.mask + recordHeader
		if h&padRecord != 0 {
			r.next += recordHeader + uint64(n)
			continue
		}
		r.next += recordHeader + align8(n)
		return r.buf[off : off+uint64(n)]
	}
}

// release gives the bytes of every record taken so far back to the
// producers, zeroed: a header a producer has not yet stored then reads as
// no record, never as bytes of an earlier lap's frames (a message's
// payload, which its sender chose). Run only.
func (r *ring) release() {
	size := uint64(len(r.buf))
	for h := r.head.Load(); h < r.next; {
		off := h & r.mask
		end := min(off+(r.next-h), size)
		clear(r.buf[off:end])
		h += end - off
	}
	r.head.Store(r.next)
}

// clock is the wall clock read through the monotonic clock alone: one
// vDSO call (time.Since of a monotonic time) instead of time.Now's two.
// The offset between the two clocks changes only when the wall clock is
// stepped: NTP's and adjtime's slews move CLOCK_MONOTONIC too
// (clock_gettime(2)). Run measures it again at every poll and after every
// batch it sends, so a step shows in the stamps within a poll (100 ms over
// TCP, 2 ms over UDP; for the first messages after Run idled, up to
// pollIdle). Between two measurements the stamps only go forward.
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
