package load

import (
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 45_000, 1 << 40, 1<<63 + 12345, 1<<64 - 1} {
		i := bucketOf(v)
		lo, width := bucketRange(i)
		if i < 0 || i >= histBuckets || v < lo || v-lo >= width {
			t.Errorf("bucketOf(%d) = %d: range [%d, +%d) misses it", v, i, lo, width)
		}
		if v >= 1<<histSubBits && float64(width)/float64(lo) > 1.0/(1<<histSubBits) {
			t.Errorf("bucketOf(%d): width %d over %d is above the precision", v, width, lo)
		}
	}
}

func TestQuantile(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{q: 0.5, want: 500 * time.Microsecond},
		{q: 0.99, want: 990 * time.Microsecond},
		{q: 0.999, want: 999 * time.Microsecond},
		{q: 1, want: 1000 * time.Microsecond},
	}
	for _, tc := range tests {
		got := h.quantile(tc.q)
		if diff := (got - tc.want).Abs(); float64(diff) > 0.01*float64(tc.want) {
			t.Errorf("quantile(%v) = %v, want %v ± 1%%", tc.q, got, tc.want)
		}
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Error("empty quantile not 0")
	}
	var m hist
	m.merge(&h)
	if m.n != 1000 || m.quantile(0.5) != h.quantile(0.5) {
		t.Error("merge lost samples")
	}
}
