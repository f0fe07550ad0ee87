package engine

import "net/netip"

// parseIP parses an IPv4 dotted quad or an IPv6 address (without brackets)
// from header bytes without making a string. It reports false for anything
// else, including host names.
func parseIP(b []byte) (netip.Addr, bool) {
	if len(b) >= 2 && b[0] == '[' && b[len(b)-1] == ']' {
		b = b[1 : len(b)-1]
	}
	for _, c := range b {
		if c == ':' {
			return parseIPv6(b)
		}
	}
	return parseIPv4(b)
}

func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	n, val, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || n == 4 {
				return netip.Addr{}, false
			}
			ip[n] = byte(val)
			n++
			val, digits = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || digits == 3 {
			return netip.Addr{}, false
		}
		if digits == 1 && val == 0 { // no leading zeros: "01" is not an address
			return netip.Addr{}, false
		}
		val = val*10 + int(c-'0')
		digits++
		if val > 255 {
			return netip.Addr{}, false
		}
	}
	if n != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

// parseIPv6 copies the text into a stack buffer so netip parses it without a
// heap string; zones are refused (they have no place in a SIP URI).
func parseIPv6(b []byte) (netip.Addr, bool) {
	if len(b) > 45 {
		return netip.Addr{}, false
	}
	for _, c := range b {
		if c == '%' {
			return netip.Addr{}, false
		}
	}
	var a netip.Addr
	if err := a.UnmarshalText(b); err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

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

// fnv64 is FNV-1a 64 over b, continuing from h; start with fnvOffset. It is
// fixed (no per-process seed) so every instance computes the same branch.
func fnv64(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

const fnvOffset uint64 = 14695981039346656037

// fnvSep mixes a separator between fields so ("ab","c") and ("a","bc") differ.
func fnvSep(h uint64) uint64 {
	h ^= 0xff
	return h * 1099511628211
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
