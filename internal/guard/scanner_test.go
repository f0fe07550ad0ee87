package guard

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func mustScanners(t testing.TB, list []string) *Scanners {
	t.Helper()
	s, err := NewScanners("user_agents", list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScannersMatch(t *testing.T) {
	def := mustScanners(t, DefaultUserAgents())
	for _, tc := range []struct {
		name string
		ua   string
		want bool
	}{
		{name: "exact", ua: "friendly-scanner", want: true},
		{name: "upper case", ua: "FRIENDLY-SCANNER", want: true},
		{name: "mixed case signature", ua: "vaxsipuseragent/3.1", want: true},
		{name: "at start", ua: "sipvicious 0.3.4", want: true},
		{name: "in the middle", ua: "Mozilla (SIPcli/v1.8) x", want: true},
		{name: "at end", ua: "scanner by pplsip", want: true},
		{name: "added ones", ua: "sundayddr", want: true},
		{name: "iWar", ua: "iWar 0.9", want: true},
		{name: "empty", ua: "", want: false},
		{name: "legit phone", ua: "Linphone/5.2.0 (belle-sip/5.2.0)", want: false},
		{name: "legit PBX", ua: "Asterisk PBX 20.5.0", want: false},
		{name: "cut short", ua: "friendly-scanne", want: false},
		{name: "split", ua: "sip vicious", want: false},
		{name: "shorter than any", ua: "sip", want: false},
		{name: "non-ASCII around", ua: "\xff\xfeSIPSCAN\x00sip-scan\xc3", want: true},
		{name: "non-ASCII only", ua: "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := def.Match([]byte(tc.ua)); got != tc.want {
				t.Errorf("Match(%q) = %v, want %v", tc.ua, got, tc.want)
			}
		})
	}
	var nilS *Scanners
	if nilS.Match([]byte("friendly-scanner")) {
		t.Error("nil Scanners matched")
	}
}

func TestScannersList(t *testing.T) {
	s := mustScanners(t, []string{"Evil", "evil", "EVIL-2", "é"})
	if s.Len() != 3 {
		t.Errorf("Len() = %d, want 3 (duplicates folded)", s.Len())
	}
	for ua, want := range map[string]bool{"an eViL one": true, "evil-2": true, "café": true, "friendly-scanner": false, "CAFÉ": false} {
		if got := s.Match([]byte(ua)); got != want {
			t.Errorf("Match(%q) = %v, want %v", ua, got, want)
		}
	}
	if mustScanners(t, nil).Match([]byte("friendly-scanner")) {
		t.Error("empty list matched")
	}
}

func TestNewScannersErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		list []string
		want string
	}{
		{"empty entry", []string{"a", ""}, "user_agents[1]: must be 1 to 256 bytes, got 0"},
		{"long entry", []string{strings.Repeat("x", 257)}, "user_agents[0]: must be 1 to 256 bytes, got 257"},
		{"too many", make([]string, MaxScanners+1), "user_agents: at most 1024 entries, got 1025"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewScanners("user_agents", tc.list); err == nil || err.Error() != tc.want {
				t.Errorf("NewScanners = %v, want %s", err, tc.want)
			}
		})
	}
}

// Match agrees with lower-casing both sides and bytes.Contains.
func TestScannersDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alpha := []byte("aAbBsS-1\xc3")
	word := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		return b
	}
	for range 200 {
		var list []string
		for range 1 + rng.IntN(6) {
			list = append(list, string(word(1+rng.IntN(4))))
		}
		s := mustScanners(t, list)
		for range 200 {
			ua := word(rng.IntN(24))
			want := false
			for _, n := range list {
				want = want || bytes.Contains(asciiLower(ua), asciiLower([]byte(n)))
			}
			if got := s.Match(ua); got != want {
				t.Fatalf("%q: Match(%q) = %v, want %v", list, ua, got, want)
			}
		}
	}
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = lower(c)
	}
	return out
}

func BenchmarkScanners(b *testing.B) {
	s := mustScanners(b, DefaultUserAgents())
	for _, tc := range []struct{ name, ua string }{
		{"legit", "Linphone/5.2.0 (belle-sip/5.2.0)"},
		{"legit_long", "Yealink SIP-T54W 96.86.0.70 Poly/VVX-450 Cisco-SIPGateway/IOS-15.x"},
		{"scanner", "friendly-scanner"},
		{"scanner_late", "Mozilla/5.0 compatible; sipvicious"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ua := []byte(tc.ua)
			want := s.Match(ua)
			b.ReportAllocs()
			b.SetBytes(int64(len(ua)))
			for b.Loop() {
				if s.Match(ua) != want {
					b.Fatal("changed")
				}
			}
		})
	}
}
