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

// mix is the splitmix64 finalizer: a bijection on uint64 with full avalanche,
// so that the per-backend draws mix(h^seed) behave as independent uniforms.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// unit maps x to the open interval (0, 1) using its top 53 bits.
func unit(x uint64) float64 {
	return (float64(x>>11) + 0.5) * 0x1p-53
}

// weightedScore is the weighted rendezvous score -w/ln(u): the member with
// the highest score wins, and each member wins a share of keys proportional
// to its weight (the score is an exponential race with rate 1/w).
func weightedScore(w float64, x uint64) float64 {
	return -w / math.Log(unit(x))
}
