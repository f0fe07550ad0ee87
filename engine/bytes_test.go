package engine

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// parseIP agrees with netip.ParseAddr (unmapped, zones refused) on every
// address form and on near misses.
func TestParseIP(t *testing.T) {
	cases := []string{
		"127.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1..2.3",
		"::", "::1", "1::", "2001:db8::1", "[2001:db8::1]", "2001:DB8::A", "fe80::1%eth0", "::ffff:10.0.0.1",
		"::ffff:0a00:0001", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7",
		"1:2:3:4:5:6:7::8", "1::2::3", ":1::2", "1::2:", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:1.2.3.4",
		"::1.2.3.4", "::ffff:1.2.3", "12345::1", "0000:0000::1", "g::1", "::ffff:256.1.1.1", "1:2:3:4:5:6:7:1.2.3.4",
		":", ":::", "[::1", "::1]", "[]", "", "example.com", "1.2.3.4:5060", "2001:db8::1.2.3.4.5",
	}
	check := func(s string) {
		t.Helper()
		got, ok := parseIP([]byte(s))
		in := s
		if len(in) >= 2 && in[0] == '[' && in[len(in)-1] == ']' {
			in = in[1 : len(in)-1]
		}
		want, err := netip.ParseAddr(in)
		wok := err == nil && want.Zone() == ""
		if ok != wok || (ok && got != want.Unmap()) {
			t.Errorf("parseIP(%q) = %v, %v; netip says %v, %v", s, got, ok, want.Unmap(), wok)
		}
	}
	for _, s := range cases {
		check(s)
	}
	// Random strings over the alphabet of addresses, bounded.
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789abcdefABCDEF:.:::"
	for range 20000 {
		b := make([]byte, 1+r.IntN(40))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(string(b))
	}
	// Dotted quads and their near misses.
	for range 50000 {
		var b []byte
		for i := range 3 + r.IntN(3) {
			if i > 0 && r.IntN(20) != 0 {
				b = append(b, '.')
			}
			for range r.IntN(5) {
				b = append(b, "0123456789"[r.IntN(10)])
			}
		}
		check(string(b))
	}
}
