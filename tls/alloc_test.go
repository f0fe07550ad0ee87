//go:build !race

package tls

import (
	"crypto/tls"
	"testing"
)

// TestCertificateAllocs pins the SNI choice made on every handshake to zero
// allocations for lower-case names (what clients send).
func TestCertificateAllocs(t *testing.T) {
	s := sniStore(t)
	g := s.gen.Load()
	tests := []struct {
		name string
		sni  string
	}{
		{name: "exact", sni: "a.example"},
		{name: "wildcard", sni: "y.wild.example"},
		{name: "default", sni: "nobody.example"},
		{name: "no SNI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hello := &tls.ClientHelloInfo{ServerName: tc.sni}
			n := testing.AllocsPerRun(100, func() {
				if c, err := g.certificate(hello); c == nil || err != nil {
					t.Fatalf("certificate(%q) = %v, %v", tc.sni, c, err)
				}
			})
			if n != 0 {
				t.Errorf("certificate(%q): %v allocs, want 0", tc.sni, n)
			}
		})
	}
}
