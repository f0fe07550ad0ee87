package guard

import (
	"net/netip"
	"testing"
)

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{name: "same IPv4", a: "192.0.2.1", b: "192.0.2.1", same: true},
		{name: "other IPv4", a: "192.0.2.1", b: "192.0.2.2", same: false},
		{name: "IPv4-mapped is IPv4", a: "::ffff:192.0.2.1", b: "192.0.2.1", same: true},
		{name: "same /64", a: "2001:db8:1:2::1", b: "2001:db8:1:2:ffff:ffff:ffff:ffff", same: true},
		{name: "other /64", a: "2001:db8:1:2::1", b: "2001:db8:1:3::1", same: false},
		{name: "IPv4 apart from ::/64", a: "0.0.0.1", b: "::1", same: false},
		{name: "IPv4 apart from ::ffff:0:0/64 as IPv6", a: "192.0.2.1", b: "::1:ffff:c000:201", same: false},
		{name: "zone ignored", a: "fe80::1%eth0", b: "fe80::2", same: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ka, kb := sourceKey(netip.MustParseAddr(tc.a)), sourceKey(netip.MustParseAddr(tc.b))
			if (ka == kb) != tc.same {
				t.Errorf("sourceKey(%s) = %#x, sourceKey(%s) = %#x; same = %v, want %v", tc.a, ka, tc.b, kb, ka == kb, tc.same)
			}
		})
	}
}

func TestTableBits(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{1, 0}, {2, 1}, {64, 6}, {65, 7}, {65536, 16}, {100000, 17}} {
		if got := tableBits(tc.n); got != uint(tc.want) {
			t.Errorf("tableBits(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}
