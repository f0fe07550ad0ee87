package balance

import (
	"net/netip"
	"testing"
)

// BenchmarkCheckerResponse: the engine's call for a probe reply (a probe in
// flight answered, as every Interval per backend).
func BenchmarkCheckerResponse(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  HealthConfig
	}{
		{name: "any reply"},
		{name: "reply_codes", cfg: HealthConfig{ReplyCodes: []string{"2xx", "404"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := readyChecker(b, bc.cfg)
			branch := []byte(testBranchPrefix + "0000000000000000" + probeBranchTail)
			b.ReportAllocs()
			for b.Loop() {
				id := c.inFlight(backendAt(0))
				appendProbeHex(branch[:len(testBranchPrefix)], id, probeIDDigits)
				if !c.Response(branch, 200) {
					b.Fatal("probe not recognized")
				}
			}
		})
	}
}

// BenchmarkCheckerObserve: the engine's call for every final response from a
// backend, from one event loop and from every one at once: a 200 with
// passive success (the default) and without, a 5xx that extends a run, and
// a response from an address that is not probed (a client's).
func BenchmarkCheckerObserve(b *testing.B) {
	for _, bc := range []struct {
		name   string
		cfg    HealthConfig
		addr   netip.AddrPort
		status int
	}{
		{name: "200", cfg: HealthConfig{PassiveFailures: 5}, addr: backendAt(0), status: 200},
		{name: "200 passive success off", cfg: HealthConfig{PassiveFailures: 5, NoPassiveSuccess: true}, addr: backendAt(0), status: 200},
		{name: "500", cfg: HealthConfig{PassiveFailures: 1 << 30}, addr: backendAt(0), status: 500},
		{name: "not probed", addr: backendAt(9), status: 200},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := readyChecker(b, bc.cfg)
			b.ReportAllocs()
			for b.Loop() {
				c.Observe(bc.addr, bc.status)
			}
		})
		b.Run(bc.name+" parallel", func(b *testing.B) {
			c := readyChecker(b, bc.cfg)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.Observe(bc.addr, bc.status)
				}
			})
		})
	}
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
