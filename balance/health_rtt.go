package balance

import "time"

// RTTBuckets are the upper bounds of the probe round-trip histogram.
var RTTBuckets = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond,
	5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
}

// rttAlpha is the weight of a new round trip in the EWMA (Kamailio's
// latency stats use a similar smoothing): about the last 8 probes.
const rttAlpha = 0.125

// RTTStats are a backend's probe round trips: a cumulative histogram over
// RTTBuckets (Counts[i] probes took at most RTTBuckets[i]; Count all of
// them), their Sum, and an EWMA.
type RTTStats struct {
	Counts [len(RTTBuckets)]uint64
	Count  uint64
	Sum    time.Duration
	EWMA   time.Duration
}

// rttStats is kept under the Checker's lock.
type rttStats struct{ RTTStats }

func (r *rttStats) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	for i, ub := range RTTBuckets {
		if d <= ub {
			r.Counts[i]++
		}
	}
	r.Count++
	r.Sum += d
	if r.Count == 1 {
		r.EWMA = d
	} else {
		r.EWMA += time.Duration(rttAlpha * float64(d-r.EWMA))
	}
}
