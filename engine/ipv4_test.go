package engine

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// parseIPv4Loop is the byte-at-a-time parseIPv4 that the word-at-a-time
// one replaced: the reference it must agree with.
func parseIPv4Loop(b []byte) (netip.Addr, bool) {
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

// ipv4Cases are dotted quads and near misses at every edge parseIPv4's
// words have: each length from 6 to 16, octets of 0-4 digits, leading
// zeros, 255/256, the bytes next to '0', '9' and '.', and bytes >= 0x80.
var ipv4Cases = []string{
	"", "1.2.3", "1.2.3.", "0.0.0.0", "1.2.3.4", "9.9.9.9", "1.2.3.45", "127.0.0.1", "10.0.0.255",
	"192.168.100.200", "255.255.255.255", "255.255.255.256", "256.255.255.255", "1.2.3.4.", ".1.2.3",
	"1..2.3", "1.2..3", "01.2.3.4", "1.02.3.4", "1.2.03.4", "1.2.3.04", "0.0.0.00", "00.0.0.0",
	"1.2.3.4.5", "1234.1.1.1", "1.1.1.1234", "1.2.3.4 ", " 1.2.3.4", "1/2.3.4", "1:2.3.4", "1.2.3.4:",
	"1.2.3.4\x00", "1.2.3.\x80", "1.2.3.\xb4", "\xae1.2.3.4", "1.2.3.\xff", "127.000.0.1", "1.2.3.4.5.6.7",
	"111.111.111.111", "111.111.111.1111", "1111.111.111.111", "1.1.1", "a.b.c.d", "1.2.3.a", "1.2.3.4a",
	"300.1.1.1", "199.299.1.1", "1.1.1.299", "99.99.99.99", "100.100.100.100", "0.1.2.3", "1.0.0.0",
}

// TestParseIPv4Differential checks parseIPv4 against parseIPv4Loop on
// the edge cases, on every string of up to 16 bytes over a small
// alphabet built by random walks, and on random bytes.
func TestParseIPv4Differential(t *testing.T) {
	check := func(s string) {
		t.Helper()
		got, ok := parseIPv4([]byte(s))
		want, wok := parseIPv4Loop([]byte(s))
		if ok != wok || got != want {
			t.Fatalf("parseIPv4(%q) = %v, %v; the loop says %v, %v", s, got, ok, want, wok)
		}
	}
	for _, s := range ipv4Cases {
		check(s)
		// Every single-byte change of each case, at each position.
		for i := range len(s) {
			for _, c := range []byte{'.', '0', '1', '9', '/', ':', 0, 0x80, 0xae, 0xb0, 'a'} {
				b := []byte(s)
				b[i] = c
				check(string(b))
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "0123456789.....0125/:"
	for range 200000 {
		b := make([]byte, r.IntN(17))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(string(b))
	}
	for range 100000 {
		b := make([]byte, 7+r.IntN(9))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		check(string(b))
	}
	// Every valid address shape: octet lengths 1-3 each, values at the
	// ends of each length.
	vals := []string{"0", "1", "9", "10", "99", "100", "199", "249", "250", "255", "256", "299", "999"}
	for _, a := range vals {
		for _, b := range vals {
			for _, c := range vals {
				for _, d := range vals {
					check(a + "." + b + "." + c + "." + d)
				}
			}
		}
	}
}

// FuzzParseIPv4 checks parseIPv4 against parseIPv4Loop, and that an
// address it accepts prints back as its input.
func FuzzParseIPv4(f *testing.F) {
	for _, s := range ipv4Cases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseIPv4(b)
		want, wok := parseIPv4Loop(b)
		if ok != wok || got != want {
			t.Fatalf("parseIPv4(%q) = %v, %v; the loop says %v, %v", b, got, ok, want, wok)
		}
		if ok && got.String() != string(b) {
			t.Fatalf("parseIPv4(%q) = %v", b, got)
		}
	})
}

// BenchmarkParseIPv4 is parseIPv4 alone, where the branch predictor has
// nothing else to learn.
func BenchmarkParseIPv4(b *testing.B) {
	for _, s := range []string{"127.0.0.1", "192.168.100.200", "1.2.3.4"} {
		in := []byte(s)
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				parseIPv4(in)
			}
		})
		b.Run(s+"/loop", func(b *testing.B) {
			for b.Loop() {
				parseIPv4Loop(in)
			}
		})
	}
}
