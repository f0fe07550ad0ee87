package guard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func mustSet(t testing.TB, list ...string) *CIDRSet {
	t.Helper()
	s, err := ParseCIDRSet("list", list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCIDRSetContains(t *testing.T) {
	for _, tc := range []struct {
		name string
		list []string
		in   []string
		out  []string
	}{
		{name: "empty", list: nil, out: []string{"10.0.0.1", "::1", "::ffff:10.0.0.1"}},
		{name: "IPv4 /8", list: []string{"10.0.0.0/8"},
			in:  []string{"10.0.0.0", "10.1.2.3", "10.255.255.255", "::ffff:10.9.9.9"},
			out: []string{"9.255.255.255", "11.0.0.0", "::a00:1", "2001:db8::1"}},
		{name: "IPv4 /0 is every IPv4 source, no IPv6 one", list: []string{"0.0.0.0/0"},
			in:  []string{"0.0.0.0", "255.255.255.255", "::ffff:1.2.3.4"},
			out: []string{"::", "::1", "2001:db8::1"}},
		{name: "IPv6 /0 is every IPv6 source, no IPv4 one", list: []string{"::/0"},
			in:  []string{"::", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::1"},
			out: []string{"1.2.3.4", "::ffff:1.2.3.4"}},
		{name: "IPv4 /32 and bare address", list: []string{"192.0.2.1/32", "192.0.2.3"},
			in:  []string{"192.0.2.1", "192.0.2.3"},
			out: []string{"192.0.2.0", "192.0.2.2", "192.0.2.4"}},
		{name: "IPv6 /128 and bare address", list: []string{"2001:db8::1/128", "2001:db8::3"},
			in:  []string{"2001:db8::1", "2001:db8::3"},
			out: []string{"2001:db8::", "2001:db8::2", "2001:db8::4"}},
		{name: "top of both spaces", list: []string{"255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			in:  []string{"255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			out: []string{"255.255.255.254", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "0.0.0.0", "::"}},
		{name: "IPv6 /64 and /65", list: []string{"2001:db8:1:2::/64", "2001:db8:9:9:8000::/65"},
			in:  []string{"2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:9:9:8000::1", "2001:db8:9:9:ffff::"},
			out: []string{"2001:db8:1:1:ffff:ffff:ffff:ffff", "2001:db8:1:3::", "2001:db8:9:9:7fff::"}},
		{name: "mapped prefix is IPv4", list: []string{"::ffff:10.0.0.0/104"},
			in:  []string{"10.1.2.3", "::ffff:10.1.2.3"},
			out: []string{"11.0.0.1", "::a01:203"}},
		{name: "host bits are masked", list: []string{"10.1.2.3/8", "2001:db8::1/32"},
			in:  []string{"10.200.0.1", "2001:db8:ffff::1"},
			out: []string{"11.0.0.0", "2001:db9::"}},
		{name: "zoned source", list: []string{"fe80::/10"}, in: []string{"fe80::1%eth0"}, out: []string{"fec0::1"}},
		{name: "overlapping and adjacent", list: []string{"10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "10.0.3.0/24"},
			in:  []string{"10.0.0.0", "10.0.1.255", "10.0.3.7"},
			out: []string{"10.0.2.0", "10.0.4.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, tc.list...)
			for _, a := range tc.in {
				if !s.Contains(addr(a)) {
					t.Errorf("%v: Contains(%s) = false, want true", tc.list, a)
				}
			}
			for _, a := range tc.out {
				if s.Contains(addr(a)) {
					t.Errorf("%v: Contains(%s) = true, want false", tc.list, a)
				}
			}
		})
	}
	var nilSet *CIDRSet
	if nilSet.Contains(addr("10.0.0.1")) || !nilSet.Empty() || mustSet(t, "10.0.0.0/8").Contains(netip.Addr{}) {
		t.Error("nil set or zero Addr matched")
	}
}

func TestCIDRSetMerges(t *testing.T) {
	s := mustSet(t, "10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "10.0.3.0/24", "0.0.0.0/1", "128.0.0.0/1",
		"2001:db8::/33", "2001:db8:8000::/33", "::/1", "8000::/1")
	if got := s.Ranges(); got != 2 {
		t.Errorf("Ranges() = %d, want 2 (all of IPv4, all of IPv6)", got)
	}
	if got := mustSet(t, "10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24").Ranges(); got != 2 {
		t.Errorf("Ranges() = %d, want 2", got)
	}
}

func TestParseCIDRSetErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		list []string
		want string
	}{
		{name: "prefix too long", list: []string{"10.0.0.0/8", "::1", "10.0.0.0/33"}, want: `allow[2]: "10.0.0.0/33": bad prefix`},
		{name: "IPv6 prefix too long", list: []string{"::/129"}, want: `allow[0]: "::/129": bad prefix`},
		{name: "empty", list: []string{""}, want: `allow[0]: "": bad prefix`},
		{name: "short address", list: []string{"10.0.0"}, want: `allow[0]: "10.0.0": bad prefix`},
		{name: "no length", list: []string{"10.0.0.0/"}, want: `allow[0]: "10.0.0.0/": bad prefix`},
		{name: "zone", list: []string{"fe80::1%eth0"}, want: `allow[0]: "fe80::1%eth0": bad prefix`},
		{name: "space", list: []string{" 10.0.0.1"}, want: `allow[0]: " 10.0.0.1": bad prefix`},
		{name: "name", list: []string{"example.com"}, want: `allow[0]: "example.com": bad prefix`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCIDRSet("allow", tc.list)
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrBadPrefix) {
				t.Errorf("ParseCIDRSet(%q) = %v, want %s", tc.list, err, tc.want)
			}
		})
	}
}

// Contains agrees with a plain scan of the prefixes on random addresses.
func TestCIDRSetDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		var ps []netip.Prefix
		var list []string
		for range 1 + rng.IntN(200) {
			var p netip.Prefix
			if rng.IntN(2) == 0 {
				p = netip.PrefixFrom(v4(rng.Uint32()), 8+rng.IntN(25))
			} else {
				p = netip.PrefixFrom(v6(rng.Uint64()&0xffff_ff00_0000_0000, rng.Uint64()), 16+rng.IntN(113))
			}
			ps = append(ps, p.Masked())
			list = append(list, p.String())
		}
		s := mustSet(t, list...)
		for range 2000 {
			var a netip.Addr
			p := ps[rng.IntN(len(ps))] // near a prefix, so both answers occur
			if p.Addr().Is4() {
				a = v4(ipv4num(p.Addr()) ^ rng.Uint32()>>rng.IntN(33))
			} else {
				b := p.Addr().As16()
				hi, lo := beUint64(b[:8]), beUint64(b[8:])
				if k := rng.IntN(129); k < 64 {
					hi ^= rng.Uint64() >> k
				} else {
					lo ^= rng.Uint64() >> (k - 64)
				}
				a = v6(hi, lo)
			}
			want := false
			for _, p := range ps {
				want = want || p.Contains(a)
			}
			if got := s.Contains(a); got != want {
				t.Fatalf("round %d: Contains(%s) = %v, want %v", round, a, got, want)
			}
		}
	}
}

func v6(hi, lo uint64) netip.Addr {
	var b [16]byte
	for i := range 8 {
		b[i], b[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
	}
	return netip.AddrFrom16(b)
}

func ipv4num(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func beUint64(b []byte) uint64 {
	var x uint64
	for _, c := range b {
		x = x<<8 | uint64(c)
	}
	return x
}

// prefixes1000 returns 1000 distinct, non-adjacent IPv4 /24s and IPv6 /48s.
func prefixes1000(v6net bool) []string {
	var list []string
	for i := range 1000 {
		if v6net {
			list = append(list, fmt.Sprintf("2001:db8:%x::/48", 2*i))
		} else {
			list = append(list, fmt.Sprintf("10.%d.%d.0/24", (2*i)>>8, (2*i)&0xff))
		}
	}
	return list
}

func BenchmarkCIDRSetContains(b *testing.B) {
	for _, tc := range []struct {
		name string
		v6   bool
		ip   string
	}{
		{"v4_1000_hit", false, "10.3.14.7"},
		{"v4_1000_miss", false, "10.3.15.7"},
		{"v6_1000_hit", true, "2001:db8:3e6::1"},
		{"v6_1000_miss", true, "2001:db8:3e7::1"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := mustSet(b, prefixes1000(tc.v6)...)
			ip := addr(tc.ip)
			want := s.Contains(ip)
			b.ReportAllocs()
			for b.Loop() {
				if s.Contains(ip) != want {
					b.Fatal("changed")
				}
			}
		})
	}
}
