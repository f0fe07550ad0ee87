package engine

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// parseIP parses an IPv4 dotted quad or an IPv6 address (without brackets)
// from header bytes without making a string. It reports false for anything
// else, including host names.
func parseIP(b []byte) (netip.Addr, bool) {
	if len(b) >= 2 && b[0] == '[' && b[len(b)-1] == ']' {
		b = b[1 : len(b)-1]
	}
	// A dotted quad, the common case, in one pass; parseIPv4 stops at the
	// first byte that is neither a digit nor a dot, so an IPv6 address or
	// a host name costs it a byte or two before the scan for a colon.
	if ip, ok := parseIPv4(b); ok {
		return ip, true
	}
	for _, c := range b {
		if c == ':' {
			return parseIPv6(b)
		}
	}
	return netip.Addr{}, false
}

// parseIPv4 parses a dotted quad (four decimal octets of 1-3 digits, no
// leading zeros, each at most 255) that is all of b. The bytes go into
// two words and are classified eight at a time: a byte-at-a-time loop
// ends each octet on a branch that the octet's length decides, and those
// branches are mispredicted when the Via parses around it have filled the
// predictor's history. The checks left are ones a valid address passes.
func parseIPv4(b []byte) (netip.Addr, bool) {
	n := len(b)
	if n < 7 || n > 15 {
		return netip.Addr{}, false // "0.0.0.0" to "255.255.255.255"
	}
	// Bytes 0-7 in lo and 8-14 in hi, first byte lowest, zeros past n.
	var lo, hi uint64
	if n >= 8 {
		lo = binary.LittleEndian.Uint64(b)
		hi = binary.LittleEndian.Uint64(b[n-8:]) >> uint(8*(16-n))
	} else {
		lo = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[3:]))<<24
	}
	if (lo|hi)&highs != 0 {
		return netip.Addr{}, false
	}
	dots := byteMask(eqMask(lo, '.')) | byteMask(eqMask(hi, '.'))<<8
	digits := byteMask(digitMask(lo)) | byteMask(digitMask(hi))<<8
	if dots|digits != 1<<n-1 || bits.OnesCount32(dots) != 3 {
		return netip.Addr{}, false
	}
	d1 := bits.TrailingZeros32(dots)
	dots &= dots - 1
	d2 := bits.TrailingZeros32(dots)
	dots &= dots - 1
	d3 := bits.TrailingZeros32(dots)
	// Only digits lie between the dots now. Each octet's digits are read
	// as the three bytes that end it (all inside b: d2 >= 3), the ones
	// before its start counted for nothing; the first octet's from b[0].
	l1, l2, l3, l4 := d1, d2-d1-1, d3-d2-1, n-d3-1
	if uint(l1-1) >= 3 || uint(l2-1) >= 3 || uint(l3-1) >= 3 || uint(l4-1) >= 3 {
		return netip.Addr{}, false
	}
	v1 := uint(b[0] - '0')
	if l1 >= 2 {
		v1 = v1*10 + uint(b[1]-'0')
	}
	if l1 == 3 {
		v1 = v1*10 + uint(b[2]-'0')
	}
	v2, z2 := octetAt(b, d2, l2)
	v3, z3 := octetAt(b, d3, l3)
	v4, z4 := octetAt(b, n, l4)
	// No leading zeros ("01" is not an address) and nothing over 255.
	z1 := b[0] == '0' && l1 > 1
	if v1|v2|v3|v4 > 255 || z1 || z2 || z3 || z4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{byte(v1), byte(v2), byte(v3), byte(v4)}), true
}

// octetAt is the value of the l (1-3) digits that end at b[e], e >= 3, and
// whether the first of them is a leading zero. Selects, not branches, pick
// the digits that count.
func octetAt(b []byte, e, l int) (v uint, zero bool) {
	x := b[e-3 : e]
	d0, d1, d2 := uint(x[0]-'0'), uint(x[1]-'0'), uint(x[2]-'0')
	v, first := d2, d2
	if l >= 2 {
		v, first = v+d1*10, d1
	}
	if l == 3 {
		v, first = v+d0*100, d0
	}
	return v, first == 0 && l > 1
}

// eqMask flags exactly the bytes of x equal to c (their high bits): no
// borrow crosses a byte.
func eqMask(x uint64, c byte) uint64 {
	y := x ^ uint64(c)*ones
	return ^((y&low7s + low7s) | y) & highs
}

// digitMask flags the bytes of x that are '0'-'9', for x with no byte of
// 0x80 or more: x+0x50 has a byte's high bit set iff it is >= '0', and
// x+0x46 iff it is >= ':', without carries between bytes.
func digitMask(x uint64) uint64 {
	return (x + 0x50*ones) &^ (x + 0x46*ones) & highs
}

// byteMask gathers the high bits of a mask's eight bytes into bits 0-7,
// byte 0's in bit 0: each lands in the top byte by a distinct product.
func byteMask(m uint64) uint32 {
	return uint32((m >> 7) * 0x0102040810204080 >> 56)
}

// low7s has the low seven bits of every byte set.
const low7s = 0x7f7f7f7f7f7f7f7f

// parseIPv6 parses the text form of an IPv6 address (RFC 4291 §2.2: hex
// groups, one "::", an optional dotted IPv4 tail) from header bytes. It
// makes no string, so it allocates nothing (netip's parsers take a string,
// and converting the bytes costs an allocation per message). Zones are
// refused: they have no place in a SIP URI. An IPv4-mapped address comes
// back as the IPv4 one.
func parseIPv6(b []byte) (netip.Addr, bool) {
	if len(b) > 45 {
		return netip.Addr{}, false
	}
	var ip [16]byte
	ellipsis := -1 // where "::" stands, in bytes of ip
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis, b = 0, b[2:]
	}
	i := 0
	for len(b) > 0 {
		acc, off := uint32(0), 0
		for ; off < len(b); off++ {
			d := hexValFold[b[off]]
			if d > 15 {
				break
			}
			if off == 4 {
				return netip.Addr{}, false // a group of more than 4 digits
			}
			acc = acc<<4 | uint32(d)
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(b) && b[off] == '.' {
			// The dotted IPv4 tail takes the last 4 bytes.
			if (ellipsis < 0 && i != 12) || i+4 > 16 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(b)
			if !ok {
				return netip.Addr{}, false
			}
			a4 := v4.As4()
			copy(ip[i:], a4[:])
			i += 4
			b = nil
			break
		}
		if i+2 > 16 {
			return netip.Addr{}, false
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		b = b[off:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return netip.Addr{}, false
		}
		b = b[1:]
		if b[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis, b = i, b[1:]
			if len(b) == 0 {
				break
			}
		}
		if i == 16 {
			return netip.Addr{}, false
		}
	}
	switch {
	case i < 16 && ellipsis < 0, i == 16 && ellipsis >= 0:
		return netip.Addr{}, false // too few groups, or a "::" standing for none
	case i < 16:
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+n])
	}
	return netip.AddrFrom16(ip).Unmap(), true
}

// hexValFold maps a hex digit of either case to its value, anything else
// to 0xff.
var hexValFold = func() (t [256]byte) {
	t = hexVal
	for c := 'A'; c <= 'F'; c++ {
		t[c] = byte(c - 'A' + 10)
	}
	return t
}()

// equalFold reports whether a and b are equal under ASCII case folding, the
// comparison RFC 3261 §19.1.4 prescribes for hosts and tokens.
func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x != y {
			if 'A' <= x && x <= 'Z' {
				x += 'a' - 'A'
			}
			if 'A' <= y && y <= 'Z' {
				y += 'a' - 'A'
			}
			if x != y {
				return false
			}
		}
	}
	return true
}

// hasPrefixFold is equalFold over the first len(p) bytes of b.
func hasPrefixFold(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for i := range len(p) {
		x := b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != p[i] {
			return false
		}
	}
	return true
}

// appendHex appends the low n hex digits of v, most significant first.
func appendHex(dst []byte, v uint64, n int) []byte {
	const digits = "0123456789abcdef"
	var buf [16]byte
	for i := 15; i >= 0; i-- {
		buf[i] = digits[v&15]
		v >>= 4
	}
	return append(dst, buf[16-min(max(n, 0), 16):]...)
}

// appendUint appends the decimal form of v.
func appendUint(dst []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}
