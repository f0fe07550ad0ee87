package balance

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestLatencyMarkUpdate: round trips become half-octave levels above 1 ms,
// an EWMA near a boundary keeps its level, timeouts are counted within the
// window, and no answered probe means no level.
func TestLatencyMarkUpdate(t *testing.T) {
	known := func(level int8) latencyMark { return latencyMark{known: true, level: level} }
	tests := []struct {
		name     string
		old      latencyMark
		rtt      time.Duration
		timeouts int
		want     latencyMark
	}{
		{name: "unmeasured", rtt: 0, want: latencyMark{}},
		{name: "unmeasured with timeouts", rtt: 0, timeouts: 3, want: latencyMark{timeouts: 3}},
		{name: "loopback is the floor", rtt: 80 * time.Microsecond, want: known(0)},
		{name: "1 ms", rtt: time.Millisecond, want: known(0)},
		{name: "2 ms", rtt: 2 * time.Millisecond, want: known(2)},
		{name: "3 ms", rtt: 3 * time.Millisecond, want: known(3)}, // 2·log2(3) = 3.17
		{name: "30 ms", rtt: 30 * time.Millisecond, want: known(9)},
		{name: "an hour is capped", rtt: time.Hour, want: known(maxLatencyLevel)},
		{name: "just above the level keeps it", old: known(2), rtt: 2900 * time.Microsecond, want: known(2)}, // raw 3.07 < 3.25
		{name: "just below the level keeps it", old: known(3), rtt: 2700 * time.Microsecond, want: known(3)}, // raw 2.87 ≥ 2.75
		{name: "clearly above moves", old: known(2), rtt: 3300 * time.Microsecond, want: known(3)},           // raw 3.45
		{name: "clearly below moves", old: known(3), rtt: 2500 * time.Microsecond, want: known(2)},           // raw 2.64
		{name: "timeouts capped at the window", rtt: time.Millisecond, timeouts: 12, want: latencyMark{known: true, timeouts: latencyWindow}},
		{name: "negative timeouts", rtt: time.Millisecond, timeouts: -1, want: known(0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.old.update(tc.rtt, tc.timeouts); got != tc.want {
				t.Errorf("%+v.update(%v, %d) = %+v, want %+v", tc.old, tc.rtt, tc.timeouts, got, tc.want)
			}
		})
	}
}

// TestLatencyShares: under least-latency a member whose round trip is 8
// times the others' (or that lost 3 of its last probes) takes about an
// eighth of their share of new dialogs, and under least-latency-p2c none
// (of three, any two candidates include a fast one); with no measurements
// both choose exactly as hash-callid does; with even latencies too.
func TestLatencyShares(t *testing.T) {
	const nkeys = 60_000
	keys := callIDs(nkeys)
	slow := backendAt(2)
	tests := []struct {
		name     string
		alg      Algorithm
		rtt      [3]time.Duration // 0: not measured
		timeouts [3]int
		// wantSlow is the share of the slow member; -1: the choice is
		// hash-callid's for every key.
		wantSlow float64
	}{
		{name: "least-latency unmeasured", alg: LeastLatency, wantSlow: -1},
		{name: "p2c unmeasured", alg: LeastLatencyP2C, wantSlow: -1},
		{name: "least-latency even", alg: LeastLatency, rtt: [3]time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}, wantSlow: -1},
		{name: "p2c even", alg: LeastLatencyP2C, rtt: [3]time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}, wantSlow: -1},
		{name: "least-latency 8x slower", alg: LeastLatency, rtt: [3]time.Duration{time.Millisecond, time.Millisecond, 8 * time.Millisecond}, wantSlow: 0.125 / 2.125},
		{name: "least-latency slow, others unmeasured", alg: LeastLatency, rtt: [3]time.Duration{0, time.Millisecond, 8 * time.Millisecond}, wantSlow: 0.125 / 2.125},
		{name: "least-latency 3 timeouts", alg: LeastLatency, rtt: [3]time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}, timeouts: [3]int{0, 0, 3}, wantSlow: 0.125 / 2.125},
		{name: "p2c 8x slower", alg: LeastLatencyP2C, rtt: [3]time.Duration{time.Millisecond, time.Millisecond, 8 * time.Millisecond}, wantSlow: 0},
		{name: "p2c 1 timeout", alg: LeastLatencyP2C, rtt: [3]time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}, timeouts: [3]int{0, 0, 1}, wantSlow: 0},
	}
	want := assignment(t, onePool(t, HashCallID, members(3)).Table().Pool(0), keys)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bal := onePool(t, tc.alg, members(3))
			for i := range 3 {
				bal.SetLatency(backendAt(i), tc.rtt[i], tc.timeouts[i])
			}
			got := assignment(t, bal.Table().Pool(0), keys)
			if tc.wantSlow < 0 {
				if !slices.Equal(got, want) {
					t.Error("the choice differs from hash-callid's")
				}
				return
			}
			n := 0
			for _, a := range got {
				if a == slow {
					n++
				}
			}
			share := float64(n) / nkeys
			if share < tc.wantSlow-0.01 || share > tc.wantSlow+0.01 {
				t.Errorf("slow member's share %.4f, want %.4f ± 0.01", share, tc.wantSlow)
			}
			if b, _ := bal.Table().Lookup(slow); b.LatencyCost() == 0 {
				t.Errorf("slow member's LatencyCost() = 0")
			}
		})
	}
}

// TestLatencyMovement: when one member gets slower, the dialogs that move
// are new dialogs leaving that member only: a key of a fast member stays,
// under both latency algorithms, so the choice stays sticky per Call-ID
// for everything else.
func TestLatencyMovement(t *testing.T) {
	keys := callIDs(30_000)
	for _, alg := range []Algorithm{LeastLatency, LeastLatencyP2C} {
		t.Run(alg.String(), func(t *testing.T) {
			bcs := members(6)
			bcs[1].Weight = 3
			bal := onePool(t, alg, bcs)
			for i := range 6 {
				bal.SetLatency(backendAt(i), 2*time.Millisecond, 0)
			}
			before := assignment(t, bal.Table().Pool(0), keys)
			slow := backendAt(4)
			if !bal.SetLatency(slow, 20*time.Millisecond, 0) {
				t.Fatal("SetLatency published no Table")
			}
			after := assignment(t, bal.Table().Pool(0), keys)
			moved := 0
			for i := range keys {
				if before[i] == after[i] {
					continue
				}
				moved++
				if before[i] != slow {
					t.Fatalf("key %q moved %v -> %v, though only %v got slower", keys[i], before[i], after[i], slow)
				}
			}
			if moved == 0 {
				t.Error("no key left the slow member")
			}
		})
	}
}

// TestSetLatencyPublishes: a new Table comes only when a mark changes and
// a pool that chooses by latency lists the address; marks outlive a
// Reload, which may switch a pool to a latency algorithm.
func TestSetLatencyPublishes(t *testing.T) {
	bal := onePool(t, HashCallID, members(3))
	gen := bal.Table().Generation()
	if bal.SetLatency(backendAt(0), 10*time.Millisecond, 0) || bal.Table().Generation() != gen {
		t.Fatal("SetLatency published a Table for a hash-callid pool")
	}
	bal.SetLatency(backendAt(1), time.Millisecond, 0)
	if bal.SetLatency(netip.MustParseAddrPort("10.9.9.9:5060"), time.Millisecond, 0) {
		t.Fatal("SetLatency published a Table for an unknown address")
	}
	if err := bal.Reload([]PoolConfig{{Name: "p", Algorithm: LeastLatency, Backends: members(3)}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := bal.Table().Lookup(backendAt(0)); b.LatencyCost() == 0 {
		t.Error("the mark set before the Reload is lost")
	}
	steps := []struct {
		rtt      time.Duration
		timeouts int
		publish  bool
	}{
		{rtt: 10 * time.Millisecond, publish: false}, // the same mark
		{rtt: 11 * time.Millisecond, publish: false}, // within the hysteresis
		{rtt: 20 * time.Millisecond, publish: true},  // a level up
		{rtt: 20 * time.Millisecond, timeouts: 1, publish: true},
		{rtt: 20 * time.Millisecond, timeouts: 1, publish: false},
		{rtt: 0, timeouts: 1, publish: true}, // forgotten (no answered probe)
	}
	for i, s := range steps {
		gen := bal.Table().Generation()
		got := bal.SetLatency(backendAt(0), s.rtt, s.timeouts)
		if got != s.publish || (bal.Table().Generation() != gen) != s.publish {
			t.Errorf("step %d (%v, %d timeouts): published %v (generation %d -> %d), want %v",
				i, s.rtt, s.timeouts, got, gen, bal.Table().Generation(), s.publish)
		}
	}
}

// TestLatencyPerGroup: costs are relative to the fastest member of the
// same priority group, and a slow backup group does not change the choice
// in the active one.
func TestLatencyPerGroup(t *testing.T) {
	bcs := members(4)
	bcs[2].Priority, bcs[3].Priority = 2, 2
	bal := onePool(t, LeastLatency, bcs)
	for i, rtt := range []time.Duration{4 * time.Millisecond, 4 * time.Millisecond, 64 * time.Millisecond, 128 * time.Millisecond} {
		bal.SetLatency(backendAt(i), rtt, 0)
	}
	tab := bal.Table()
	for i, want := range []int{0, 0, 0, 2} {
		if b, _ := tab.Lookup(backendAt(i)); b.LatencyCost() != want {
			t.Errorf("member %d: LatencyCost() = %d, want %d", i, b.LatencyCost(), want)
		}
	}
}
