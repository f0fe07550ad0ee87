package balance

import "testing"

// BenchmarkCheckerResponse: the engine's call for a probe reply (a probe in
// flight answered, as every Interval per backend).
func BenchmarkCheckerResponse(b *testing.B) {
	c := readyChecker(b, HealthConfig{})
	branch := []byte(testBranchPrefix + "0000000000000000" + probeBranchTail)
	b.ReportAllocs()
	for b.Loop() {
		id := c.inFlight(backendAt(0))
		appendProbeHex(branch[:len(testBranchPrefix)], id, probeIDDigits)
		if !c.Response(branch, 200) {
			b.Fatal("probe not recognized")
		}
	}
}

// BenchmarkCheckerObserve: the engine's call for every final response from a
// backend, from every event loop at once.
func BenchmarkCheckerObserve(b *testing.B) {
	c := readyChecker(b, HealthConfig{PassiveFailures: 5})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Observe(backendAt(0), 200)
		}
	})
}

// BenchmarkProbeBuild: writing one OPTIONS probe.
func BenchmarkProbeBuild(b *testing.B) {
	c := readyChecker(b, HealthConfig{})
	t := c.targets[backendAt(0)]
	buf := c.appendProbe(nil, t, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = c.appendProbe(buf[:0], t, 1)
	}
}
