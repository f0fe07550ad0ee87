//go:build !race

package load

import (
	"runtime"
	"testing"
	"time"
)

// TestRunAllocs checks that the load generator (and the echo it runs
// against) allocates next to nothing per call once running, over UDP and
// TCP: what Run allocates is its setup, whatever the number of calls.
func TestRunAllocs(t *testing.T) {
	tests := []struct {
		name      string
		transport Transport
	}{
		{name: "udp", transport: UDP},
		{name: "tcp", transport: TCP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startEcho(t)
			if tc.transport == TCP {
				_, addr, _ = startEchoTCP(t)
			}
			mallocs := func(n int) uint64 {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				res, err := Run(t.Context(), Config{Target: addr.String(), Scenario: Call, N: n, Window: 20,
					Duration: 10 * time.Second, Transport: tc.transport})
				runtime.ReadMemStats(&after)
				if err != nil || !res.OK() {
					t.Fatalf("Run(%d calls): %v, %+v", n, err, res)
				}
				return after.Mallocs - before.Mallocs
			}
			small, large := mallocs(200), mallocs(3000)
			perCall := float64(int64(large)-int64(small)) / 2800
			t.Logf("%.3f allocations per call", perCall)
			if perCall > 0.1 {
				t.Errorf("%.2f allocations per call (%d for 200 calls, %d for 3000), want ~0", perCall, small, large)
			}
		})
	}
}

func BenchmarkHistRecord(b *testing.B) {
	var h hist
	b.ReportAllocs()
	d := 37 * time.Microsecond
	for b.Loop() {
		h.record(d)
		d += 3
	}
}
