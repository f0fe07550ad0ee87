package engine

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// parseHexRef is parseHex digit by digit, the reference for the
// word-at-a-time paths.
func parseHexRef(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		d := hexVal[c]
		if d > 15 {
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// The word-at-a-time hex paths agree with the digit-by-digit ones: every
// byte value in every position of 8 and 16 digits, and random words.
func TestHexWords(t *testing.T) {
	check := func(b []byte) {
		t.Helper()
		want, wok := parseHexRef(b)
		got, ok := parseHex(b)
		if ok != wok || (ok && got != want) {
			t.Fatalf("parseHex(%q) = %x, %v; want %x, %v", b, got, ok, want, wok)
		}
	}
	for _, n := range []int{8, 16} {
		for pos := range n {
			for c := range 256 {
				b := []byte("0123456789abcdef"[:n])
				b[pos] = byte(c)
				check(b)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789abcdefABCDEFg/:`@\x80\xff"
	for range 20000 {
		v := r.Uint64()
		if got, want := string(appendHex16(nil, v)), string(appendHex(nil, v, 16)); got != want {
			t.Fatalf("appendHex16(%x) = %s, want %s", v, got, want)
		}
		if got, want := string(appendHex8(nil, uint32(v))), string(appendHex(nil, v, 8)); got != want {
			t.Fatalf("appendHex8(%x) = %s, want %s", uint32(v), got, want)
		}
		if got, want := string(appendHex4(nil, uint16(v))), string(appendHex(nil, v, 4)); got != want {
			t.Fatalf("appendHex4(%x) = %s, want %s", uint16(v), got, want)
		}
		if got, want := string(appendHex2(nil, byte(v))), string(appendHex(nil, v, 2)); got != want {
			t.Fatalf("appendHex2(%x) = %s, want %s", byte(v), got, want)
		}
		check(appendHex16(nil, v))
		b := make([]byte, 8+8*r.IntN(2))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(b)
	}
}

// appendIP writes what netip writes, for every kind of address and for
// random ones with zero runs of every length and place.
func TestAppendIP(t *testing.T) {
	for _, a := range []string{"::", "::1", "1::", "2001:db8::1", "2001:db8:0:0:1:0:0:1", "2001:0:0:1:0:0:0:1",
		"1:0:1:0:1:0:1:0", "0:0:1:0:0:1:0:0", "fe80::1%eth0", "::ffff:192.0.2.1", "192.0.2.1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"1:2:3:4:5:6:7:8", "0:1:2:3:4:5:6:0", "100:20:3:4000::"} {
		ip := netip.MustParseAddr(a)
		if got, want := string(appendIP(nil, ip)), ip.String(); got != want {
			t.Errorf("appendIP(%s) = %s, want %s", a, got, want)
		}
	}
	// IPv4: every octet value in every position.
	for x := range 256 {
		for pos := range 4 {
			b := [4]byte{1, 20, 203, 7}
			b[pos] = byte(x)
			ip := netip.AddrFrom4(b)
			if got, want := string(appendIP(nil, ip)), ip.String(); got != want {
				t.Fatalf("appendIP(%v) = %s, want %s", b, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		var b [16]byte
		for i := 0; i < 16; i += 2 {
			switch r.IntN(4) {
			case 0, 1: // a zero group
			case 2:
				b[i+1] = byte(r.IntN(256))
			default:
				b[i], b[i+1] = byte(r.IntN(256)), byte(r.IntN(256))
			}
		}
		ip := netip.AddrFrom16(b)
		if got, want := string(appendIP(nil, ip)), ip.String(); got != want {
			t.Fatalf("appendIP(%x) = %s, want %s", b, got, want)
		}
	}
}
