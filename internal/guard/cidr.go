package guard

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ErrBadPrefix is wrapped by the errors of ParseCIDRSet and NewACL for an
// entry that is neither an IP address nor an IP/len prefix.
var ErrBadPrefix = errors.New("bad prefix")

// CIDRSet is an immutable set of IPv4 and IPv6 prefixes, kept as sorted,
// disjoint address ranges so that Contains is one binary search (about ten
// steps for a thousand prefixes) and allocates nothing. The nil and zero
// CIDRSets are empty.
//
// IPv4-mapped IPv6 addresses are IPv4 addresses here: Contains unmaps them,
// and a prefix ::ffff:a.b.c.d/n with n >= 96 is the IPv4 prefix a.b.c.d/(n-96).
// Other IPv6 prefixes match only IPv6 addresses, even those (::/0, ::/80)
// that contain ::ffff:0:0/96: "::/0" means every IPv6 source and "0.0.0.0/0"
// every IPv4 one.
type CIDRSet struct {
	v4lo, v4hi []uint32 // range i is [v4lo[i], v4hi[i]]; sorted, disjoint, not adjacent
	v6lo, v6hi []u128
}

// u128 is an IPv6 address as a number.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// ParseCIDRSet builds a set from list, whose entries are "IP/len" or a bare
// IP (a /32 or /128). A prefix with host bits set ("10.1.2.3/8") is taken as
// its network. Errors name the entry by path and index:
// `allow[2]: "10.0.0.0/33": bad prefix` (wrapping ErrBadPrefix).
func ParseCIDRSet(path string, list []string) (*CIDRSet, error) {
	ps, err := ParsePrefixes(path, list)
	if err != nil {
		return nil, err
	}
	return NewCIDRSet(ps...), nil
}

// ParsePrefixes reads list as ParseCIDRSet does and returns the prefixes,
// masked, an IPv4-mapped one of at least /96 as the IPv4 prefix it covers.
func ParsePrefixes(path string, list []string) ([]netip.Prefix, error) {
	ps := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		p, ok := parsePrefix(s)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: %q: %w", path, i, s, ErrBadPrefix)
		}
		ps = append(ps, normalize(p))
	}
	return ps, nil
}

// NewCIDRSet builds a set from prefixes; invalid ones are left out.
func NewCIDRSet(prefixes ...netip.Prefix) *CIDRSet {
	type r4 struct{ lo, hi uint32 }
	type r6 struct{ lo, hi u128 }
	var v4 []r4
	var v6 []r6
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		p = normalize(p)
		if p.Addr().Is4() {
			a := p.Addr().As4()
			lo := binary.BigEndian.Uint32(a[:])
			host := uint32(uint64(1)<<(32-p.Bits()) - 1)
			v4 = append(v4, r4{lo, lo | host})
			continue
		}
		a := p.Addr().As16()
		lo := u128{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
		hi := lo
		switch b := p.Bits(); {
		case b == 0:
			hi = u128{^uint64(0), ^uint64(0)}
		case b <= 64:
			hi = u128{lo.hi | (uint64(1)<<(64-b) - 1), ^uint64(0)}
		case b < 128:
			hi.lo |= uint64(1)<<(128-b) - 1
		}
		v6 = append(v6, r6{lo, hi})
	}
	slices.SortFunc(v4, func(a, b r4) int { return cmp.Compare(a.lo, b.lo) })
	slices.SortFunc(v6, func(a, b r6) int {
		if c := cmp.Compare(a.lo.hi, b.lo.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.lo.lo, b.lo.lo)
	})
	s := &CIDRSet{}
	for _, r := range v4 {
		// Merge with the last range when r overlaps it or starts right after it.
		if n := len(s.v4hi); n > 0 && (s.v4hi[n-1] == ^uint32(0) || r.lo <= s.v4hi[n-1]+1) {
			s.v4hi[n-1] = max(s.v4hi[n-1], r.hi)
			continue
		}
		s.v4lo, s.v4hi = append(s.v4lo, r.lo), append(s.v4hi, r.hi)
	}
	for _, r := range v6 {
		if n := len(s.v6hi); n > 0 && !s.v6hi[n-1].next().less(r.lo) {
			if s.v6hi[n-1].less(r.hi) {
				s.v6hi[n-1] = r.hi
			}
			continue
		}
		s.v6lo, s.v6hi = append(s.v6lo, r.lo), append(s.v6hi, r.hi)
	}
	return s
}

// next is a+1, saturating at the largest address (so that the merge test
// "next(hi) < lo" is false for every lo after it).
func (a u128) next() u128 {
	switch {
	case a.lo != ^uint64(0):
		a.lo++
	case a.hi != ^uint64(0):
		a.hi, a.lo = a.hi+1, 0
	}
	return a
}

// Contains reports whether ip is in the set. It allocates nothing.
func (s *CIDRSet) Contains(ip netip.Addr) bool {
	if s == nil {
		return false
	}
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Is4() {
		if len(s.v4lo) == 0 {
			return false
		}
		a := ip.As4()
		x := binary.BigEndian.Uint32(a[:])
		lo, hi := 0, len(s.v4lo) // v4lo[:lo] <= x < v4lo[hi:]
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if s.v4lo[m] <= x {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo > 0 && x <= s.v4hi[lo-1]
	}
	if len(s.v6lo) == 0 || !ip.Is6() {
		return false
	}
	a := ip.As16()
	x := u128{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
	lo, hi := 0, len(s.v6lo)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !x.less(s.v6lo[m]) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && !s.v6hi[lo-1].less(x)
}

// Empty reports whether the set holds no address.
func (s *CIDRSet) Empty() bool {
	return s == nil || len(s.v4lo) == 0 && len(s.v6lo) == 0
}

// Ranges is the number of disjoint address ranges the set keeps (adjacent
// and overlapping prefixes merge), for tests and diagnostics.
func (s *CIDRSet) Ranges() int {
	if s == nil {
		return 0
	}
	return len(s.v4lo) + len(s.v6lo)
}

// parsePrefix reads "IP/len" or a bare IP, without a zone, as a masked
// prefix.
func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// normalize makes an IPv4-mapped prefix of at least /96 the IPv4 prefix it
// covers, and masks p.
func normalize(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}
