package balance

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestNegLog2Bound: the estimate of -log2(unit(x)) the weighted choice
// compares stays within a third of log2Slack of math.Log2's (the
// interpolation's bound is 2.8e-6), over random draws and the edges (the
// smallest and largest draws, mantissa steps of the table, powers of two),
// so the bound that proves the fast choice equal to the exact one holds
// with room.
func TestNegLog2Bound(t *testing.T) {
	xs := []uint64{0, 1, 1 << 11, 1<<11 - 1, 1 << 12, math.MaxUint64, math.MaxUint64 - 1<<11, 1 << 63, 1<<63 - 1}
	for k := range 64 {
		xs = append(xs, 1<<k, 1<<k-1, 1<<k+1)
	}
	for i := range 1 << log2Bits {
		xs = append(xs, uint64(i)<<(63-log2Bits)|1<<63, (uint64(i)<<(63-log2Bits)|1<<63)-1<<11)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		xs = append(xs, r.Uint64(), r.Uint64()>>r.IntN(64))
	}
	worst := 0.0
	for _, x := range xs {
		want := -math.Log2(unit(x))
		got := negLog2(x)
		if d := math.Abs(got - want); d > worst {
			worst = d
		}
		if d := math.Abs(got - want); d > log2Slack/3 {
			t.Fatalf("negLog2(%#x) = %.17g, -log2(unit) = %.17g: off by %.3g", x, got, want, d)
		}
	}
	t.Logf("largest error %.3g (slack %g)", worst, log2Slack)
}

// TestRendezvousFastMatchesExact: the weighted choice without logarithms
// picks, for every key, the member the exact scores pick (and top2 the same
// two, in order), for weights close and far apart and the latency-scaled
// weights, so changing to it re-routes no dialog and instances agree.
func TestRendezvousFastMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name    string
		weights []int
		scale   []float64 // latency factors, nil: none
	}{
		{name: "16 of 1-3", weights: cycle(16, 1, 2, 3)},
		{name: "2 of 1,2", weights: []int{1, 2}},
		{name: "3 of 1,65535,1", weights: []int{1, 65535, 1}},
		{name: "8 extremes", weights: cycle(8, 1, 65535, 2, 30000)},
		{name: "40 random", weights: randomWeights(r, 40)},
		{name: "16 latency-scaled", weights: cycle(16, 1), scale: cycleF(16, 1, 0.5, 1, math.Exp2(-10), math.Sqrt2/2)},
	}
	const nkeys = 200_000
	keys := callIDs(nkeys)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bcs := members(len(tc.weights))
			for i, w := range tc.weights {
				bcs[i].Weight = w
			}
			g := onePool(t, HashCallID, bcs).Table().Pool(0).active
			w := &g.hashW
			if tc.scale != nil {
				sw := newWeights(g.avail, tc.scale)
				w = &sw
			}
			if w.uniform {
				t.Fatal("weights are uniform: the test would not reach the fast path")
			}
			near := 0
			for k := range nkeys {
				h := HashKey(keys[k])
				if k%2 == 0 {
					h = r.Uint64()
				}
				if got, want := g.rendezvousWeighted(h, w), g.rendezvousExact(h, w); got != want {
					t.Fatalf("h %#x: fast choice %d, exact %d", h, got, want)
				}
				a, b := g.top2(h, w)
				ea, eb := g.top2Exact(h, w)
				if a != ea || b != eb {
					t.Fatalf("h %#x: top2 fast (%d, %d), exact (%d, %d)", h, a, b, ea, eb)
				}
				if fastUndecided(g, h, w) {
					near++
				}
			}
			if share := float64(near) / nkeys; share > 0.01 {
				t.Errorf("%.4f of keys fell back to the exact scores, want under 1%%", share)
			} else {
				t.Logf("%d of %d keys (%.5f) took the exact scores", near, nkeys, share)
			}
		})
	}
}

// fastUndecided reports whether rendezvousWeighted falls back to the exact
// scores for h: with w.w taken away, the fall back (which reads it) panics.
func fastUndecided(g *group, h uint64, w *weights) bool {
	saved := w.w
	defer func() { w.w = saved }()
	w.w = nil // rendezvousExact would index it: a fall back panics
	undecided := false
	func() {
		defer func() { undecided = recover() != nil }()
		g.rendezvousWeighted(h, w)
	}()
	return undecided
}

func cycle(n int, ws ...int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = ws[i%len(ws)]
	}
	return out
}

func cycleF(n int, fs ...float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = fs[i%len(fs)]
	}
	return out
}

func randomWeights(r *rand.Rand, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1 + r.IntN(100)
	}
	return out
}
