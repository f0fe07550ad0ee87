package balance

import (
	"testing"
	"time"
)

func TestRTTStats(t *testing.T) {
	var r rttStats
	for _, d := range []time.Duration{300 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond, 3 * time.Second} {
		r.observe(d)
	}
	if r.Count != 4 || r.Sum != 300*time.Microsecond+6*time.Millisecond+3*time.Second {
		t.Fatalf("count %d sum %v", r.Count, r.Sum)
	}
	// Cumulative: ≤250µs 0, ≤500µs 1, ≤5ms 3, ≤2s 3 (3 s is above every bound).
	for i, want := range map[int]uint64{0: 0, 1: 1, 4: 3, len(RTTBuckets) - 1: 3} {
		if r.Counts[i] != want {
			t.Errorf("bucket ≤%v: %d, want %d", RTTBuckets[i], r.Counts[i], want)
		}
	}
	if r.EWMA <= 300*time.Microsecond || r.EWMA >= 3*time.Second {
		t.Errorf("EWMA %v outside the samples", r.EWMA)
	}
	var one rttStats
	one.observe(7 * time.Millisecond)
	if one.EWMA != 7*time.Millisecond {
		t.Errorf("first sample's EWMA %v", one.EWMA)
	}
}
