package guard

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// v4Key marks the keys of IPv4 sources. It puts them in ffff:ffff::/32 of
// the IPv6 /64 key space, inside ff00::/8 (multicast, RFC 4291 §2.7), which
// is never the source of a datagram, so no IPv6 /64 shares a key with an
// IPv4 address.
const v4Key = 0xffff_ffff_0000_0000

// sourceKey is the 64-bit key a source's counters live under. An IPv4
// address, or an IPv4-mapped IPv6 address once unmapped (a dual-stack socket
// reports IPv4 senders that way), is its own key. An IPv6 address is keyed
// by its /64: one host commonly owns a whole /64 (RFC 4941 temporary
// addresses, RFC 8273 /64 per host) and could otherwise rotate through it to
// evade any per-address count.
func sourceKey(ip netip.Addr) uint64 {
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Is4() {
		a := ip.As4()
		return v4Key | uint64(binary.BigEndian.Uint32(a[:]))
	}
	a := ip.As16()
	return binary.BigEndian.Uint64(a[:8])
}

// mix scrambles k with a per-table seed (a 64-bit finalizer of the
// multiply-xorshift kind). The seed is drawn at random per table, so a remote
// sender cannot pick addresses that land in the set of a source it wants to
// crowd out; unlike the Call-ID hash, nothing needs this hash to agree
// across instances.
func mix(k, seed uint64) uint64 {
	k ^= seed
	k ^= k >> 32
	k *= 0xd6e8feb86659fd93
	k ^= k >> 32
	k *= 0xd6e8feb86659fd93
	k ^= k >> 32
	return k
}

// newSeed draws a table's hash seed.
func newSeed() uint64 { return rand.Uint64() }

// tableBits returns the number of index bits of a table of at least n
// slots: n rounded up to a power of two.
func tableBits(n int) uint {
	if n <= 1 {
		return 0
	}
	return uint(bits.Len(uint(n - 1)))
}
