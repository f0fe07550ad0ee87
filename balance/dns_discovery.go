package balance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// DiscoveryConfig is one DNS source of members for a pool: an SRV name or a
// host name. Several sources may feed one pool; its members are then the
// union of what they resolve to (an address found twice is kept once, from
// the first source listed).
type DiscoveryConfig struct {
	// Pool names the pool whose members the source provides. Once a source of
	// the pool has resolved, its members replace the pool's configured ones.
	Pool string
	// SRV is an SRV owner name, e.g. "_sip._udp.farm.example.". Each target
	// address becomes a member with the record's port, Weight (0 counts as
	// DefaultWeight) and Priority (SRV priority p becomes Priority p+1, since
	// Priority 0 means the default, 1; capped at MaxPriority); its Transport
	// follows the labels (_sips._tcp: TLS, _sip._tcp: TCP, else UDP).
	SRV string
	// Host is a name whose A and AAAA records are the members (when SRV is
	// empty), each on Port with Transport and Weight.
	Host string
	// Port is the members' port with Host (default 5060, 5061 for TLS).
	Port uint16
	// Transport is the members' transport with Host (default UDP).
	Transport Transport
	// Weight is each member's weight with Host (default DefaultWeight).
	Weight int
}

// Discovery keeps the members of pools in step with DNS. Each source is
// looked up again when its answer's TTL runs out (clamped by the Resolver's
// MinTTL and MaxTTL), and a pool whose set of members changed is republished
// with Balancer.SetMembers: members that stay keep their health marks, and
// the dialogs hashed to them stay where they are. A source that fails (no
// records, server failure) keeps its last members and is retried after the
// negative or failure TTL; a pool is never emptied by DNS.
type Discovery struct {
	bal *Balancer
	r   *Resolver
	log *slog.Logger

	mu      sync.Mutex // serializes rounds; guards srcs' state and applied
	srcs    []*source
	pools   []string // pool names in order of first appearance
	applied map[string][]BackendConfig
}

// source is one DiscoveryConfig and what it last resolved to.
type source struct {
	cfg      DiscoveryConfig
	members  []BackendConfig // sorted by memberOrder
	resolved bool            // a lookup has succeeded at least once
	next     time.Time       // when to look it up again; zero: now
}

// NewDiscovery returns a Discovery feeding bal from r. A nil log discards.
// It does no lookup: call RefreshNow at startup, Run to keep going.
func NewDiscovery(bal *Balancer, r *Resolver, cfgs []DiscoveryConfig, log *slog.Logger) *Discovery {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Discovery{bal: bal, r: r, log: log, applied: make(map[string][]BackendConfig)}
	for _, c := range cfgs {
		d.srcs = append(d.srcs, &source{cfg: c})
		if !slices.Contains(d.pools, c.Pool) {
			d.pools = append(d.pools, c.Pool)
		}
	}
	return d
}

// RefreshNow looks up every source once, whatever its TTL, and applies the
// changes. It returns the lookup and SetMembers errors joined (the pools
// whose sources resolved are updated all the same).
func (d *Discovery) RefreshNow(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.round(ctx, func(*source) bool { return true })
}

// Run refreshes each source when its TTL runs out until ctx ends. Sources
// never looked up are looked up at once. Errors are logged.
func (d *Discovery) Run(ctx context.Context) {
	if len(d.srcs) == 0 {
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		d.mu.Lock()
		now := time.Now()
		if err := d.round(ctx, func(s *source) bool { return !now.Before(s.next) }); err != nil && ctx.Err() == nil {
			d.log.Warn("dns discovery", "err", err)
		}
		next := d.srcs[0].next
		for _, s := range d.srcs[1:] {
			if s.next.Before(next) {
				next = s.next
			}
		}
		d.mu.Unlock()
		timer.Reset(max(time.Until(next), 0))
	}
}

// round looks up the sources due selects, then applies every pool one of
// them feeds. Callers hold d.mu.
func (d *Discovery) round(ctx context.Context, due func(*source) bool) error {
	var errs []error
	touched := make(map[string]bool)
	for _, s := range d.srcs {
		if !due(s) {
			continue
		}
		if err := d.refresh(ctx, s); err != nil {
			errs = append(errs, err)
		}
		touched[s.cfg.Pool] = true
	}
	for _, p := range d.pools {
		if touched[p] {
			if err := d.apply(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// refresh looks s up and records its members and when to look again.
func (d *Discovery) refresh(ctx context.Context, s *source) error {
	var ts []Target
	var ttl time.Duration
	var err error
	c := &s.cfg
	if c.SRV != "" {
		ts, ttl, err = d.r.LookupSRV(ctx, c.SRV)
	} else {
		port := c.Port
		if port == 0 {
			port = c.Transport.DefaultPort()
		}
		ts, ttl, err = d.r.LookupHost(ctx, c.Host, port)
	}
	s.next = time.Now().Add(d.r.clamp(ttl))
	if err != nil {
		return fmt.Errorf("pool %q: %w", c.Pool, err)
	}
	members := make([]BackendConfig, 0, len(ts))
	for _, t := range ts {
		bc := BackendConfig{Addr: t.Addr, Transport: t.Transport, Weight: t.Weight, Priority: min(t.Priority+1, MaxPriority)}
		if c.SRV == "" {
			bc.Transport, bc.Weight, bc.Priority = c.Transport, c.Weight, 0
		}
		members = append(members, bc)
	}
	slices.SortFunc(members, memberOrder)
	s.members, s.resolved = members, true
	return nil
}

// apply publishes the union of the pool's sources if it differs from what
// was last published. Until one of them has resolved, the pool keeps its
// configured members.
func (d *Discovery) apply(pool string) error {
	var members []BackendConfig
	resolved := false
	for _, s := range d.srcs {
		if s.cfg.Pool != pool || !s.resolved {
			continue
		}
		resolved = true
		for _, m := range s.members {
			if !slices.ContainsFunc(members, func(o BackendConfig) bool { return o.Addr == m.Addr }) {
				members = append(members, m)
			}
		}
	}
	if !resolved || len(members) == 0 {
		return nil
	}
	slices.SortFunc(members, memberOrder)
	if prev, ok := d.applied[pool]; ok && slices.Equal(prev, members) {
		return nil
	}
	if err := d.bal.SetMembers(pool, members); err != nil {
		return fmt.Errorf("dns discovery: %w", err)
	}
	d.applied[pool] = members
	d.log.Info("dns discovery: pool members changed", "pool", pool, "members", len(members))
	return nil
}

// memberOrder sorts members by priority, then address and transport, so
// that two resolutions of the same set compare equal.
func memberOrder(a, b BackendConfig) int {
	return cmp.Or(
		cmp.Compare(a.Priority, b.Priority),
		a.Addr.Compare(b.Addr),
		cmp.Compare(a.Transport, b.Transport),
		cmp.Compare(a.Weight, b.Weight))
}
