package guard

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newReplies(t testing.TB, c ReplyConfig) *ReplyLimiter {
	t.Helper()
	r, err := NewReplyLimiter(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// allowed counts the replies allowed out of n to ip at now.
func allowed(r *ReplyLimiter, ip string, now int64, n int) int {
	k := 0
	for range n {
		if r.Allow(addr(ip), now) {
			k++
		}
	}
	return k
}

func TestReplyLimiterPerSource(t *testing.T) {
	r := newReplies(t, ReplyConfig{PerSourceRate: 10, PerSourceBurst: 5, TotalRate: 1000, TotalBurst: 1000})
	for _, tc := range []struct {
		name string
		ip   string
		at   time.Duration
		n    int
		want int
	}{
		{"burst at once", "192.0.2.1", 0, 20, 5},
		{"empty right after", "192.0.2.1", time.Millisecond, 5, 0},
		{"one token per 100ms", "192.0.2.1", 100 * time.Millisecond, 5, 1},
		{"another source has its own bucket", "192.0.2.2", 100 * time.Millisecond, 20, 5},
		{"same /64 shares one", "2001:db8:1:1::1", 0, 3, 3},
		{"same /64 shares one, rest", "2001:db8:1:1::2", 0, 5, 2},
		{"refill caps at the burst", "192.0.2.1", time.Hour, 20, 5},
	} {
		if got := allowed(r, tc.ip, t0+int64(tc.at), tc.n); got != tc.want {
			t.Errorf("%s: %d of %d allowed, want %d", tc.name, got, tc.n, tc.want)
		}
	}
}

func TestReplyLimiterTotal(t *testing.T) {
	r := newReplies(t, ReplyConfig{PerSourceRate: 10, PerSourceBurst: 10, TotalRate: 100, TotalBurst: 50})
	got := 0
	for i := range uint32(100) { // 100 sources × 10 = 1000 tries at once
		for range 10 {
			if r.Allow(v4(0xc6330000+i), t0) {
				got++
			}
		}
	}
	if got != 50 {
		t.Errorf("%d replies allowed at once, want the total burst 50", got)
	}
	// A second later the total has 100 more, whatever the sources have.
	got = 0
	for i := range uint32(100) {
		for range 10 {
			if r.Allow(v4(0x0a000000+i), t0+int64(time.Second)) {
				got++
			}
		}
	}
	if got != 50 { // burst 50 caps the refill too
		t.Errorf("%d replies allowed a second later, want 50", got)
	}
}

// A refused reply takes nothing: a source over its limit does not delay
// its own refill.
func TestReplyLimiterRefusalFree(t *testing.T) {
	r := newReplies(t, ReplyConfig{PerSourceRate: 1, PerSourceBurst: 1})
	if !r.Allow(addr("192.0.2.1"), t0) {
		t.Fatal("first reply refused")
	}
	for i := range 1000 {
		if r.Allow(addr("192.0.2.1"), t0+int64(i)*int64(time.Millisecond)) {
			t.Fatalf("reply %d within the second allowed", i)
		}
	}
	if !r.Allow(addr("192.0.2.1"), t0+int64(time.Second)) {
		t.Error("reply a second later refused")
	}
}

func TestReplyLimiterConcurrent(t *testing.T) {
	r := newReplies(t, ReplyConfig{PerSourceRate: 1, PerSourceBurst: 100, TotalRate: 1, TotalBurst: 1000})
	var n atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range uint32(2000) {
				if r.Allow(v4(uint32(w)<<8|i%20), t0) {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := n.Load(); got != 1000 { // 80 sources × 100 = 8000 > total burst 1000
		t.Errorf("%d replies allowed, want exactly the total burst 1000", got)
	}
}

func BenchmarkReplyLimiter(b *testing.B) {
	b.Run("allowed", func(b *testing.B) {
		r := newReplies(b, ReplyConfig{PerSourceRate: MaxReplyRate, PerSourceBurst: MaxReplyBurst, TotalRate: MaxReplyRate, TotalBurst: MaxReplyBurst})
		ip := addr("192.0.2.1")
		now := t0
		b.ReportAllocs()
		for b.Loop() {
			now += 1000 // 1 µs: exactly the rate
			if !r.Allow(ip, now) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("limited", func(b *testing.B) {
		r := newReplies(b, ReplyConfig{})
		ip := addr("192.0.2.1")
		for range DefaultReplyPerSourceBurst {
			r.Allow(ip, t0)
		}
		b.ReportAllocs()
		for b.Loop() {
			if r.Allow(ip, t0) {
				b.Fatal("allowed")
			}
		}
	})
}
