package guard

import (
	"bytes"
	"fmt"
	"slices"
)

// Scanners matches the signatures of SIP scanners (Kamailio's secfilter
// user-agent list): a header value matches when it contains one of the
// signatures, ASCII case ignored. It is built once and immutable; the nil
// Scanners matches nothing.
type Scanners struct {
	needles [][]byte    // lower-cased signatures, sorted by first byte
	first   [256]uint32 // for a lower-cased first byte b: the needles starting with it are needles[first[b]>>16 : first[b]&0xffff]
	// pairs has bit a<<8|b set when a signature starts with the lower-cased
	// bytes a, b (a one-byte signature a sets every b, and the 0 that stands
	// for the end of the input). Most positions of a header fail this one
	// test: the letters the default signatures start with (s, i, p, v, f)
	// are common, their first two much less so.
	pairs  [1 << 16 / 64]uint64
	fold   [256]byte // ASCII lower case
	minLen int
}

// NewScanners compiles list. path names the list in errors
// (`scanners.user_agents[3]: must be 1 to 256 bytes, got 0`). An entry must be 1 to
// MaxScannerLen bytes; at most MaxScanners entries.
func NewScanners(path string, list []string) (*Scanners, error) {
	if len(list) > MaxScanners {
		return nil, fmt.Errorf("%s: at most %d entries, got %d", path, MaxScanners, len(list))
	}
	s := &Scanners{}
	for c := range 256 {
		s.fold[c] = lower(byte(c))
	}
	for i, e := range list {
		if len(e) == 0 || len(e) > MaxScannerLen {
			return nil, fmt.Errorf("%s[%d]: must be 1 to %d bytes, got %d", path, i, MaxScannerLen, len(e))
		}
		n := make([]byte, len(e))
		for j := range len(e) {
			n[j] = lower(e[j])
		}
		s.needles = append(s.needles, n)
	}
	slices.SortFunc(s.needles, bytes.Compare) // by first byte, and duplicates side by side
	s.needles = slices.CompactFunc(s.needles, bytes.Equal)
	for i, n := range s.needles {
		b := n[0]
		if s.first[b] == 0 {
			s.first[b] = uint32(i) << 16
		}
		s.first[b] = s.first[b]&^0xffff | uint32(i+1)
		if s.minLen == 0 || len(n) < s.minLen {
			s.minLen = len(n)
		}
		if len(n) == 1 {
			for c := range 256 {
				s.setPair(b, byte(c))
			}
		} else {
			s.setPair(b, n[1])
		}
	}
	return s, nil
}

// Match reports whether b (a User-Agent value, or a From display name)
// contains one of the signatures, ASCII case ignored. An empty b matches
// nothing. It allocates nothing and tests each position of b against a
// bitmap of the signatures' first two bytes, comparing the rest only where
// they match.
func (s *Scanners) Match(b []byte) bool {
	if s == nil || len(s.needles) == 0 || len(b) < s.minLen {
		return false
	}
	last := len(b) - s.minLen // the last position a signature can start at
	prev := uint(s.fold[b[0]])
	for j := 1; j < len(b); j++ {
		cur := uint(s.fold[b[j]])
		p := prev<<8 | cur
		prev = cur
		if s.pairs[p>>6&1023]&(1<<(p&63)) != 0 && j-1 <= last && s.matchAt(b[j-1:]) {
			return true
		}
	}
	// The last byte, as a one-byte signature (minLen 1), followed by the 0
	// that pairs keeps for the end of the input.
	return s.minLen == 1 && s.pairs[prev<<8>>6&1023]&(1<<(prev<<8&63)) != 0 && s.matchAt(b[len(b)-1:])
}

// matchAt reports whether a signature is a prefix of rest, ASCII case
// ignored.
func (s *Scanners) matchAt(rest []byte) bool {
	r := s.first[s.fold[rest[0]]]
	for _, n := range s.needles[r>>16 : r&0xffff] {
		if len(n) <= len(rest) && equalLower(rest[1:len(n)], n[1:]) {
			return true
		}
	}
	return false
}

func (s *Scanners) setPair(a, b byte) {
	p := uint(a)<<8 | uint(b)
	s.pairs[p>>6] |= 1 << (p & 63)
}

// Len is the number of distinct signatures.
func (s *Scanners) Len() int {
	if s == nil {
		return 0
	}
	return len(s.needles)
}

// lower folds an ASCII upper-case letter; other bytes are left as they are.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	return c
}

// equalLower reports whether b, ASCII case folded, equals n (already lower
// case); len(b) == len(n).
func equalLower(b, n []byte) bool {
	for i := range n {
		if lower(b[i]) != n[i] {
			return false
		}
	}
	return true
}
