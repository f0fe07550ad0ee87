package balance

import (
	"fmt"
	"net/netip"
	"testing"
)

// backendAt returns the AddrPort of test member i: 10.0.0.(i+1):5060.
func backendAt(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 5060)
}

// members returns n Up UDP members with weight 1 at backendAt(0..n-1).
func members(n int) []BackendConfig {
	bcs := make([]BackendConfig, n)
	for i := range bcs {
		bcs[i] = BackendConfig{Addr: backendAt(i)}
	}
	return bcs
}

// onePool returns a Balancer with a single pool "p".
func onePool(t testing.TB, alg Algorithm, bcs []BackendConfig) *Balancer {
	t.Helper()
	b, err := New([]PoolConfig{{Name: "p", Algorithm: alg, Backends: bcs}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// callIDs returns n distinct Call-ID-like keys.
func callIDs(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "%08x-%04x@client%d.example.com", i*2654435761, i%65536, i%97)
	}
	return keys
}

// counts picks n times (with keys[i] for hashed algorithms) and counts the
// picks per address.
func counts(t testing.TB, p *Pool, keys [][]byte, n int) map[netip.AddrPort]int {
	t.Helper()
	got := make(map[netip.AddrPort]int)
	for i := range n {
		var key []byte
		if keys != nil {
			key = keys[i]
		}
		b, ok := p.Pick(key)
		if !ok {
			t.Fatalf("Pick #%d: no backend", i)
		}
		got[b.Addr]++
	}
	return got
}

// assignment maps each key to the address Pick chooses for it.
func assignment(t testing.TB, p *Pool, keys [][]byte) []netip.AddrPort {
	t.Helper()
	out := make([]netip.AddrPort, len(keys))
	for i, k := range keys {
		b, ok := p.Pick(k)
		if !ok {
			t.Fatalf("Pick(%q): no backend", k)
		}
		out[i] = b.Addr
	}
	return out
}
