package balance

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"

	"github.com/siplb/siplb/internal/fnv1a"
)

// PoolID is the index of a Pool in a Table. IDs follow the order of the
// configuration, so an ID resolved once stays valid across reloads only as
// long as the configuration keeps the pool at that position; resolve names
// with Table.PoolByName after a reload.
type PoolID int

// Pool is one named pool of a Table: its members, grouped by priority, and
// the algorithm that chooses among them. It is immutable, apart from the
// round-robin counter it shares with the same pool in other Tables.
type Pool struct {
	name    string
	alg     Algorithm
	members []*Backend // configuration order
	groups  []group    // ascending Priority number: highest priority first
	active  *group     // first group with an Up member; nil if none
	rr      *counter

	replaces, overload bool // ReplacesAffinity, OverloadControl (overload.go)
}

// group is one priority group of a pool, with everything Pick needs
// precomputed from the members that are Up in this Table.
type group struct {
	priority  int
	members   []*Backend // all members of this priority, configuration order
	avail     []*Backend // members whose effective State is Up
	seeds     []uint64   // avail[i].seed, contiguous for the hashing loop
	hashW     weights    // the configured weights of avail: the hashed algorithms
	latW      weights    // the weights scaled by latency (latency.go): LeastLatency
	cost      []int16    // latency cost level of avail[i] (latency.go): LeastLatencyP2C
	latUneven bool       // some cost is not 0: latW is not hashW
	cum       []uint64   // cumulative weights of avail, for weighted draws
	total     uint64     // sum of the weights of avail
	slots     []int32    // smooth weighted round-robin sequence (indexes into avail), when short enough
	stride    uint64     // otherwise: a step coprime to total, walking [0,total) in scattered order
}

// weights are the rendezvous weights of a group's avail members.
type weights struct {
	uniform bool      // all the same: scores compare by the raw draws
	w       []float64 // w[i] of avail[i], > 0
	inv     []float64 // 1/w[i]
	// The members by class of equal weight, for rendezvousWeighted: the
	// seeds of class k are seeds[classes[k-1].end:classes[k].end], and
	// order maps a position there to the index in avail.
	seeds   []uint64
	order   []int32
	classes []weightClass
}

// weightClass is one run of members of equal weight in weights.seeds.
type weightClass struct {
	end   int     // one past its last position
	inv   float64 // 1/w of its members
	slack float64 // log2Slack*inv
}

// counter is a round-robin position shared by every Table version of a pool
// with the same name, padded to its own cache line.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

// maxSlots bounds the precomputed smooth weighted round-robin sequence; pools
// whose reduced total weight is larger step through the cumulative weights
// with a stride instead.
const maxSlots = 4096

// Name returns the pool's configured name.
func (p *Pool) Name() string { return p.name }

// Algorithm returns the pool's selection algorithm.
func (p *Pool) Algorithm() Algorithm { return p.alg }

// Key returns the part of src the pool's algorithm hashes (Algorithm.Key),
// the key to hand to Pick for a new dialog.
func (p *Pool) Key(src KeySource) []byte { return p.alg.Key(src) }

// Backends returns every member of the pool, in configuration order, in any
// state. The slice belongs to the Table: do not modify it.
func (p *Pool) Backends() []*Backend { return p.members }

// Pick chooses a backend for a new dialog (an initial request). It considers
// only members that are Up (never Down, Disabled or Draining), and only those
// of the highest-priority group (lowest Priority number) that has one. For a
// hashed algorithm it is a pure function of key and the Table: the same key
// yields the same member on every instance with the same configuration and
// health; key is not retained, and an empty key is hashed like any other.
// Other algorithms ignore key. Pick returns false when no member is Up; the
// caller then answers 503 (Pick never fails open). Safe for concurrent use;
// it does not allocate.
func (p *Pool) Pick(key []byte) (*Backend, bool) {
	var h uint64
	if p.alg.Hashed() {
		h = HashKey(key)
	}
	return p.pick(h)
}

// pick is Pick with the key's HashKey h computed (unused by the algorithms
// that do not hash).
func (p *Pool) pick(h uint64) (*Backend, bool) {
	g := p.active
	if g == nil {
		return nil, false
	}
	switch p.alg {
	case RoundRobin:
		return g.avail[p.rr.n.Add(1)%uint64(len(g.avail))], true
	case WeightedRoundRobin:
		return g.weightedRoundRobin(p.rr.n.Add(1) - 1), true
	case Random:
		return g.random(), true
	case LeastLatency:
		return g.avail[g.rendezvous(h, &g.latW)], true
	case LeastLatencyP2C:
		return g.avail[g.p2c(h)], true
	default:
		return g.avail[g.rendezvous(h, &g.hashW)], true
	}
}

// PickHash is Pick for a hashed algorithm with the key's HashKey already
// computed, for callers that route one key to several pools. It uses
// rendezvous hashing over the configured weights whatever the pool's
// Algorithm.
func (p *Pool) PickHash(h uint64) (*Backend, bool) {
	g := p.active
	if g == nil {
		return nil, false
	}
	return g.avail[g.rendezvous(h, &g.hashW)], true
}

// rendezvous returns the index in avail of the member with the highest
// score weightedScore(w[i], fnv1a.Mix(h^seeds[i])) for key hash h. With equal
// weights the score is monotone in the draw, so the raw draws are compared
// and no logarithm is taken. Ties (probability 2^-64) go to the larger
// seed, so that list order never matters.
func (g *group) rendezvous(h uint64, w *weights) int {
	if w.uniform {
		best := 0
		var top uint64
		for i, s := range g.seeds {
			x := fnv1a.Mix(h ^ s)
			if i == 0 || x > top || (x == top && s > g.seeds[best]) {
				best, top = i, x
			}
		}
		return best
	}
	return g.rendezvousWeighted(h, w)
}

// rendezvousWeighted is rendezvous for unequal weights without a logarithm
// per member. Within a class of equal weight the score is monotone in the
// draw, so the largest draw (top 53 bits, those unit uses) is the class's
// winner, found with integers as in the uniform case; only the classes'
// winners get a cost, -log2(u)/w estimated by negLog2 (hash.go). The class
// winner of least cost wins when its cost plus its slack is below the cost
// minus the slack of every other (low is the least of those lower bounds).
// A near tie, across classes or within one (draws closer than classGap,
// where the exact scores could round alike), takes the exact scores.
func (g *group) rendezvousWeighted(h uint64, w *weights) int {
	best, start := -1, 0
	var bestC, bestE float64
	low := math.Inf(1)
	for _, cl := range w.classes {
		var top, second uint64
		at := 0
		seeds := w.seeds[start:cl.end]
		for j, s := range seeds {
			v := fnv1a.Mix(h^s) >> 11
			if v > top {
				second, top, at = top, v, j
			} else if v > second {
				second = v
			}
		}
		if len(seeds) > 1 && top-second < classGap {
			return g.rendezvousExact(h, w)
		}
		c := negLog2(top<<11) * cl.inv
		if best < 0 || c < bestC {
			if best >= 0 {
				low = min(low, bestC-bestE)
			}
			best, bestC, bestE = start+at, c, cl.slack
		} else {
			low = min(low, c-cl.slack)
		}
		start = cl.end
	}
	if low > bestC+bestE {
		return int(w.order[best])
	}
	return g.rendezvousExact(h, w)
}

// classGap is the least gap between the two largest draws of a weight class
// (in units of unit's 2^-53) that rendezvousWeighted trusts: 2^-41 apart,
// the exact scores of the two differ by far more than their rounding.
const classGap = 1 << 12

// rendezvousExact is the definition rendezvousWeighted shortcuts: the
// highest weightedScore, ties to the larger seed.
func (g *group) rendezvousExact(h uint64, w *weights) int {
	best := 0
	var top float64
	for i, s := range g.seeds {
		sc := weightedScore(w.w[i], fnv1a.Mix(h^s))
		if i == 0 || sc > top || (sc == top && s > g.seeds[best]) {
			best, top = i, sc
		}
	}
	return best
}

// weightedRoundRobin returns the member for the n-th pick.
func (g *group) weightedRoundRobin(n uint64) *Backend {
	if g.slots != nil {
		return g.avail[g.slots[n%uint64(len(g.slots))]]
	}
	// (n mod total) * stride mod total visits every residue once per cycle.
	hi, lo := bits.Mul64(n%g.total, g.stride)
	return g.avail[g.search(bits.Rem64(hi, lo, g.total))]
}

// random returns a member drawn with probability proportional to its weight.
func (g *group) random() *Backend {
	if g.hashW.uniform {
		return g.avail[rand.IntN(len(g.avail))]
	}
	return g.avail[g.search(rand.Uint64N(g.total))]
}

// search returns the index i of avail with cum[i-1] <= r < cum[i].
func (g *group) search(r uint64) int {
	lo, hi := 0, len(g.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if g.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// prepare fills the selection fields of g from g.members.
func (g *group) prepare() {
	for _, b := range g.members {
		if b.State == Up {
			g.avail = append(g.avail, b)
		}
	}
	if len(g.avail) == 0 {
		return
	}
	g.seeds = make([]uint64, len(g.avail))
	g.cum = make([]uint64, len(g.avail))
	var div uint64
	for i, b := range g.avail {
		g.seeds[i] = b.seed
		g.total += uint64(b.Weight)
		g.cum[i] = g.total
		div = gcd(div, uint64(b.Weight))
	}
	g.hashW = newWeights(g.avail, nil)
	g.prepareLatency()
	if reduced := g.total / div; reduced <= maxSlots {
		g.slots = smoothSlots(g.avail, div, reduced)
	} else {
		g.stride = coprimeStride(g.total)
	}
}

// newWeights returns the rendezvous weights of avail: each member's Weight,
// times scale[i] when scale is not nil.
func newWeights(avail []*Backend, scale []float64) weights {
	n := len(avail)
	w := weights{uniform: true, w: make([]float64, n), inv: make([]float64, n),
		seeds: make([]uint64, 0, n), order: make([]int32, 0, n)}
	for i, b := range avail {
		w.w[i] = b.weight
		if scale != nil {
			w.w[i] *= scale[i]
		}
		w.inv[i] = 1 / w.w[i]
		if w.w[i] != w.w[0] {
			w.uniform = false
		}
	}
	done := make([]bool, n)
	for i := range avail {
		if done[i] {
			continue
		}
		for j := i; j < n; j++ {
			if !done[j] && w.w[j] == w.w[i] {
				done[j] = true
				w.seeds = append(w.seeds, avail[j].seed)
				w.order = append(w.order, int32(j))
			}
		}
		w.classes = append(w.classes, weightClass{end: len(w.seeds), inv: w.inv[i], slack: log2Slack * w.inv[i]})
	}
	return w
}

// smoothSlots builds one cycle of smooth weighted round robin (each member
// appears Weight/div times, spread out rather than in runs).
func smoothSlots(avail []*Backend, div, total uint64) []int32 {
	slots := make([]int32, total)
	cur := make([]int64, len(avail))
	for k := range slots {
		best := 0
		for i, b := range avail {
			cur[i] += int64(uint64(b.Weight) / div)
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(total)
		slots[k] = int32(best)
	}
	return slots
}

// coprimeStride returns a step near total/φ that is coprime to total, so that
// multiples of it modulo total are a scattered permutation of [0,total).
func coprimeStride(total uint64) uint64 {
	s := uint64(float64(total)*0.6180339887) | 1
	for gcd(s, total) != 1 {
		s++
	}
	return s
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
