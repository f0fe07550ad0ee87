//go:build !race

package balance

import "testing"

// TestPickLatencyAllocs: the latency algorithms allocate nothing per pick.
func TestPickLatencyAllocs(t *testing.T) {
	keys := callIDs(64)
	for _, alg := range []Algorithm{LeastLatency, LeastLatencyP2C} {
		bcs := members(16)
		for i := range bcs {
			bcs[i].Weight = 1 + i%3
		}
		bal := onePool(t, alg, bcs)
		slowLatency(bal, bcs)
		i := 0
		if n := testing.AllocsPerRun(200, func() {
			bal.Table().Pool(0).Pick(keys[i%len(keys)])
			i++
		}); n != 0 {
			t.Errorf("%v: %v allocations per Pick", alg, n)
		}
	}
}
