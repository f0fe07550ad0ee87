package balance

import "testing"

// BenchmarkResolveCached: RFC 3263 resolution answered from the cache, as
// the data path sees it in steady state.
func BenchmarkResolveCached(b *testing.B) {
	srv := newTestDNS(b)
	srv.set(b, farmZone...)
	r := testResolver(b, nil, ResolverConfig{}, srv)
	ctx := b.Context()
	if _, err := r.Resolve(ctx, "example.com", 0, "", false); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ts, err := r.Resolve(ctx, "example.com", 0, "", false); err != nil || len(ts) == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDomainMapLookup(b *testing.B) {
	m, err := NewDomainMap(map[string]string{
		"example.com": "a", "*.example.org": "b", "*.carrier.example.net": "c", "*": "d",
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, domain string }{
		{"exact", "example.com"},
		{"wildcard", "pbx1.site7.carrier.example.net"},
		{"fallback", "unknown.example.info"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			domain := []byte(bc.domain)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := m.Lookup(domain); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}
