package balance

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Balancer publishes the current Table. Readers (the data path) call Table or
// Pick, which are one atomic load and never block. Writers (Reload, SetHealth,
// SetState: the configuration loader, health checkers, the admin API) are
// serialized by a mutex, rebuild a whole Table off the hot path and Store it;
// a reader that loaded the previous Table keeps a consistent view of it.
type Balancer struct {
	table atomic.Pointer[Table]

	mu   sync.Mutex // serializes writers; guards cfgs and ov
	cfgs []PoolConfig
	ov   overlay
}

// New validates pools and returns a Balancer publishing the first Table.
// Validation requires at least one pool; names non-empty and unique; at
// least one member per pool; valid, specified addresses with a non-zero port,
// each at most once per pool; Weight and Priority within 0..MaxWeight and
// 0..MaxPriority (0 meaning the defaults); known Algorithm, Transport and
// State values. Errors wrap the sentinels above with the pool and member.
// New copies pools; the caller may reuse them.
func New(pools []PoolConfig) (*Balancer, error) {
	cfgs, err := normalize(pools)
	if err != nil {
		return nil, err
	}
	b := &Balancer{
		cfgs: cfgs,
		ov:   overlay{down: make(map[netip.AddrPort]bool), state: make(map[netip.AddrPort]State)},
	}
	markInitialDown(cfgs, nil, b.ov.down)
	b.table.Store(buildTable(cfgs, &b.ov, nil, 1))
	return b, nil
}

// Table returns the current Table. It is an atomic load: lock-free, no
// allocation. Load it once per message (or batch) and use it throughout.
func (b *Balancer) Table() *Table { return b.table.Load() }

// Pick is b.Table().Pick(pool, key): a backend for a new dialog in the given
// pool of the current Table; false if the pool is unknown or has no member
// Up. It does not allocate.
func (b *Balancer) Pick(pool PoolID, key []byte) (*Backend, bool) {
	return b.table.Load().Pick(pool, key)
}

// Reload validates pools and publishes a Table built from them. A state set
// by SetState outlives the reload while the configuration of its address is
// unchanged: the same pools list it with the same Transport, Weight,
// Priority and State. When any of those lines changes (or the address
// leaves every pool) the override is dropped and the new configuration's
// state applies. Health marks of members whose address is still configured
// are kept, and those of removed members forgotten. Round-robin positions
// carry over by pool name. On error the current Table stays published.
func (b *Balancer) Reload(pools []PoolConfig) error {
	cfgs, err := normalize(pools)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.table.Load()
	down := make(map[netip.AddrPort]bool, len(b.ov.down))
	for _, pc := range cfgs {
		for _, bc := range pc.Backends {
			if b.ov.down[bc.Addr] {
				down[bc.Addr] = true
			}
		}
	}
	markInitialDown(cfgs, prev, down)
	state := make(map[netip.AddrPort]State, len(b.ov.state))
	if len(b.ov.state) > 0 {
		before, after := configLines(b.cfgs), configLines(cfgs)
		for a, s := range b.ov.state {
			if l, ok := after[a]; ok && slices.Equal(l, before[a]) {
				state[a] = s
			}
		}
	}
	b.cfgs = cfgs
	b.ov = overlay{down: down, state: state, stats: b.ov.stats, lat: b.ov.lat}
	b.table.Store(buildTable(cfgs, &b.ov, prev, prev.gen+1))
	return nil
}

// Override returns the state SetState set for addr and that is still in
// force (not cleared by setting the configured state again, nor dropped by a
// Reload that changed the address's configuration); false when the
// configuration's state applies.
func (b *Balancer) Override(addr netip.AddrPort) (State, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.ov.state[unmap(addr)]
	return s, ok
}

// configLine is what the configuration says about one address in one pool;
// an override survives a Reload only if these stay the same.
type configLine struct {
	pool      string
	transport Transport
	weight    int
	priority  int
	state     State
}

// configLines returns the lines of every configured address, in pool order.
func configLines(cfgs []PoolConfig) map[netip.AddrPort][]configLine {
	out := make(map[netip.AddrPort][]configLine)
	for _, pc := range cfgs {
		for _, bc := range pc.Backends {
			out[bc.Addr] = append(out[bc.Addr], configLine{pool: pc.Name, transport: bc.Transport, weight: bc.Weight, priority: bc.Priority, state: bc.State})
		}
	}
	return out
}

// operatorState is the operator's state the configuration gives bc: Down
// there is an initial health mark, so it means Up.
func operatorState(bc BackendConfig) State {
	if bc.State == Down {
		return Up
	}
	return bc.State
}

// SetHealth records the health of every member with address addr (in all
// pools) and, if that changes the mark, publishes a new Table in which those
// members are Up (up) or Down (!up). The mark does not override the
// operator's Disabled or Draining: such a member keeps that State, and the
// mark applies when the operator returns it to Up (Backend.Healthy shows it
// meanwhile). SetHealth returns whether the mark changed (and a Table was
// published); false for an address that is not configured.
func (b *Balancer) SetHealth(addr netip.AddrPort, up bool) bool {
	addr = unmap(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.table.Load()
	if _, ok := prev.byAddr[addr]; !ok {
		return false
	}
	if b.ov.down[addr] == !up {
		return false
	}
	if up {
		delete(b.ov.down, addr)
	} else {
		b.ov.down[addr] = true
	}
	b.table.Store(buildTable(b.cfgs, &b.ov, prev, prev.gen+1))
	return true
}

// SetState sets the operator's state (Up, Disabled or Draining) of every
// member with address addr, in every pool that lists it, as the admin API's
// drain does. The state is kept as an override of the configuration until
// SetState sets the state the configuration gives (which clears it: an
// undrain of a member configured up) or a Reload changes that address's
// configuration (see Reload). It publishes a new Table when the state
// changes and reports whether it did. It returns ErrState for Down (health
// marks go through SetHealth) or an unknown State, and ErrUnknownBackend for
// an address that is not configured.
func (b *Balancer) SetState(addr netip.AddrPort, s State) (bool, error) {
	if s == Down || s >= numStates {
		return false, ErrState
	}
	addr = unmap(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.table.Load()
	if _, ok := prev.byAddr[addr]; !ok {
		return false, ErrUnknownBackend
	}
	changed := false
	for _, p := range prev.pools {
		for _, m := range p.members {
			if m.Addr == addr && m.cfgState != s {
				changed = true
			}
		}
	}
	configured := true
	for _, pc := range b.cfgs {
		for _, bc := range pc.Backends {
			if bc.Addr == addr && operatorState(bc) != s {
				configured = false
			}
		}
	}
	if configured {
		delete(b.ov.state, addr)
	} else {
		b.ov.state[addr] = s
	}
	if !changed {
		return false, nil
	}
	b.table.Store(buildTable(b.cfgs, &b.ov, prev, prev.gen+1))
	return true, nil
}

// ErrUnknownPool is returned by SetMembers for a pool name that is not
// configured.
var ErrUnknownPool = errors.New("no such pool")

// SetMembers replaces the members of the pool named pool, as DNS discovery
// does when a farm's records change, and publishes a new Table. members are
// validated as by New (at least one, no address twice); on error the current
// Table stays published. Health marks and operator states (SetState) of
// addresses that stay configured are kept; those of addresses that leave
// every pool are forgotten; a new member configured Down starts Down. Since
// hashing is rendezvous, keys held by members that stay do not move. Other
// pools, and round-robin positions, are untouched. The caller may reuse
// members afterwards.
func (b *Balancer) SetMembers(pool string, members []BackendConfig) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	idx := slices.IndexFunc(b.cfgs, func(pc PoolConfig) bool { return pc.Name == pool })
	if idx < 0 {
		return fmt.Errorf("pool %q: %w", pool, ErrUnknownPool)
	}
	next := slices.Clone(b.cfgs)
	next[idx].Backends = members
	cfgs, err := normalize(next)
	if err != nil {
		return err
	}
	prev := b.table.Load()
	present := make(map[netip.AddrPort]bool)
	for _, pc := range cfgs {
		for _, bc := range pc.Backends {
			present[bc.Addr] = true
		}
	}
	ov := overlay{down: make(map[netip.AddrPort]bool), state: make(map[netip.AddrPort]State), stats: b.ov.stats, lat: b.ov.lat}
	for a := range b.ov.down {
		if present[a] {
			ov.down[a] = true
		}
	}
	for a, s := range b.ov.state {
		if present[a] {
			ov.state[a] = s
		}
	}
	markInitialDown(cfgs, prev, ov.down)
	b.cfgs = cfgs
	b.ov = ov
	b.table.Store(buildTable(cfgs, &b.ov, prev, prev.gen+1))
	return nil
}

// markInitialDown marks Down the members configured with State Down that are
// not members of prev (all of them when prev is nil).
func markInitialDown(cfgs []PoolConfig, prev *Table, down map[netip.AddrPort]bool) {
	for _, pc := range cfgs {
		for _, bc := range pc.Backends {
			if bc.State != Down {
				continue
			}
			if prev != nil {
				if _, ok := prev.byAddr[bc.Addr]; ok {
					continue
				}
			}
			down[bc.Addr] = true
		}
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}
