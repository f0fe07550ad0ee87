package balance

import (
	"math"

	"github.com/siplb/siplb/internal/fnv1a"
)

// The hash is fixed so that every siplb instance with the same configuration
// makes the same choice for the same key, across processes, restarts and
// versions: FNV-1a 64 over the key, then the splitmix64 finalizer over the
// key hash XOR a per-backend seed. Never hash/maphash (random per process).
// Changing any constant here re-routes every dialog of a farm during a rolling
// upgrade; TestHashStable pins the values.
// HashKey returns the FNV-1a 64 hash of key, the value rendezvous hashing
// starts from. It does not retain key.
func HashKey(key []byte) uint64 { return fnv1a.Add(fnv1a.Offset, key) }

// hashString is HashKey over a string, for seeds built off the hot path.
func hashString(s string) uint64 { return fnv1a.AddString(fnv1a.Offset, s) }

// unit maps x to the open interval (0, 1) using its top 53 bits.
func unit(x uint64) float64 {
	return (float64(x>>11) + 0.5) * 0x1p-53
}

// weightedScore is the weighted rendezvous score -w/ln(u): the member with
// the highest score wins, and each member wins a share of keys proportional
// to its weight (the score is an exponential race with rate 1/w). It is the
// definition of the weighted choice; the hot path computes it only when the
// cheap bound below cannot tell the winner (see group.rendezvousWeighted).
func weightedScore(w float64, x uint64) float64 {
	return -w / math.Log(unit(x))
}

// The fast weighted choice. Maximizing -w/ln(u) is minimizing -log2(u)/w, so
// a member's cost is a cheap estimate of -log2(unit(x)) times its
// precomputed 1/w: the float's exponent plus a linear interpolation of
// log2 over a table of the mantissa's top log2Bits bits (and only the
// largest draws of each class of equal weight need one: group.rendezvousWeighted).
// The interpolation is off by at most h²/8 times the largest |second
// derivative| of log2, 2^-16/8/ln2 ≈ 2.8e-6 (h = 2^-8); log2Slack bounds
// it, and the rounding of both computations (relative 1e-15 of values below
// 54), with room to spare. A winner whose cost, plus its slack, is below
// every other member's cost minus theirs is the winner of the exact scores
// too; otherwise (a near tie: 1e-5 to 1e-3 of keys, by the weights) the
// exact scores decide. So the choice is weightedScore's for every key,
// whatever the table's last bits: the shortcut re-routes no dialog.
const (
	log2Bits  = 8
	log2Slack = 1e-5
)

// log2Tab[i] is log2(1 + i/2^log2Bits); log2Step[i] is
// log2Tab[i+1]-log2Tab[i], the slope of the interpolation.
var log2Tab, log2Step = func() (tab, step [1 << log2Bits]float64) {
	const n = 1 << log2Bits
	for i := range n {
		tab[i] = math.Log2(1 + float64(i)/n)
		step[i] = math.Log2(1+float64(i+1)/n) - tab[i]
	}
	return tab, step
}()

// negLog2 estimates -log2(unit(x)) within log2Slack. unit(x) is f·2^-53
// with f = x>>11 + 0.5 in [0.5, 2^53), so -log2 is 53 - log2(f): the
// exponent of f, and log2 of its mantissa from the table.
func negLog2(x uint64) float64 {
	f := math.Float64bits(float64(x>>11) + 0.5)
	exp := int64(f>>52) - 1023
	m := f & (1<<52 - 1)
	i := m >> (52 - log2Bits)
	frac := float64(m&(1<<(52-log2Bits)-1)) * (1.0 / (1 << (52 - log2Bits)))
	return float64(53-exp) - (log2Tab[i] + log2Step[i]*frac)
}
