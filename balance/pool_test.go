package balance

import (
	"net/netip"
	"testing"
)

// TestPickDistribution: every algorithm spreads 30k picks over three equal
// members within ±5% of a third each, and respects 2:1 weights (the round
// robins exactly, hashing and random within ±5%).
func TestPickDistribution(t *testing.T) {
	const n = 30_000
	keys := callIDs(n)
	tests := []struct {
		name    string
		alg     Algorithm
		weights []int
		exact   bool // a deterministic rotation: counts must match exactly
	}{
		{name: "hash-callid equal", alg: HashCallID, weights: []int{1, 1, 1}},
		{name: "hash-from-user equal", alg: HashFromUser, weights: []int{1, 1, 1}},
		{name: "hash-to-user equal", alg: HashToUser, weights: []int{1, 1, 1}},
		{name: "hash-ruri equal", alg: HashRequestURI, weights: []int{1, 1, 1}},
		{name: "round-robin equal", alg: RoundRobin, weights: []int{1, 1, 1}, exact: true},
		{name: "weighted-round-robin equal", alg: WeightedRoundRobin, weights: []int{1, 1, 1}, exact: true},
		{name: "random equal", alg: Random, weights: []int{1, 1, 1}},
		{name: "hash-callid 2:1", alg: HashCallID, weights: []int{2, 1}},
		{name: "hash-callid 3:2:1", alg: HashCallID, weights: []int{3, 2, 1}},
		{name: "weighted-round-robin 2:1", alg: WeightedRoundRobin, weights: []int{2, 1}, exact: true},
		{name: "weighted-round-robin 5:3:2", alg: WeightedRoundRobin, weights: []int{5, 3, 2}, exact: true},
		{name: "weighted-round-robin large 60000:30000", alg: WeightedRoundRobin, weights: []int{60000, 30001}},
		{name: "random 2:1", alg: Random, weights: []int{2, 1}},
		{name: "round-robin ignores weights", alg: RoundRobin, weights: []int{2, 1}, exact: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bcs := members(len(tc.weights))
			total := 0
			for i, w := range tc.weights {
				bcs[i].Weight = w
				total += w
			}
			p := onePool(t, tc.alg, bcs).Table().Pool(0)
			got := counts(t, p, keys, n)
			for i, bc := range bcs {
				share := float64(tc.weights[i]) / float64(total)
				if tc.alg == RoundRobin {
					share = 1 / float64(len(bcs))
				}
				want := share * n
				tol := 0.05 * want
				if tc.exact {
					tol = 1
				}
				if d := float64(got[bc.Addr]) - want; d > tol || d < -tol {
					t.Errorf("%v got %d picks, want %.0f ± %.0f (all: %v)", bc.Addr, got[bc.Addr], want, tol, got)
				}
			}
		})
	}
}

// TestWeightedRoundRobinSmooth: the weighted rotation interleaves members
// instead of sending runs of Weight picks to one of them.
func TestWeightedRoundRobinSmooth(t *testing.T) {
	bcs := members(3)
	bcs[0].Weight, bcs[1].Weight, bcs[2].Weight = 5, 1, 1
	p := onePool(t, WeightedRoundRobin, bcs).Table().Pool(0)
	run, longest := 0, 0
	var last netip.AddrPort
	for range 70 {
		b, _ := p.Pick(nil)
		if b.Addr == last {
			run++
		} else {
			run = 1
		}
		last = b.Addr
		longest = max(longest, run)
	}
	// A blocked rotation gives a run of 5 (plus wrap-around); smooth WRR
	// spreads the two others so that at most 4 in a row (across the cycle
	// boundary) go to the heavy member.
	if longest > 4 {
		t.Errorf("longest run of one member = %d, want ≤ 4 for weights 5:1:1", longest)
	}
}

// TestPickPriority: lower Priority numbers take all new dialogs; the next
// group takes over only while no member of every higher group is Up, and
// traffic returns when one comes back.
func TestPickPriority(t *testing.T) {
	bcs := []BackendConfig{
		{Addr: backendAt(0), Priority: 1},
		{Addr: backendAt(1)}, // default priority 1
		{Addr: backendAt(2), Priority: 2},
		{Addr: backendAt(3), Priority: 10},
	}
	keys := callIDs(2000)
	for _, alg := range []Algorithm{HashCallID, RoundRobin, WeightedRoundRobin, Random} {
		t.Run(alg.String(), func(t *testing.T) {
			bal := onePool(t, alg, bcs)
			steps := []struct {
				name string
				addr netip.AddrPort
				up   bool
				want []netip.AddrPort
			}{
				{name: "all up", want: []netip.AddrPort{backendAt(0), backendAt(1)}},
				{name: "one of group 1 down", addr: backendAt(0), want: []netip.AddrPort{backendAt(1)}},
				{name: "group 1 down", addr: backendAt(1), want: []netip.AddrPort{backendAt(2)}},
				{name: "group 2 down", addr: backendAt(2), want: []netip.AddrPort{backendAt(3)}},
				{name: "group 1 back", addr: backendAt(1), up: true, want: []netip.AddrPort{backendAt(1)}},
			}
			for _, st := range steps {
				if st.addr.IsValid() && !bal.SetHealth(st.addr, st.up) {
					t.Fatalf("%s: SetHealth(%v, %v) changed nothing", st.name, st.addr, st.up)
				}
				got := counts(t, bal.Table().Pool(0), keys, len(keys))
				for addr := range got {
					if !containsAddr(st.want, addr) {
						t.Errorf("%s: picked %v, want only %v", st.name, addr, st.want)
					}
				}
				for _, w := range st.want {
					if got[w] == 0 {
						t.Errorf("%s: %v never picked", st.name, w)
					}
				}
			}
		})
	}
}

// TestPickStates: Down, Disabled and Draining members take no new dialogs;
// when none is Up, Pick fails (the caller answers 503) instead of failing
// open; Draining and Up members stay Usable for in-dialog requests.
func TestPickStates(t *testing.T) {
	tests := []struct {
		name       string
		states     []State
		wantPicked []int // indexes that may be picked; nil: Pick must fail
		wantUsable []bool
	}{
		{name: "all up", states: []State{Up, Up, Up}, wantPicked: []int{0, 1, 2}, wantUsable: []bool{true, true, true}},
		{name: "draining skipped", states: []State{Draining, Up, Up}, wantPicked: []int{1, 2}, wantUsable: []bool{true, true, true}},
		{name: "disabled skipped", states: []State{Disabled, Up, Draining}, wantPicked: []int{1}, wantUsable: []bool{false, true, true}},
		{name: "initially down", states: []State{Down, Up, Up}, wantPicked: []int{1, 2}, wantUsable: []bool{false, true, true}},
		{name: "all draining", states: []State{Draining, Draining, Draining}, wantUsable: []bool{true, true, true}},
		{name: "none up", states: []State{Down, Disabled, Draining}, wantUsable: []bool{false, false, true}},
	}
	keys := callIDs(600)
	for _, tc := range tests {
		for _, alg := range []Algorithm{HashCallID, RoundRobin, WeightedRoundRobin, Random} {
			t.Run(tc.name+"/"+alg.String(), func(t *testing.T) {
				bcs := members(len(tc.states))
				for i, s := range tc.states {
					bcs[i].State = s
				}
				tab := onePool(t, alg, bcs).Table()
				p := tab.Pool(0)
				for i, bc := range bcs {
					m, ok := tab.Lookup(bc.Addr)
					if !ok {
						t.Fatalf("Lookup(%v) failed", bc.Addr)
					}
					if m.Usable() != tc.wantUsable[i] {
						t.Errorf("%v (%v): Usable() = %v, want %v", bc.Addr, m.State, m.Usable(), tc.wantUsable[i])
					}
				}
				if tc.wantPicked == nil {
					if b, ok := p.Pick([]byte("k")); ok {
						t.Fatalf("Pick = %v, want failure (no member up)", b.Addr)
					}
					if _, ok := p.PickHash(1); ok {
						t.Fatal("PickHash succeeded with no member up")
					}
					return
				}
				got := counts(t, p, keys, len(keys))
				for i, bc := range bcs {
					allowed := containsInt(tc.wantPicked, i)
					if !allowed && got[bc.Addr] > 0 {
						t.Errorf("%v (%v) picked %d times", bc.Addr, tc.states[i], got[bc.Addr])
					}
					if allowed && got[bc.Addr] == 0 {
						t.Errorf("%v (%v) never picked", bc.Addr, tc.states[i])
					}
				}
			})
		}
	}
}

// TestPickHashMatchesPick: PickHash(HashKey(k)) is Pick(k) for hashed pools.
func TestPickHashMatchesPick(t *testing.T) {
	bcs := members(5)
	bcs[2].Weight = 4
	p := onePool(t, HashToUser, bcs).Table().Pool(0)
	for _, k := range callIDs(1000) {
		a, _ := p.Pick(k)
		b, _ := p.PickHash(HashKey(k))
		if a != b {
			t.Fatalf("key %q: Pick = %v, PickHash = %v", k, a.Addr, b.Addr)
		}
	}
}

// TestRoundRobinSurvivesHealthChange: the rotation continues across Tables
// (the counter is shared by pool name), so a health flap does not send the
// next picks to the first member again.
func TestRoundRobinSurvivesHealthChange(t *testing.T) {
	bal := onePool(t, RoundRobin, members(3))
	first, _ := bal.Table().Pool(0).Pick(nil)
	bal.SetHealth(backendAt(2), false)
	bal.SetHealth(backendAt(2), true)
	second, _ := bal.Table().Pool(0).Pick(nil)
	if first.Addr == second.Addr {
		t.Errorf("two consecutive round-robin picks across a reload both chose %v", first.Addr)
	}
}

func TestCoprimeStride(t *testing.T) {
	for _, total := range []uint64{1, 2, 7, 4097, 90001, 65535 * 16} {
		s := coprimeStride(total)
		if gcd(s, total) != 1 {
			t.Errorf("coprimeStride(%d) = %d, not coprime", total, s)
		}
	}
}

func containsAddr(s []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
