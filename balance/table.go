package balance

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/siplb/siplb/internal/guard"
)

// PoolConfig is one configured pool.
type PoolConfig struct {
	// Name identifies the pool in routing rules and across reloads; it must be
	// non-empty and unique.
	Name string
	// Algorithm chooses among the pool's members (default HashCallID).
	Algorithm Algorithm
	// Backends are the members, at least one; an address may appear only once
	// per pool (it may appear in several pools).
	Backends []BackendConfig
	// BackendSources are the source IPs, besides the members' own
	// address:port, whose requests count as sent by a backend of this pool
	// (a backend that sends from ephemeral ports or opens connections to
	// siplb). A request from a backend may go anywhere its Route or
	// Request-URI says, so list only addresses nobody else can send from.
	BackendSources []netip.Prefix
	// BackendCerts are names (a certificate's Common Name or a DNS SAN)
	// whose verified client certificate makes a TLS peer one of this pool's
	// backends, whatever its address.
	BackendCerts []string

	// Admission (overload.go). MaxCPS is the cap of the members that set
	// none (0: no cap). DisableReplacesAffinity hashes an INVITE with
	// Replaces or Join by its own Call-ID (HashCallID only: the others
	// never follow Replaces). DisableOverloadControl neither offers RFC
	// 7339 overload control to the members nor honours their reports.
	MaxCPS                  float64
	DisableReplacesAffinity bool
	DisableOverloadControl  bool
}

// Table is an immutable snapshot of every pool and member with its effective
// state. The hot path reads it through Balancer.Table without locks; health
// changes and reloads build a new Table and publish it. A Table and the Pools
// and Backends reached from it never change, so a caller may keep using one
// it loaded for the whole processing of a message (or a batch).
type Table struct {
	pools  []*Pool
	byName map[string]PoolID
	byAddr map[netip.AddrPort]*Backend
	srcs   *guard.CIDRSet  // every pool's BackendSources
	certs  map[string]bool // every pool's BackendCerts, lower-cased
	gen    uint64
}

// Pool returns the pool with the given id, or nil if id is out of range.
func (t *Table) Pool(id PoolID) *Pool {
	if uint(id) >= uint(len(t.pools)) {
		return nil
	}
	return t.pools[id]
}

// NumPools returns the number of pools; their ids are 0..NumPools()-1.
func (t *Table) NumPools() int { return len(t.pools) }

// PoolByName returns the id of the pool named name.
func (t *Table) PoolByName(name string) (PoolID, bool) {
	id, ok := t.byName[name]
	return id, ok
}

// Pick is t.Pool(id).Pick(key), returning false also for an unknown id.
func (t *Table) Pick(id PoolID, key []byte) (*Backend, bool) {
	p := t.Pool(id)
	if p == nil {
		return nil, false
	}
	return p.Pick(key)
}

// Lookup finds a configured member by address, in any pool and any state: to
// tell requests that come from a backend, and to check in-dialog requests
// whose Route or Request-URI names a member (then b.Usable() says whether it
// may be sent there). An IPv4-mapped IPv6 address matches the IPv4 member.
// When an address is a member of several pools, the member of the first such
// pool in configuration order is returned. It does not allocate.
func (t *Table) Lookup(addr netip.AddrPort) (*Backend, bool) {
	b, ok := t.byAddr[unmap(addr)]
	return b, ok
}

// BackendSource reports whether ip is in a pool's BackendSources: its
// requests count as a backend's whatever their source port or connection.
// It does not allocate.
func (t *Table) BackendSource(ip netip.Addr) bool { return t.srcs.Contains(ip) }

// BackendCert reports whether a verified certificate name (Common Name or
// DNS SAN) is in a pool's BackendCerts.
func (t *Table) BackendCert(name string) bool { return t.certs[strings.ToLower(name)] }

// HasBackendCerts reports whether any pool lists BackendCerts.
func (t *Table) HasBackendCerts() bool { return len(t.certs) > 0 }

// Generation counts the Tables a Balancer has published: 1 for the first,
// then one more per Reload, SetHealth or SetState that changed something.
func (t *Table) Generation() uint64 { return t.gen }

// overlay is the runtime state a Balancer applies over the configuration
// when it builds a Table.
type overlay struct {
	down  map[netip.AddrPort]bool  // health marks: true = Down
	state map[netip.AddrPort]State // operator overrides from SetState
	stats map[netip.AddrPort]*BackendStats
	lat   map[netip.AddrPort]latencyMark // SetLatency (latency.go)
}

// normalize validates cfgs and returns a deep copy with defaults applied
// (weights, priorities, unmapped addresses), so that later changes by the
// caller cannot reach a Table.
func normalize(cfgs []PoolConfig) ([]PoolConfig, error) {
	if len(cfgs) == 0 {
		return nil, ErrNoPools
	}
	out := make([]PoolConfig, len(cfgs))
	names := make(map[string]bool, len(cfgs))
	for i, pc := range cfgs {
		if pc.Name == "" {
			return nil, fmt.Errorf("pools[%d]: %w", i, ErrPoolName)
		}
		if names[pc.Name] {
			return nil, fmt.Errorf("pools[%d] %q: %w", i, pc.Name, ErrDuplicatePool)
		}
		names[pc.Name] = true
		if pc.Algorithm >= numAlgorithms {
			return nil, fmt.Errorf("pools[%d] %q: %w: %d", i, pc.Name, ErrUnknownAlgorithm, pc.Algorithm)
		}
		if len(pc.Backends) == 0 {
			return nil, fmt.Errorf("pools[%d] %q: %w", i, pc.Name, ErrNoBackends)
		}
		seen := make(map[netip.AddrPort]bool, len(pc.Backends))
		bcs := make([]BackendConfig, len(pc.Backends))
		if err := checkMaxCPS(pc.MaxCPS); err != nil {
			return nil, fmt.Errorf("pools[%d] %q: %w: %v", i, pc.Name, err, pc.MaxCPS)
		}
		for j, bc := range pc.Backends {
			if bc.MaxCPS == 0 {
				bc.MaxCPS = pc.MaxCPS
			}
			if err := normalizeBackend(&bc); err != nil {
				return nil, fmt.Errorf("pools[%d] %q: backends[%d] %s: %w", i, pc.Name, j, bc.Addr, err)
			}
			if seen[bc.Addr] {
				return nil, fmt.Errorf("pools[%d] %q: backends[%d] %s: %w", i, pc.Name, j, bc.Addr, ErrDuplicateBackend)
			}
			seen[bc.Addr] = true
			bcs[j] = bc
		}
		pc.Backends = bcs
		for j, p := range pc.BackendSources {
			if !p.IsValid() {
				return nil, fmt.Errorf("pools[%d] %q: backend_sources[%d]: invalid prefix", i, pc.Name, j)
			}
		}
		pc.BackendSources = slices.Clone(pc.BackendSources)
		out[i] = pc
	}
	return out, nil
}

func normalizeBackend(bc *BackendConfig) error {
	a := bc.Addr.Addr()
	if !a.IsValid() || a.IsUnspecified() || bc.Addr.Port() == 0 {
		return ErrInvalidAddr
	}
	bc.Addr = netip.AddrPortFrom(a.Unmap(), bc.Addr.Port())
	if err := checkZone(a); err != nil {
		return err
	}
	if bc.Transport >= numTransports {
		return fmt.Errorf("%w: %d", ErrUnknownTransport, bc.Transport)
	}
	if bc.Weight < 0 || bc.Weight > MaxWeight {
		return fmt.Errorf("%w: %d (want 0..%d)", ErrWeight, bc.Weight, MaxWeight)
	}
	if bc.Weight == 0 {
		bc.Weight = DefaultWeight
	}
	if bc.Priority < 0 || bc.Priority > MaxPriority {
		return fmt.Errorf("%w: %d (want 0..%d)", ErrPriority, bc.Priority, MaxPriority)
	}
	if bc.Priority == 0 {
		bc.Priority = DefaultPriority
	}
	if bc.State >= numStates {
		return fmt.Errorf("%w: %d", ErrUnknownState, bc.State)
	}
	if err := checkMaxCPS(bc.MaxCPS); err != nil {
		return fmt.Errorf("%w: %v", err, bc.MaxCPS)
	}
	return nil
}

// buildTable builds a Table from normalized configurations and the runtime
// overlay. Round-robin counters are taken over from the pools of prev with
// the same name, so a health change does not restart the rotation.
func buildTable(cfgs []PoolConfig, ov *overlay, prev *Table, gen uint64) *Table {
	t := &Table{
		pools:  make([]*Pool, len(cfgs)),
		byName: make(map[string]PoolID, len(cfgs)),
		byAddr: make(map[netip.AddrPort]*Backend),
		gen:    gen,
	}
	stats := make(map[netip.AddrPort]*BackendStats)
	defer func() { ov.stats = stats }()
	var srcs []netip.Prefix
	defer func() { t.srcs = guard.NewCIDRSet(srcs...) }()
	for i, pc := range cfgs {
		p := &Pool{name: pc.Name, alg: pc.Algorithm, members: make([]*Backend, len(pc.Backends)),
			replaces: pc.Algorithm.CallIDKeyed() && !pc.DisableReplacesAffinity, overload: !pc.DisableOverloadControl}
		if prev != nil {
			if id, ok := prev.byName[pc.Name]; ok {
				p.rr = prev.pools[id].rr
			}
		}
		if p.rr == nil {
			p.rr = new(counter)
		}
		prios := make([]int, 0, 2)
		for j, bc := range pc.Backends {
			b := newBackend(bc, ov, stats, i, j)
			b.setAdmission(&bc)
			p.members[j] = b
			if _, dup := t.byAddr[b.Addr]; !dup {
				t.byAddr[b.Addr] = b
			}
			if !slices.Contains(prios, b.Priority) {
				prios = append(prios, b.Priority)
			}
		}
		slices.Sort(prios)
		p.groups = make([]group, len(prios))
		for k, prio := range prios {
			g := &p.groups[k]
			g.priority = prio
			for _, b := range p.members {
				if b.Priority == prio {
					g.members = append(g.members, b)
				}
			}
			g.prepare()
			if p.active == nil && len(g.avail) > 0 {
				p.active = g
			}
		}
		t.pools[i] = p
		t.byName[pc.Name] = PoolID(i)
		srcs = append(srcs, pc.BackendSources...)
		for _, n := range pc.BackendCerts {
			if t.certs == nil {
				t.certs = make(map[string]bool)
			}
			t.certs[strings.ToLower(n)] = true
		}
	}
	return t
}

// newBackend makes the Table member for a normalized configuration.
func newBackend(bc BackendConfig, ov *overlay, building map[netip.AddrPort]*BackendStats, pool, index int) *Backend {
	cfg := bc.State
	if cfg == Down {
		cfg = Up // Down in the configuration is an initial health mark
	}
	if s, ok := ov.state[bc.Addr]; ok {
		cfg = s
	}
	healthy := !ov.down[bc.Addr]
	st := cfg
	if cfg == Up && !healthy {
		st = Down
	}
	return &Backend{
		Addr:      bc.Addr,
		Transport: bc.Transport,
		AlsoTCP:   bc.AlsoTCP && bc.Transport == UDP,
		Weight:    bc.Weight,
		Priority:  bc.Priority,
		State:     st,
		Stats:     ov.statsFor(bc.Addr, building),
		Pool:      pool,
		Index:     index,
		seed:      backendSeed(bc.Addr, bc.Transport),
		weight:    float64(bc.Weight),
		cfgState:  cfg,
		healthy:   healthy,
		lat:       ov.lat[bc.Addr],
	}
}
