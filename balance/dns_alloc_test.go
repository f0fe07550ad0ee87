//go:build !race

package balance

import "testing"

// TestDomainMapLookupAllocs: domain2proxy is consulted per request.
func TestDomainMapLookupAllocs(t *testing.T) {
	m, err := NewDomainMap(map[string]string{"example.com": "a", "*.example.org": "b", "*": "c"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"Example.COM", "a.b.c.example.org", "nowhere.net"} {
		domain := []byte(d)
		if n := testing.AllocsPerRun(100, func() { m.Lookup(domain) }); n != 0 {
			t.Errorf("Lookup(%q): %v allocs, want 0", d, n)
		}
	}
}

// TestResolveCachedAllocs: a Resolve answered from the cache allocates
// nothing, so next-hop resolution can sit on the data path.
func TestResolveCachedAllocs(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t, farmZone...)
	r := testResolver(t, nil, ResolverConfig{}, srv)
	ctx := t.Context()
	for _, q := range []struct {
		host string
		port uint16
	}{{"example.com", 0}, {"a.example.com", 5070}, {"192.0.2.1", 0}} {
		if _, err := r.Resolve(ctx, q.host, q.port, "", false); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = r.Resolve(ctx, q.host, q.port, "", false) }); n != 0 {
			t.Errorf("cached Resolve(%q, %d): %v allocs, want 0", q.host, q.port, n)
		}
	}
}
