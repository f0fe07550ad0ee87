package engine

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// The memory a peer can make siplb hold without completing anything is
// bounded in one place: every byte of a partly received stream message (TCP
// or TLS), every TLS handshake in progress, and the buffers an established
// TLS or WebSocket connection keeps (tlsConnCharge, wsConnCharge) are
// charged to one memBudget (streams.memory_budget). A connection's partial message lives in a pooled
// buffer that grows only as far as the message needs and goes back to the
// pool as soon as the message is complete; gnet's own per-connection input
// buffer is never used (streamTraffic takes every byte it is given), and a
// connection with nothing partial holds no input buffer at all.
//
// Over budget, the holders of the oldest partial messages are closed first
// (each counted as a budget close) until the new bytes fit; a holder whose
// partial message is the oldest left is refused its bytes instead, and is
// closed by its owner.

// errOverBudget is what nextFrame returns when the bytes of a partial
// message do not fit in the budget: the connection must be closed.
var errOverBudget = errors.New("stream memory budget exhausted")

// tlsConnCharge is what an established TLS connection is charged for its
// life: crypto/tls's input buffer (up to 4 KiB) and handshake buffer (about
// 2 KiB) as a handshake leaves them, and the read buffer siplb borrows
// while it reads. crypto/tls's input buffer grows to hold the largest
// record the peer sends and keeps it: a record over tlsRecordCharged is
// charged more (tlsCharge), up to about 13 KiB.
const tlsConnCharge = 6<<10 + tlsReadSize

// tlsRecordCharged is the largest record fragment tlsConnCharge covers:
// crypto/tls's input buffer holds a record's header and fragment and 512
// bytes more (bytes.MinRead).
const tlsRecordCharged = 4<<10 - 512 - 5

// wsConnCharge is what an established WebSocket connection is charged for
// its life: net/http's 4 KiB read and write buffers, which coder/websocket
// keeps, and the message buffer siplb borrows while it reads one (a wss
// connection is charged tlsConnCharge as well).
const wsConnCharge = 8<<10 + wsReadSize

// tlsHandshakeCharge is what a TLS handshake in progress is charged:
// crypto/tls buffers a record of up to 16 KiB + 2 KiB and a handshake
// message of up to 64 KiB while it assembles them.
const tlsHandshakeCharge = 80 << 10

// The states of a holder. The owner (the event loop of a TCP connection,
// or the reader goroutine of a TLS one) moves it between empty, idle and
// busy; the evictor only from idle to evicted, which hands it the holder's
// buffer.
const (
	holdEmpty   int32 = iota // holds nothing, not listed
	holdIdle                 // listed, its owner is not touching it: the evictor may take it
	holdBusy                 // listed, its owner is working on it
	holdEvicted              // taken by the evictor: released, its connection is being closed
)

// holder is what one connection has charged to the budget: the buffer of
// its partial message, or a TLS handshake's charge.
type holder struct {
	state  atomic.Int32
	charge int64   // bytes charged; owned by the owner, or by the evictor once evicted
	buf    *[]byte // the partial message; nil when none
	done   int     // bytes of buf handed out by nextFrame, dropped at its next call
	kill   func()  // closes the connection from any goroutine; set before the holder is first listed

	prev, next *holder // the budget's list, oldest first; guarded by memBudget.mu
	listed     bool    // guarded by memBudget.mu
}

// memBudget is the budget shared by all stream connections. Safe for
// concurrent use: held is an atomic, the list of holders takes a mutex only
// when a partial message starts or ends, never for a message that arrives
// whole in one read.
type memBudget struct {
	limit  int64
	held   atomic.Int64
	closes *atomic.Uint64 // where evictions are counted

	mu         sync.Mutex
	head, tail *holder // holders of a partial message or a handshake, oldest first
}

func newMemBudget(limit int64, closes *atomic.Uint64) *memBudget {
	return &memBudget{limit: limit, closes: closes}
}

// Held is the number of bytes charged now.
func (b *memBudget) Held() int64 { return b.held.Load() }

// enter starts an owner's turn on h; false means the evictor took h and the
// connection must be closed without touching h again.
func (b *memBudget) enter(h *holder) bool {
	switch h.state.Load() {
	case holdEmpty, holdBusy:
		return true
	case holdIdle:
		if h.state.CompareAndSwap(holdIdle, holdBusy) {
			return true
		}
	}
	return false
}

// leave ends an owner's turn: what h still holds may now be evicted.
func (b *memBudget) leave(h *holder) {
	h.state.CompareAndSwap(holdBusy, holdIdle)
}

// release gives back everything h holds. Called by the owner in its turn
// (after enter returned true), when a partial message ends or its
// connection closes.
func (b *memBudget) release(h *holder) {
	if h.state.Load() == holdEmpty {
		return
	}
	b.mu.Lock()
	b.unlinkLocked(h)
	b.mu.Unlock()
	if h.buf != nil {
		pool.PutBytes(h.buf)
		h.buf = nil
	}
	h.done = 0
	b.held.Add(-h.charge)
	h.charge = 0
	h.state.Store(holdEmpty)
}

// reserve charges n more bytes to h, in the owner's turn. When they do not
// fit, holders older than h are evicted, oldest first, until they do; it
// returns false, charging nothing, if h is the oldest holder left first or
// nothing more can be evicted. A holder not yet listed is the youngest.
func (b *memBudget) reserve(h *holder, n int64) bool {
	for {
		if b.tryAdd(n) {
			h.charge += n
			return true
		}
		// What is evicted may be taken by another owner's tryAdd before
		// ours: evict again until h fits or is the oldest left.
		if !b.evictFor(h, n) {
			if b.tryAdd(n) {
				h.charge += n
				return true
			}
			return false
		}
	}
}

// evictFor evicts idle holders older than h, oldest first, until n more
// bytes fit; it reports whether it evicted any.
func (b *memBudget) evictFor(h *holder, n int64) bool {
	var kills []func()
	b.mu.Lock()
	for v := b.head; v != nil && v != h && b.held.Load()+n > b.limit; {
		next := v.next
		if v.state.CompareAndSwap(holdIdle, holdEvicted) {
			b.unlinkLocked(v)
			if v.buf != nil {
				pool.PutBytes(v.buf)
				v.buf = nil
			}
			b.held.Add(-v.charge)
			v.charge = 0
			b.closes.Add(1)
			kills = append(kills, v.kill)
		}
		v = next
	}
	b.mu.Unlock()
	for _, k := range kills {
		k()
	}
	return len(kills) > 0
}

func (b *memBudget) tryAdd(n int64) bool {
	for {
		cur := b.held.Load()
		if cur+n > b.limit {
			return false
		}
		if b.held.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// list puts h, busy, at the young end of the list, if it is not there.
func (b *memBudget) list(h *holder) {
	if h.state.Load() != holdEmpty {
		return
	}
	h.state.Store(holdBusy)
	b.mu.Lock()
	if !h.listed {
		h.prev, h.next = b.tail, nil
		if b.tail != nil {
			b.tail.next = h
		} else {
			b.head = h
		}
		b.tail = h
		h.listed = true
	}
	b.mu.Unlock()
}

func (b *memBudget) unlinkLocked(h *holder) {
	if !h.listed {
		return
	}
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		b.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		b.tail = h.prev
	}
	h.prev, h.next, h.listed = nil, nil, false
}

// grow makes room in h's buffer for n bytes in all, charging the growth.
func (b *memBudget) grow(h *holder, n int) bool {
	if h.buf != nil && cap(*h.buf) >= n {
		return true
	}
	c := int64(pool.BytesCap(n))
	if !b.reserve(h, c-h.charge) {
		return false
	}
	nb := pool.GetBytes(n)
	if h.buf != nil {
		*nb = append(*nb, *h.buf...)
		pool.PutBytes(h.buf)
	}
	h.buf = nb
	b.list(h)
	return true
}

// chargeConn charges n bytes that an established connection keeps, for as
// long as it keeps them (unchargeConn gives them back). They are not the
// evictor's to take: when they do not fit, the holders of partial messages
// and handshakes are evicted, oldest first, as for a new partial message;
// false, charging nothing, when nothing more can be.
func (b *memBudget) chargeConn(n int64) bool {
	var h holder // not listed: the youngest
	return b.reserve(&h, n)
}

// unchargeConn gives back n bytes that chargeConn charged.
func (b *memBudget) unchargeConn(n int64) { b.held.Add(-n) }

// holdHandshake charges a TLS handshake to h, a holder of nothing yet.
func (b *memBudget) holdHandshake(h *holder) bool {
	if !b.reserve(h, tlsHandshakeCharge) {
		return false
	}
	b.list(h)
	b.leave(h)
	return true
}

// nextFrame returns the next item of a stream, in the owner's turn: the
// partial message h holds completed with bytes taken from the front of
// *rest, or an item framed in *rest itself (zero copy). It returns a nil
// frame when more bytes are needed, having kept what is left of *rest in h.
// A frame is valid until the next call. On a framing error the bytes it
// returns are the broken message's, for appendRawReply; errOverBudget means
// the partial message did not fit. maxMsg is the largest message lim
// allows.
func (b *memBudget) nextFrame(h *holder, rest *[]byte, lim parser.Limits, maxMsg int) ([]byte, parser.FrameKind, error) {
	b.settle(h)
	if h.buf == nil {
		r := *rest
		if len(r) == 0 {
			return nil, 0, nil
		}
		n, kind, err := parser.Frame(r, lim)
		switch {
		case err != nil:
			return r, 0, err
		case n > 0:
			*rest = r[n:]
			return r[:n], kind, nil
		}
		// A partial message: keep it.
		if !b.grow(h, len(r)) {
			return nil, 0, errOverBudget
		}
		*h.buf = append(*h.buf, r...)
		*rest = nil
		return nil, 0, nil
	}
	old := len(*h.buf)
	// A message is at most maxMsg bytes long: no more than that is needed
	// to complete it, or to know that it is too large.
	k := min(len(*rest), max(maxMsg-old, 0))
	if k > 0 {
		if !b.grow(h, old+k) {
			return nil, 0, errOverBudget
		}
		*h.buf = append(*h.buf, (*rest)[:k]...)
	}
	p := *h.buf
	n, kind, err := parser.Frame(p, lim)
	switch {
	case err != nil:
		return p, 0, err
	case n == 0 && k < len(*rest):
		return p, 0, parser.ErrTooLarge
	case n == 0:
		*rest = nil
		return nil, 0, nil
	}
	// What was added past the frame is still in *rest: take it back.
	if n >= old {
		*rest = (*rest)[n-old:]
		*h.buf = p[:n]
	} else {
		// A pong shorter than what was held ("\r\n\r" then "x"): the
		// held bytes after it stay held.
		*h.buf = p[:old]
	}
	h.done = n
	return p[:n], kind, nil
}

// settle drops the frame nextFrame last handed out of h's buffer, giving
// the buffer back when nothing is left in it.
func (b *memBudget) settle(h *holder) {
	if h.done == 0 || h.buf == nil {
		return
	}
	p := *h.buf
	if h.done >= len(p) {
		b.release(h)
		return
	}
	*h.buf = p[:copy(p, p[h.done:])]
	h.done = 0
}

// heldLen is the number of bytes of a partial message h holds.
func (h *holder) heldLen() int {
	if h.buf == nil {
		return 0
	}
	return len(*h.buf) - h.done
}
