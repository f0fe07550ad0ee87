package load

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: 2^histSubBits buckets per
// power of two, so a recorded value is off by less than 1/128 (0.8%): under
// half a microsecond for a 50 µs latency.
const histSubBits = 7

// histBuckets covers every int64 nanosecond value.
const histBuckets = (64 - histSubBits + 1) << histSubBits

// hist is a log-linear latency histogram in nanoseconds. It is owned by one
// goroutine; merge snapshots after that goroutine has ended. Recording
// allocates nothing.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64
	max    uint64
}

// record adds one latency; negative values count as zero.
func (h *hist) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

// merge adds o into h.
func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the samples lie,
// as the midpoint of its bucket (the maximum for q ≥ 1); 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, width := bucketRange(i)
			return time.Duration(min(lo+width/2, h.max))
		}
	}
	return time.Duration(h.max)
}

// bucketOf maps v to its bucket: values below 2^histSubBits have a bucket
// each; above, each power of two is cut into 2^histSubBits equal buckets.
func bucketOf(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>uint(shift)) - 1<<histSubBits
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (lo, width uint64) {
	if i < 1<<histSubBits {
		return uint64(i), 1
	}
	shift := i>>histSubBits - 1
	mant := uint64(i&(1<<histSubBits-1)) + 1<<histSubBits
	return mant << uint(shift), 1 << uint(shift)
}
