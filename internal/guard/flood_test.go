package guard

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// t0 is a realistic Unix time in nanoseconds, on a window boundary of 1 s
// and 2 s windows.
const t0 = int64(1_700_000_000) * int64(time.Second)

func newFlood(t testing.TB, c FloodConfig) *Flood {
	t.Helper()
	f, err := NewFlood(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// v4 returns the IPv4 address numbered n.
func v4(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func TestFloodBlocksOverDensity(t *testing.T) {
	f := newFlood(t, FloodConfig{Window: time.Second, Density: 10, BlockTime: 5 * time.Second})
	src, other := addr("192.0.2.1"), addr("192.0.2.2")
	now := t0 + int64(100*time.Millisecond)
	for i := range 10 {
		if v := f.Check(src, now); v != Pass {
			t.Fatalf("message %d: %v, want pass", i+1, v)
		}
	}
	if v := f.Check(src, now); v != NewlyBlocked {
		t.Fatalf("message 11: %v, want newly_blocked", v)
	}
	for i := range 100 {
		if v := f.Check(src, now+int64(i)); v != Blocked {
			t.Fatalf("message %d: %v, want blocked", 12+i, v)
		}
	}
	if v := f.Check(other, now); v != Pass {
		t.Errorf("other source: %v, want pass", v)
	}
}

func TestFloodUnderDensityNeverBlocked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    FloodConfig
		perSec int
	}{
		{name: "at density every window", cfg: FloodConfig{Window: time.Second, Density: 50}, perSec: 50},
		{name: "defaults, benchmark client 900/s", perSec: 900},
		{name: "defaults, client and backends on one address 1800/s", perSec: 1800},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlood(t, tc.cfg)
			src := addr("127.0.0.1")
			gap := int64(time.Second) / int64(tc.perSec)
			now := t0
			for i := range 60 * tc.perSec { // a minute
				if v := f.Check(src, now); v != Pass {
					t.Fatalf("message %d at %s: %v, want pass", i+1, time.Duration(now-t0), v)
				}
				now += gap
			}
		})
	}
}

func TestFloodDefaultsBlockAFlood(t *testing.T) {
	f := newFlood(t, FloodConfig{})
	src := addr("127.0.0.2")
	const perSec = 20000
	now := t0
	for i := range perSec {
		if v := f.Check(src, now); v == NewlyBlocked {
			if at := time.Duration(now - t0); at > time.Second {
				t.Errorf("blocked after %s, want within 1s", at)
			}
			return
		} else if v != Pass {
			t.Fatalf("message %d: %v before newly_blocked", i+1, v)
		}
		now += int64(time.Second) / perSec
	}
	t.Fatalf("a %d/s flood was not blocked in a second", perSec)
}

func TestFloodBlockExpires(t *testing.T) {
	// Window 1s, block 5s: blocked in window 0 at 0.5s, blocked through
	// window 5, free from 6s on — at least 5s after the block began.
	f := newFlood(t, FloodConfig{Window: time.Second, Density: 3, BlockTime: 5 * time.Second})
	src := addr("198.51.100.7")
	at := func(d time.Duration) int64 { return t0 + int64(d) }
	for range 3 {
		f.Check(src, at(500*time.Millisecond))
	}
	if v := f.Check(src, at(500*time.Millisecond)); v != NewlyBlocked {
		t.Fatalf("4th message: %v, want newly_blocked", v)
	}
	for _, tc := range []struct {
		at   time.Duration
		want Verdict
	}{
		{time.Second, Blocked},
		{5500 * time.Millisecond, Blocked},
		{5999 * time.Millisecond, Blocked},
		{6 * time.Second, Pass},
		{6001 * time.Millisecond, Pass},
	} {
		if v := f.Check(src, at(tc.at)); v != tc.want {
			t.Errorf("at %s: %v, want %v", tc.at, v, tc.want)
		}
	}
}

func TestFloodBlockLastsWhileFlooding(t *testing.T) {
	f := newFlood(t, FloodConfig{Window: time.Second, Density: 3, BlockTime: 2 * time.Second})
	src := addr("198.51.100.8")
	newly := 0
	for w := range 20 { // 20 windows of 10 messages each
		for i := range 10 {
			v := f.Check(src, t0+int64(w)*int64(time.Second)+int64(i))
			switch {
			case v == NewlyBlocked:
				newly++
			case v == Pass && !(w == 0 && i < 3):
				t.Fatalf("window %d message %d passed while flooding", w, i+1)
			}
		}
	}
	if newly != 1 {
		t.Errorf("newly_blocked %d times, want once", newly)
	}
	// Last window over density: 19. Block of 2s: through window 21.
	if v := f.Check(src, t0+21*int64(time.Second)); v != Blocked {
		t.Errorf("window 21: %v, want blocked", v)
	}
	if v := f.Check(src, t0+22*int64(time.Second)); v != Pass {
		t.Errorf("window 22: %v, want pass", v)
	}
}

func TestFloodIPv6Per64(t *testing.T) {
	f := newFlood(t, FloodConfig{Window: time.Second, Density: 4})
	// Five addresses of one /64 are one source; a neighbouring /64 is another.
	for i := range 4 {
		if v := f.Check(addr(fmt.Sprintf("2001:db8:0:1::%x", i+1)), t0); v != Pass {
			t.Fatalf("message %d: %v", i+1, v)
		}
	}
	if v := f.Check(addr("2001:db8:0:1:dead:beef::5"), t0); v != NewlyBlocked {
		t.Errorf("5th address of the /64: %v, want newly_blocked", v)
	}
	if v := f.Check(addr("2001:db8:0:2::1"), t0); v != Pass {
		t.Errorf("other /64: %v, want pass", v)
	}
	// An IPv4-mapped address counts with its IPv4 address.
	for range 4 {
		f.Check(addr("192.0.2.9"), t0)
	}
	if v := f.Check(addr("::ffff:192.0.2.9"), t0); v != NewlyBlocked {
		t.Errorf("IPv4-mapped: %v, want newly_blocked", v)
	}
}

// A flooder sharing sets with many innocent sources never makes one of
// them blocked, even those just under the density: slots keep the full key,
// and an innocent evicted by the others starts again from zero.
func TestFloodCollisionsNeverBlockInnocent(t *testing.T) {
	f := newFlood(t, FloodConfig{Window: time.Second, Density: 20, TableSize: MinTableSize})
	flooder := addr("203.0.113.66")
	blocked := false
	for i := range 200 * 20 {
		if f.Check(flooder, t0).Drop() {
			blocked = true
		}
		if i%20 == 19 {
			continue // 200 innocents (12 per set), 19 messages each in one window
		}
		inn := v4(0x0a000000 + uint32(i/20))
		if v := f.Check(inn, t0); v != Pass {
			t.Fatalf("innocent %s: %v", inn, v)
		}
	}
	if !blocked {
		t.Error("flooder never blocked")
	}
}

// Spoofed random sources, one message each, do not evict a busy source
// from its set: a flooder hidden in ten times its rate of random sources is
// still caught in its first window, and a busy legitimate source at the
// density is never blocked.
func TestFloodSpoofedChurn(t *testing.T) {
	f := newFlood(t, FloodConfig{Window: time.Second, Density: 200, TableSize: 256})
	f.seed = 42 // with the fixed rng below, the run is the same every time
	slots := f.Slots()
	rng := rand.New(rand.NewPCG(1, 2))
	flooder, legit := addr("203.0.113.1"), addr("127.0.0.1")
	caughtAt := -1
	for i := range 400 {
		now := t0 + int64(i)*int64(time.Millisecond) // 400 messages in 0.4 s
		for range 10 {
			f.Check(v4(rng.Uint32()), now)
		}
		if i%2 == 0 { // 200 messages: at the density, never over it
			if v := f.Check(legit, now); v != Pass {
				t.Fatalf("legit source at message %d: %v", i/2+1, v)
			}
		}
		if v := f.Check(flooder, now); v == NewlyBlocked && caughtAt < 0 {
			caughtAt = i
		}
	}
	// Caught at its 201st message, or a few later if churn took its slot
	// while its count was still 1 (a tie with the random sources).
	if caughtAt < 200 || caughtAt > 205 {
		t.Errorf("flooder blocked at message %d, want 201 to 206", caughtAt+1)
	}
	if f.Slots() != slots || len(f.sets)*floodWays != slots {
		t.Errorf("table grew: %d slots, want %d", f.Slots(), slots)
	}
}

// Many busy sources, more than a set holds, evict one another but each is
// still blocked once over the density, and none under it is.
func TestFloodBusySetEviction(t *testing.T) {
	f := newFlood(t, FloodConfig{Window: time.Second, Density: 5, BlockTime: time.Minute, TableSize: MinTableSize})
	// 64 flooders fill the table with blocked entries; a 65th is still caught
	// (it takes the slot of the blocked entry nearest its end).
	for n := range uint32(65) {
		newly := false
		for range 6 {
			if f.Check(v4(0xc6336400+n), t0) == NewlyBlocked {
				newly = true
			}
		}
		if !newly {
			t.Errorf("flooder %d not blocked", n)
		}
	}
}

// Several goroutines (event loops) counting the same sources at once: the
// flooder is blocked once and stays blocked, and a busy source that stays
// under the density by more than the accepted race (one message per
// concurrent caller) is never blocked. Run with -race.
func TestFloodConcurrent(t *testing.T) {
	f := newFlood(t, FloodConfig{Window: time.Hour, Density: 1000, TableSize: 1024})
	const workers, perWorker = 4, 5000
	flooder, busy := addr("203.0.113.99"), addr("192.0.2.1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	newly, passedLate, busyDropped, quietDropped := 0, 0, 0, 0
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var n, late, bd, qd int
			for i := range perWorker {
				now := t0 + int64(i)
				switch v := f.Check(flooder, now); {
				case v == NewlyBlocked:
					n++
				case v == Pass && i >= 1000:
					late++ // 4×1000 messages are past the density of 1000
				}
				if i%25 == 0 && f.Check(busy, now) != Pass { // 4×200 = 800 in all
					bd++
				}
				if f.Check(v4(rng.Uint32()), now) != Pass {
					qd++
				}
			}
			mu.Lock()
			newly, passedLate, busyDropped, quietDropped = newly+n, passedLate+late, busyDropped+bd, quietDropped+qd
			mu.Unlock()
		})
	}
	wg.Wait()
	if newly < 1 || newly > workers {
		t.Errorf("flooder newly blocked %d times, want 1 (at most one per racing goroutine)", newly)
	}
	if passedLate != 0 {
		t.Errorf("%d flooder messages passed after %d had been counted", passedLate, workers*1000)
	}
	if busyDropped != 0 || quietDropped != 0 {
		t.Errorf("dropped %d messages of the busy source and %d of quiet ones, want none", busyDropped, quietDropped)
	}
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		v    Verdict
		s    string
		drop bool
	}{{Pass, "pass", false}, {Blocked, "blocked", true}, {NewlyBlocked, "newly_blocked", true}} {
		if tc.v.String() != tc.s || tc.v.Drop() != tc.drop {
			t.Errorf("%d: String %q Drop %v, want %q %v", tc.v, tc.v.String(), tc.v.Drop(), tc.s, tc.drop)
		}
	}
}

func BenchmarkFloodCheck(b *testing.B) {
	b.Run("pass", func(b *testing.B) {
		f := newFlood(b, FloodConfig{Density: MaxFloodDensity})
		src := addr("192.0.2.1")
		now := t0
		b.ReportAllocs()
		for b.Loop() {
			now += 10_000 // 10 µs apart: 200,000 a 2 s window, under the density
			if f.Check(src, now) != Pass {
				b.Fatal("blocked")
			}
		}
	})
	b.Run("blocked", func(b *testing.B) {
		f := newFlood(b, FloodConfig{Density: 1})
		src := addr("192.0.2.1")
		f.Check(src, t0)
		f.Check(src, t0)
		b.ReportAllocs()
		for b.Loop() {
			if f.Check(src, t0) != Blocked {
				b.Fatal("not blocked")
			}
		}
	})
	b.Run("spoofed", func(b *testing.B) {
		f := newFlood(b, FloodConfig{})
		n := uint32(0)
		b.ReportAllocs()
		for b.Loop() {
			n += 0x9e3779b9
			f.Check(v4(n), t0)
		}
	})
}
