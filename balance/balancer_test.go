package balance

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

func TestSetHealth(t *testing.T) {
	bcs := members(3)
	bcs[1].State = Draining
	bcs[2].State = Disabled
	bal := onePool(t, HashCallID, bcs)
	steps := []struct {
		name        string
		addr        netip.AddrPort
		up          bool
		wantChanged bool
		wantState   State
		wantHealthy bool
	}{
		{name: "down", addr: backendAt(0), wantChanged: true, wantState: Down},
		{name: "down again", addr: backendAt(0), wantState: Down},
		{name: "up", addr: backendAt(0), up: true, wantChanged: true, wantState: Up, wantHealthy: true},
		{name: "up again", addr: backendAt(0), up: true, wantState: Up, wantHealthy: true},
		{name: "draining stays draining", addr: backendAt(1), wantChanged: true, wantState: Draining},
		{name: "disabled stays disabled", addr: backendAt(2), wantChanged: true, wantState: Disabled},
		{name: "mapped address", addr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:5060"), wantChanged: true, wantState: Down},
		{name: "unknown address", addr: backendAt(50)},
	}
	for _, st := range steps {
		gen := bal.Table().Generation()
		changed := bal.SetHealth(st.addr, st.up)
		if changed != st.wantChanged {
			t.Errorf("%s: SetHealth(%v, %v) = %v, want %v", st.name, st.addr, st.up, changed, st.wantChanged)
		}
		if got := bal.Table().Generation(); (got != gen) != st.wantChanged {
			t.Errorf("%s: generation %d -> %d, changed = %v", st.name, gen, got, st.wantChanged)
		}
		b, ok := bal.Table().Lookup(st.addr)
		if !ok {
			continue
		}
		if b.State != st.wantState || b.Healthy() != st.wantHealthy {
			t.Errorf("%s: %v state %v healthy %v, want %v %v", st.name, st.addr, b.State, b.Healthy(), st.wantState, st.wantHealthy)
		}
	}
}

// TestSetHealthAllPools: a health mark is about a host, so it applies to the
// address in every pool.
func TestSetHealthAllPools(t *testing.T) {
	bal, err := New([]PoolConfig{{Name: "a", Backends: members(2)}, {Name: "b", Backends: members(1)}})
	if err != nil {
		t.Fatal(err)
	}
	old := bal.Table()
	bal.SetHealth(backendAt(0), false)
	tab := bal.Table()
	if _, ok := tab.Pool(1).Pick(nil); ok {
		t.Error("pool b still picks its only member after it went down")
	}
	if b, _ := tab.Pool(0).Pick([]byte("x")); b.Addr != backendAt(1) {
		t.Errorf("pool a picked %v, want %v", b.Addr, backendAt(1))
	}
	if old.Pool(0).Backends()[0].State != Up {
		t.Error("the previous Table changed: Tables must be immutable")
	}
}

func TestSetState(t *testing.T) {
	bal := onePool(t, HashCallID, members(2))
	steps := []struct {
		name        string
		addr        netip.AddrPort
		state       State
		wantChanged bool
		wantErr     error
		wantState   State
	}{
		{name: "drain", addr: backendAt(0), state: Draining, wantChanged: true, wantState: Draining},
		{name: "drain again", addr: backendAt(0), state: Draining, wantState: Draining},
		{name: "disable", addr: backendAt(0), state: Disabled, wantChanged: true, wantState: Disabled},
		{name: "enable", addr: backendAt(0), state: Up, wantChanged: true, wantState: Up},
		{name: "down refused", addr: backendAt(0), state: Down, wantErr: ErrState, wantState: Up},
		{name: "unknown", addr: backendAt(9), state: Draining, wantErr: ErrUnknownBackend},
	}
	for _, st := range steps {
		changed, err := bal.SetState(st.addr, st.state)
		if !errors.Is(err, st.wantErr) || changed != st.wantChanged {
			t.Errorf("%s: SetState = %v, %v; want %v, %v", st.name, changed, err, st.wantChanged, st.wantErr)
		}
		if b, ok := bal.Table().Lookup(st.addr); ok && b.State != st.wantState {
			t.Errorf("%s: state %v, want %v", st.name, b.State, st.wantState)
		}
	}
	// Draining then health down, then undrain: the health mark applies.
	bal.SetState(backendAt(1), Draining)
	bal.SetHealth(backendAt(1), false)
	if b, _ := bal.Table().Lookup(backendAt(1)); b.State != Draining || !b.Usable() {
		t.Errorf("draining member after health down: %v usable %v, want draining usable", b.State, b.Usable())
	}
	bal.SetState(backendAt(1), Up)
	if b, _ := bal.Table().Lookup(backendAt(1)); b.State != Down || b.ConfigState() != Up {
		t.Errorf("after undrain: state %v config %v, want down up", b.State, b.ConfigState())
	}
}

func TestReload(t *testing.T) {
	bcs := members(4)
	bcs[3].State = Down // initial health mark
	bal := onePool(t, HashCallID, bcs)
	bal.SetHealth(backendAt(1), false)
	bal.SetHealth(backendAt(2), false)
	bal.SetHealth(backendAt(3), true)
	bal.SetState(backendAt(0), Draining)
	gen := bal.Table().Generation()

	// Member 2 leaves; member 5 joins; the pool is renamed and joined by another.
	next := []BackendConfig{bcs[0], bcs[1], bcs[3], {Addr: backendAt(5), State: Down}}
	if err := bal.Reload([]PoolConfig{{Name: "other", Backends: members(1)}, {Name: "p", Algorithm: RoundRobin, Backends: next}}); err != nil {
		t.Fatal(err)
	}
	tab := bal.Table()
	if tab.Generation() != gen+1 {
		t.Errorf("generation %d, want %d", tab.Generation(), gen+1)
	}
	id, ok := tab.PoolByName("p")
	if !ok || id != 1 || tab.Pool(id).Algorithm() != RoundRobin {
		t.Fatalf(`PoolByName("p") = %d, %v`, id, ok)
	}
	want := []struct {
		addr  netip.AddrPort
		state State
		why   string
	}{
		{addr: backendAt(0), state: Up, why: "SetState override dropped: the address joined pool other, a configuration change"},
		{addr: backendAt(1), state: Down, why: "health mark kept"},
		{addr: backendAt(3), state: Up, why: "configured Down is an initial mark only"},
		{addr: backendAt(5), state: Down, why: "new member configured Down"},
	}
	for _, w := range want {
		var b *Backend
		for _, m := range tab.Pool(id).Backends() {
			if m.Addr == w.addr {
				b = m
			}
		}
		if b == nil {
			t.Fatalf("%v missing after reload", w.addr)
		}
		if b.State != w.state {
			t.Errorf("%v: state %v, want %v (%s)", w.addr, b.State, w.state, w.why)
		}
	}
	// The mark of the removed member is forgotten: re-adding it brings it Up.
	if err := bal.Reload([]PoolConfig{{Name: "p", Backends: bcs[:3]}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := bal.Table().Lookup(backendAt(2)); b.State != Up {
		t.Errorf("re-added member: state %v, want up", b.State)
	}
	// A failed reload keeps the current Table.
	cur := bal.Table()
	if err := bal.Reload([]PoolConfig{{Name: "p"}}); !errors.Is(err, ErrNoBackends) {
		t.Errorf("Reload(no backends) = %v, want ErrNoBackends", err)
	}
	if bal.Table() != cur {
		t.Error("a failed Reload replaced the Table")
	}
}

// TestReloadOverrides: a state set at runtime outlives a Reload until the
// configuration of that address changes (a line of it: pool, transport,
// weight, priority, state) or the operator sets the configured state again.
func TestReloadOverrides(t *testing.T) {
	tests := []struct {
		name      string
		set       State // SetState on member 0 before the reload
		clear     bool  // then SetState(configured state) before the reload
		edit      func(bcs []BackendConfig) []PoolConfig
		wantState State
		wantKept  bool
	}{
		{name: "unchanged keeps drain", set: Draining,
			edit: func(bcs []BackendConfig) []PoolConfig { return []PoolConfig{{Name: "p", Backends: bcs}} }, wantState: Draining, wantKept: true},
		{name: "unchanged keeps disable", set: Disabled,
			edit: func(bcs []BackendConfig) []PoolConfig { return []PoolConfig{{Name: "p", Backends: bcs}} }, wantState: Disabled, wantKept: true},
		{name: "other member changed keeps drain", set: Draining,
			edit: func(bcs []BackendConfig) []PoolConfig {
				bcs[1].Weight = 7
				return []PoolConfig{{Name: "p", Backends: bcs}}
			}, wantState: Draining, wantKept: true},
		{name: "another pool added keeps drain", set: Draining,
			edit: func(bcs []BackendConfig) []PoolConfig {
				return []PoolConfig{{Name: "p", Backends: bcs}, {Name: "q", Backends: []BackendConfig{{Addr: backendAt(8)}}}}
			}, wantState: Draining, wantKept: true},
		{name: "weight changed drops", set: Draining,
			edit: func(bcs []BackendConfig) []PoolConfig {
				bcs[0].Weight = 2
				return []PoolConfig{{Name: "p", Backends: bcs}}
			}, wantState: Up},
		{name: "priority changed drops", set: Disabled,
			edit: func(bcs []BackendConfig) []PoolConfig {
				bcs[0].Priority = 3
				return []PoolConfig{{Name: "p", Backends: bcs}}
			}, wantState: Up},
		{name: "state line changed drops", set: Disabled,
			edit: func(bcs []BackendConfig) []PoolConfig {
				bcs[0].State = Draining
				return []PoolConfig{{Name: "p", Backends: bcs}}
			}, wantState: Draining},
		{name: "transport changed drops", set: Draining,
			edit: func(bcs []BackendConfig) []PoolConfig {
				bcs[0].Transport = TCP
				return []PoolConfig{{Name: "p", Backends: bcs}}
			}, wantState: Up},
		{name: "removed and re-added forgets", set: Draining,
			edit: func(bcs []BackendConfig) []PoolConfig { return []PoolConfig{{Name: "p", Backends: bcs[1:]}} }, wantState: Up},
		{name: "cleared by undrain", set: Draining, clear: true,
			edit: func(bcs []BackendConfig) []PoolConfig { return []PoolConfig{{Name: "p", Backends: bcs}} }, wantState: Up},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bal := onePool(t, HashCallID, members(3))
			if _, err := bal.SetState(backendAt(0), tc.set); err != nil {
				t.Fatal(err)
			}
			if s, ok := bal.Override(backendAt(0)); !ok || s != tc.set {
				t.Fatalf("Override after SetState(%v) = %v, %v", tc.set, s, ok)
			}
			if tc.clear {
				bal.SetState(backendAt(0), Up)
				if s, ok := bal.Override(backendAt(0)); ok {
					t.Fatalf("Override after setting the configured state = %v, want none", s)
				}
			}
			if err := bal.Reload(tc.edit(members(3))); err != nil {
				t.Fatal(err)
			}
			if tc.name == "removed and re-added forgets" {
				if err := bal.Reload([]PoolConfig{{Name: "p", Backends: members(3)}}); err != nil {
					t.Fatal(err)
				}
			}
			b, ok := bal.Table().Lookup(backendAt(0))
			if !ok {
				t.Fatal("member 0 missing")
			}
			if b.State != tc.wantState {
				t.Errorf("state after reload %v, want %v", b.State, tc.wantState)
			}
			if _, kept := bal.Override(backendAt(0)); kept != tc.wantKept {
				t.Errorf("override kept = %v, want %v", kept, tc.wantKept)
			}
			if tc.wantKept {
				if p, _ := bal.Table().Pool(0).Pick([]byte("any")); p.Addr == backendAt(0) {
					t.Error("an overridden (not up) member was picked after the reload")
				}
			}
		})
	}
}

// TestSetStateConfigured: an override equal to the configuration is not
// kept, whatever the configured state (a member configured draining and
// undrained at runtime keeps the override up).
func TestSetStateConfigured(t *testing.T) {
	bcs := members(2)
	bcs[1].State = Draining
	bal := onePool(t, HashCallID, bcs)
	bal.SetState(backendAt(1), Up)
	if s, ok := bal.Override(backendAt(1)); !ok || s != Up {
		t.Errorf("undrain of a member configured draining: override %v, %v; want up, true", s, ok)
	}
	if err := bal.Reload([]PoolConfig{{Name: "p", Backends: bcs}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := bal.Table().Lookup(backendAt(1)); b.State != Up {
		t.Errorf("after an unchanged reload: %v, want up (the runtime state outlives it)", b.State)
	}
	bal.SetState(backendAt(1), Draining)
	if _, ok := bal.Override(backendAt(1)); ok {
		t.Error("setting the configured state (draining) kept an override")
	}
}

// TestConcurrentPickAndPublish runs Picks and Lookups on every algorithm while
// health changes and reloads publish new Tables; run with -race. Every pick
// must come from a member that is Up in the Table it was made on, and pools
// whose members cannot all be down must always answer.
func TestConcurrentPickAndPublish(t *testing.T) {
	cfg := func(alg Algorithm) []PoolConfig {
		pools := make([]PoolConfig, 0, numAlgorithms)
		for a := range numAlgorithms {
			pools = append(pools, PoolConfig{Name: a.String(), Algorithm: a, Backends: members(4)})
		}
		pools = append(pools, PoolConfig{Name: "stable", Algorithm: alg, Backends: []BackendConfig{{Addr: backendAt(10)}}})
		return pools
	}
	bal, err := New(cfg(HashCallID))
	if err != nil {
		t.Fatal(err)
	}
	keys := callIDs(256)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var picks atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				tab := bal.Table()
				for id := range PoolID(tab.NumPools()) {
					b, ok := tab.Pick(id, keys[(i+w)%len(keys)])
					if ok && b.State != Up {
						t.Errorf("picked %v in state %v", b.Addr, b.State)
						return
					}
					if !ok && tab.Pool(id).Name() == "stable" {
						t.Error("stable pool failed to pick")
						return
					}
					if ok {
						if l, found := tab.Lookup(b.Addr); !found || l.Addr != b.Addr {
							t.Errorf("Lookup(%v) = %v, %v", b.Addr, l, found)
							return
						}
					}
					picks.Add(1)
				}
			}
		})
	}
	for i := range 300 {
		bal.SetHealth(backendAt(i%4), i%3 == 0)
		if i%50 == 0 {
			if err := bal.Reload(cfg(Algorithm(i % int(numAlgorithms)))); err != nil {
				t.Error(err)
			}
		}
		if i%7 == 0 {
			bal.SetState(backendAt((i+1)%4), Draining)
		}
	}
	stop.Store(true)
	wg.Wait()
	if picks.Load() == 0 {
		t.Error("no picks ran")
	}
}
