package parser

import (
	"encoding/binary"
	"math/bits"
)

// Word-at-a-time scans: eight bytes per step with the carry tricks of
// "Bit Twiddling Hacks" (haszero, hasless). The lowest flagged byte of a
// mask is always exact: a false flag can only follow a true one, through a
// borrow that moves towards the more significant (later) bytes.

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
	low7s = 0x7f7f7f7f7f7f7f7f
)

// ctlMask flags the bytes of x that are CTL, SP or DEL: below 0x21 or 0x7f.
func ctlMask(x uint64) uint64 {
	del := x ^ 0x7f7f7f7f7f7f7f7f
	return ((x-0x21*ones)&^x | (del-ones)&^del) & highs
}

// visibleEnd returns the index of the first byte of b[i:e] that is CTL, SP
// or DEL, or e.
func visibleEnd(b []byte, i, e int) int {
	for ; i+8 <= e; i += 8 {
		if m := ctlMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < e; i++ {
		if c := b[i]; c <= ' ' || c == 0x7f {
			return i
		}
	}
	return e
}

// isWordChars reports whether every byte of v is a visible US-ASCII
// character (%x21-7E), the alphabet of Call-ID's word (RFC 3261 §25.1).
func isWordChars(v []byte) bool {
	for len(v) >= 8 {
		x := binary.LittleEndian.Uint64(v)
		if ((x-0x21*ones)&^x|((x&low7s)+ones)|x)&highs != 0 {
			return false
		}
		v = v[8:]
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// byteEq flags exactly the bytes of x equal to c: no borrow crosses a
// byte, so every flag is true, not only the lowest.
func byteEq(x uint64, c byte) uint64 {
	y := x ^ (uint64(c) * ones)
	return ^((y&low7s + low7s) | y) & highs
}
