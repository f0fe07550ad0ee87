package engine

import "net/netip"

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

func parseIPv4(b []byte) (netip.Addr, bool) {
	// The octets gather in a register: four byte stores read back as
	// one word (netip.AddrFrom4's loads, combined) would wait on store
	// forwarding, which does not merge stores.
	var ip uint32
	n, val, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || n == 4 {
				return netip.Addr{}, false
			}
			ip = ip<<8 | uint32(val)
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
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

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
