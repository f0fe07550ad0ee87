package pool

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
)

// ConnID names one connection for as long as it is open: a slot, a
// generation, whether siplb opened the connection, whether its peer proved
// by a certificate to be a backend, and 30 random bits, so an
// id that outlives its connection never finds another one that took the
// slot, and an id cannot be guessed from another (a token minted for one
// connection never addresses another, not even after a restart). The zero
// ConnID names none. It fits in 16 hex digits of a Via branch or a
// Record-Route parameter.
type ConnID uint64

const (
	slotBits = 22
	// MaxSlots is the most connections a Registry holds at once.
	MaxSlots    = 1<<slotBits - 1
	genMask     = 1<<(32-slotBits) - 1
	outboundBit = 1 << 32
	trustedBit  = 1 << 33
	randomShift = 34
)

func (id ConnID) slot() uint32 { return uint32(id) & MaxSlots }

// Outbound reports whether the connection was opened by siplb (to a
// backend or a client's address), not accepted from a peer. Only the
// engine makes ConnIDs, so a sender cannot set this bit: an id read back
// from a token is checked against the registry before use.
func (id ConnID) Outbound() bool { return id&outboundBit != 0 }

// Trusted reports whether the connection was accepted from a peer whose
// verified certificate names a backend (AddTrusted).
func (id ConnID) Trusted() bool { return id&trustedBit != 0 }

// Errors of Add, the reasons a connection is refused.
var (
	ErrTooManyConns  = errors.New("connection limit reached")
	ErrTooManyFromIP = errors.New("connection limit for this source IP reached")
)

type entry[T any] struct {
	id ConnID
	v  *T
}

// Registry names open connections by ConnID and enforces the caps on
// connections in total and per source IP.
type Registry[T any] struct {
	slots []atomic.Pointer[entry[T]]
	open  atomic.Int64

	mu    sync.Mutex
	gens  []uint16
	free  []uint32
	next  uint32
	perIP map[netip.Addr]int
	lim   Limits
	rnd   *rand.ChaCha8 // the random part of ids; guarded by mu
}

// NewRegistry returns a registry for at most lim.MaxConns connections.
func NewRegistry[T any](lim Limits) *Registry[T] {
	lim = lim.Defaults()
	if lim.MaxConns > MaxSlots {
		lim.MaxConns = MaxSlots
	}
	return &Registry[T]{
		slots: make([]atomic.Pointer[entry[T]], lim.MaxConns+1),
		gens:  make([]uint16, lim.MaxConns+1),
		next:  1, // slot 0 stays empty so that ConnID 0 names nothing
		perIP: make(map[netip.Addr]int),
		lim:   lim,
		rnd:   rand.NewChaCha8(seed()),
	}
}

// seed returns 32 bytes from the system's CSPRNG.
func seed() (s [32]byte) {
	if _, err := crand.Read(s[:]); err != nil {
		// crypto/rand does not fail on Linux; keep the process up anyway
		// with a seed from the runtime's own random source.
		for i := 0; i < len(s); i += 8 {
			binary.LittleEndian.PutUint64(s[i:], rand.Uint64())
		}
	}
	return s
}

// Add registers v. An inbound connection counts against its source IP's cap;
// every connection counts against the total.
func (r *Registry[T]) Add(v *T, peer netip.Addr, inbound bool) (ConnID, error) {
	return r.add(v, peer, inbound, false)
}

// AddTrusted registers an inbound connection whose peer proved to be a
// backend (a verified client certificate the operator listed): its id says
// so (Trusted).
func (r *Registry[T]) AddTrusted(v *T, peer netip.Addr) (ConnID, error) {
	return r.add(v, peer, true, true)
}

func (r *Registry[T]) add(v *T, peer netip.Addr, inbound, trusted bool) (ConnID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if inbound && r.perIP[peer] >= r.lim.MaxConnsPerIP {
		return 0, ErrTooManyFromIP
	}
	var slot uint32
	switch {
	case len(r.free) > 0:
		// Oldest freed first: a slot comes back only after every other free
		// one, so a stale id meets its slot's next generations as late as
		// possible (a client cycling connections cannot walk one slot
		// through its generations).
		slot = r.free[0]
		r.free = r.free[1:]
	case int(r.next) < len(r.slots):
		slot = r.next
		r.next++
	default:
		return 0, ErrTooManyConns
	}
	r.gens[slot] = (r.gens[slot] + 1) & genMask
	if r.gens[slot] == 0 {
		r.gens[slot] = 1
	}
	id := ConnID(r.rnd.Uint64()&^(1<<randomShift-1) | uint64(r.gens[slot])<<slotBits | uint64(slot))
	if !inbound {
		id |= outboundBit
	}
	if trusted {
		id |= trustedBit
	}
	r.slots[slot].Store(&entry[T]{id: id, v: v})
	if inbound {
		r.perIP[peer]++
	}
	r.open.Add(1)
	return id, nil
}

// Remove forgets id; a stale id is ignored.
func (r *Registry[T]) Remove(id ConnID, peer netip.Addr, inbound bool) {
	s := id.slot()
	if s == 0 || int(s) >= len(r.slots) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.slots[s].Load()
	if e == nil || e.id != id {
		return
	}
	r.slots[s].Store(nil)
	r.free = append(r.free, s)
	if inbound {
		if n := r.perIP[peer] - 1; n > 0 {
			r.perIP[peer] = n
		} else {
			delete(r.perIP, peer)
		}
	}
	r.open.Add(-1)
}

// Get returns the connection id names, or nil if it has closed. Lock-free.
func (r *Registry[T]) Get(id ConnID) *T {
	s := id.slot()
	if s == 0 || int(s) >= len(r.slots) {
		return nil
	}
	e := r.slots[s].Load()
	if e == nil || e.id != id {
		return nil
	}
	return e.v
}

// Len is the number of open connections.
func (r *Registry[T]) Len() int { return int(r.open.Load()) }

// FromIP is the number of open inbound connections from peer: what its cap
// (Limits.MaxConnsPerIP) is counted against.
func (r *Registry[T]) FromIP(peer netip.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.perIP[peer]
}

// Range calls f for every open connection until f returns false. It sees a
// consistent slot at a time, not a snapshot of all.
func (r *Registry[T]) Range(f func(ConnID, *T) bool) {
	for i := range r.slots {
		if e := r.slots[i].Load(); e != nil {
			if !f(e.id, e.v) {
				return
			}
		}
	}
}
