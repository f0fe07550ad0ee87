package balance

import (
	"errors"
	"testing"
)

func TestDomainMapLookup(t *testing.T) {
	m, err := NewDomainMap(map[string]string{
		"example.com":          "exact.proxy:5060",
		"*.example.com":        "wild.proxy",
		"*.sub.example.com":    "udp://192.0.2.1:5060",
		"deep.sub.example.com": "tls://[2001:db8::1]:5061",
		"Other.ORG.":           "tcp://other.proxy:5070",
		"*":                    "fallback.proxy",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		domain string
		want   string
	}{
		{domain: "example.com", want: "exact.proxy:5060"},
		{domain: "EXAMPLE.COM.", want: "exact.proxy:5060"},
		{domain: "a.example.com", want: "wild.proxy"},
		{domain: "a.b.example.com", want: "wild.proxy"},
		{domain: "sub.example.com", want: "udp://192.0.2.1:5060"},
		{domain: "x.sub.example.com", want: "udp://192.0.2.1:5060"},
		{domain: "deep.sub.example.com", want: "tls://[2001:db8::1]:5061"},
		{domain: "x.deep.sub.example.com", want: "udp://192.0.2.1:5060"},
		{domain: "badexample.com", want: "fallback.proxy"},
		{domain: "example.com.evil.net", want: "fallback.proxy"},
		{domain: "other.org", want: "tcp://other.proxy:5070"},
		{domain: "a.other.org", want: "fallback.proxy"},
		{domain: "com", want: "fallback.proxy"},
		{domain: "", want: "fallback.proxy"},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			got, ok := m.Lookup([]byte(tc.domain))
			if !ok || got != tc.want {
				t.Errorf("Lookup(%q) = %q, %v; want %q, true", tc.domain, got, ok, tc.want)
			}
		})
	}
}

// TestDomainMapWildcardOwnDomain: "*.example.com" matches example.com
// itself and its subdomains, not names that merely end the same way; without
// "*" an unmatched domain has no proxy.
func TestDomainMapWildcardOwnDomain(t *testing.T) {
	m, err := NewDomainMap(map[string]string{"*.example.com": "p"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		domain string
		wantOK bool
	}{
		{domain: "example.com", wantOK: true},
		{domain: "a.b.example.com", wantOK: true},
		{domain: "badexample.com"},
		{domain: "example.co"},
		{domain: "com"},
		{domain: ".example.com", wantOK: true},
	}
	for _, tc := range tests {
		if _, ok := m.Lookup([]byte(tc.domain)); ok != tc.wantOK {
			t.Errorf("Lookup(%q): ok = %v, want %v", tc.domain, ok, tc.wantOK)
		}
	}
	var zero *DomainMap
	if _, ok := zero.Lookup([]byte("example.com")); ok {
		t.Error("nil DomainMap matched")
	}
	if m.Len() != 1 || zero.Len() != 0 {
		t.Errorf("Len = %d, %d; want 1, 0", m.Len(), zero.Len())
	}
}

func TestNewDomainMapErrors(t *testing.T) {
	tests := []struct {
		name string
		m    map[string]string
	}{
		{name: "empty key", m: map[string]string{"": "p"}},
		{name: "empty suffix", m: map[string]string{"*.": "p"}},
		{name: "inner star", m: map[string]string{"a.*.com": "p"}},
		{name: "double dot", m: map[string]string{"a..com": "p"}},
		{name: "duplicate by case", m: map[string]string{"A.com": "p", "a.com.": "q"}},
		{name: "duplicate wildcard", m: map[string]string{"*.a.com": "p", "*.A.com": "q"}},
		{name: "empty proxy", m: map[string]string{"a.com": ""}},
		{name: "bad scheme", m: map[string]string{"a.com": "sctp://1.2.3.4:5060"}},
		{name: "bad port", m: map[string]string{"a.com": "proxy:99999"}},
		{name: "zero port", m: map[string]string{"a.com": "proxy:0"}},
		{name: "bad host", m: map[string]string{"a.com": "pro..xy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewDomainMap(tc.m); !errors.Is(err, ErrDomainMap) {
				t.Errorf("NewDomainMap(%q): err = %v, want ErrDomainMap", tc.m, err)
			}
		})
	}
	for _, ok := range []string{"proxy", "proxy:5060", "192.0.2.1", "2001:db8::1", "[2001:db8::1]:5060", "udp://proxy:5060", "TLS://proxy"} {
		if _, err := NewDomainMap(map[string]string{"a.com": ok}); err != nil {
			t.Errorf("proxy %q refused: %v", ok, err)
		}
	}
}
