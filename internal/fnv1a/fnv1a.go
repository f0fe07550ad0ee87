// Package fnv1a is the one FNV-1a 64 of the module: the fixed, unseeded
// hash behind balance's rendezvous keys and the engine's branch hashes, so
// that every siplb instance computes the same values (never hash/maphash,
// whose seed is random per process). The functions continue from a running
// hash, so fields hash in one pass with no concatenation; they inline and
// allocate nothing.
//
// The values are part of siplb's wire contract (branch tokens, the backend a
// Call-ID reaches across a farm): changing a constant re-routes every dialog
// during a rolling upgrade.
package fnv1a

// Offset is the FNV-1a 64 offset basis, the hash of nothing.
const Offset uint64 = 14695981039346656037

// prime is the FNV 64 prime.
const prime uint64 = 1099511628211

// Add returns the hash h continued over b.
func Add(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= prime
	}
	return h
}

// AddString is Add over a string.
func AddString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}

// Sep continues h over a separator byte (0xff, which no SIP text field
// holds), so that the fields ("ab", "c") and ("a", "bc") hash apart.
func Sep(h uint64) uint64 { return (h ^ 0xff) * prime }

// Mul is one more multiplication by the prime: a last mixing step for a
// value folded into h with XOR.
func Mul(h uint64) uint64 { return h * prime }

// Mix is the finalizer of SplitMix64: a bijection on uint64 with full
// avalanche. FNV-1a's low bits are weak, so a hash that is compared whole
// (a rendezvous score) or cut into bits goes through Mix first. Like the
// hash, its values are part of the wire contract.
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
