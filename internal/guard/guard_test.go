package guard

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func newGuard(t testing.TB, c Config) *Guard {
	t.Helper()
	g, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardCheck(t *testing.T) {
	g := newGuard(t, Config{
		Flood:   FloodConfig{Window: time.Second, Density: 5},
		Trusted: []string{"10.0.0.0/8", "2001:db8:aaaa::/48"},
	})
	for _, tc := range []struct {
		name    string
		ip      string
		n       int
		blocked int // of the n, the number dropped
	}{
		{"untrusted over density", "192.0.2.1", 8, 3},
		{"trusted IPv4 never blocked", "10.1.2.3", 1000, 0},
		{"trusted IPv4-mapped never blocked", "::ffff:10.1.2.3", 1000, 0},
		{"trusted IPv6 never blocked", "2001:db8:aaaa:1::1", 1000, 0},
		{"untrusted IPv6 /64", "2001:db8:bbbb:1::1", 6, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropped := 0
			for range tc.n {
				if g.Check(addr(tc.ip), t0).Drop() {
					dropped++
				}
			}
			if dropped != tc.blocked {
				t.Errorf("%d of %d dropped, want %d", dropped, tc.n, tc.blocked)
			}
		})
	}
	if got, want := g.Stats(), (Stats{Blocked: 4, NewlyBlocked: 2}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestGuardScannerAndReplies(t *testing.T) {
	g := newGuard(t, Config{Trusted: []string{"10.0.0.1"}, Replies: ReplyConfig{PerSourceRate: 1, PerSourceBurst: 2}})
	if !g.Scanner([]byte("friendly-scanner")) || g.Scanner([]byte("Linphone")) || g.Scanner(nil) {
		t.Error("Scanner: wrong match")
	}
	ok := 0
	for range 10 {
		if g.AllowReply(addr("192.0.2.1"), t0) {
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("%d of 10 replies allowed, want the burst 2", ok)
	}
	for range 10 {
		if !g.AllowReply(addr("10.0.0.1"), t0) {
			t.Fatal("reply to a trusted source limited")
		}
	}
	if !g.Trusted(addr("10.0.0.1")) || g.Trusted(addr("10.0.0.2")) {
		t.Error("Trusted: wrong answer")
	}
	if got, want := g.Stats(), (Stats{Scanner: 1, ReplyLimited: 8}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestGuardDisabled(t *testing.T) {
	g := newGuard(t, Config{Flood: FloodConfig{Disabled: true, Density: 1}, Scanners: ScannerConfig{Disabled: true}})
	for range 100 {
		if g.Check(addr("192.0.2.1"), t0) != Pass {
			t.Fatal("disabled flood detector dropped")
		}
	}
	if g.Scanner([]byte("friendly-scanner")) {
		t.Error("disabled scanner filter matched")
	}
	var nilG *Guard
	if nilG.Check(addr("192.0.2.1"), t0) != Pass || nilG.Scanner([]byte("sipvicious")) ||
		!nilG.AllowReply(addr("192.0.2.1"), t0) || nilG.Trusted(addr("192.0.2.1")) || nilG.Stats() != (Stats{}) {
		t.Error("nil Guard is not a pass-everything guard")
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"flood", Config{Flood: FloodConfig{Density: -3}}, "flood.density: must be between 1 and 524288, got -3"},
		{"trusted", Config{Trusted: []string{"x"}}, `trusted[0]: "x": bad prefix`},
		{"replies", Config{Replies: ReplyConfig{TotalRate: -1}}, "replies.total_rate: must be between 1 and 1000000, got -1"},
	} {
		if _, err := New(tc.c); err == nil || err.Error() != tc.want {
			t.Errorf("%s: New = %v, want %s", tc.name, err, tc.want)
		}
	}
}

// The engine's loops call one Guard at once: a flooder, spoofed sources, a
// trusted backend and stateless replies, from four goroutines. Run with
// -race.
func TestGuardConcurrent(t *testing.T) {
	g := newGuard(t, Config{Flood: FloodConfig{Window: time.Hour, Density: 500, TableSize: 4096}, Trusted: []string{"10.0.0.0/8"}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	trustedDropped, flooderPassed := 0, 0
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			td, fp := 0, 0
			for i := range 3000 {
				now := t0 + int64(i)
				if g.Check(addr("10.0.0.1"), now).Drop() {
					td++
				}
				if g.Check(addr("203.0.113.5"), now) == Pass {
					fp++
				}
				g.Check(v4(rng.Uint32()), now)
				g.AllowReply(v4(rng.Uint32()), now)
				g.Scanner([]byte("sipvicious"))
			}
			mu.Lock()
			trustedDropped, flooderPassed = trustedDropped+td, flooderPassed+fp
			mu.Unlock()
		})
	}
	wg.Wait()
	s := g.Stats()
	if trustedDropped != 0 {
		t.Errorf("trusted source dropped %d times", trustedDropped)
	}
	// Up to one message per racing goroutine may slip past the density.
	if flooderPassed < 500 || flooderPassed > 500+4 {
		t.Errorf("flooder passed %d times, want 500 (+ at most 4)", flooderPassed)
	}
	if s.NewlyBlocked < 1 || s.Scanner != 4*3000 || s.Blocked < 4*3000-504 {
		t.Errorf("Stats() = %+v", s)
	}
}

func BenchmarkGuardCheck(b *testing.B) {
	b.Run("pass", func(b *testing.B) {
		g := newGuard(b, Config{})
		ip := addr("127.0.0.1")
		now := t0
		b.ReportAllocs()
		for b.Loop() {
			now += int64(time.Millisecond) // 1000/s: under the default density
			if g.Check(ip, now) != Pass {
				b.Fatal("blocked")
			}
		}
	})
	b.Run("pass_trusted", func(b *testing.B) {
		g := newGuard(b, Config{Trusted: []string{"127.0.0.0/8", "10.0.0.0/8", "192.168.0.0/16", "::1"}})
		ip := addr("127.0.0.1")
		b.ReportAllocs()
		for b.Loop() {
			if g.Check(ip, t0) != Pass {
				b.Fatal("blocked")
			}
		}
	})
	b.Run("blocked", func(b *testing.B) {
		g := newGuard(b, Config{Flood: FloodConfig{Density: 1}})
		ip := addr("127.0.0.2")
		g.Check(ip, t0)
		g.Check(ip, t0)
		b.ReportAllocs()
		for b.Loop() {
			if g.Check(ip, t0) != Blocked {
				b.Fatal("not blocked")
			}
		}
	})
	b.Run("spoofed", func(b *testing.B) {
		g := newGuard(b, Config{})
		n := uint32(0)
		b.ReportAllocs()
		for b.Loop() {
			n += 0x9e3779b9
			g.Check(v4(n), t0)
		}
	})
	b.Run("pass_parallel", func(b *testing.B) {
		g := newGuard(b, Config{Flood: FloodConfig{Density: MaxFloodDensity}})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ip, now := v4(rand.Uint32()), t0
			for pb.Next() {
				now += 10_000 // 10 µs: 200,000 a 2 s window, under the density
				if g.Check(ip, now) != Pass {
					b.Error("blocked")
					return
				}
			}
		})
	})
}

func BenchmarkGuardScanner(b *testing.B) {
	g := newGuard(b, Config{})
	ua := []byte("Linphone/5.2.0 (belle-sip/5.2.0)")
	b.ReportAllocs()
	for b.Loop() {
		if g.Scanner(ua) {
			b.Fatal("matched")
		}
	}
}

func BenchmarkGuardAllowReply(b *testing.B) {
	g := newGuard(b, Config{})
	ip := addr("192.0.2.1")
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now += int64(100 * time.Millisecond) // 10/s: under the per-source rate
		if !g.AllowReply(ip, now) {
			b.Fatal("refused")
		}
	}
}
