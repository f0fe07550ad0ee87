//go:build !race

package balance

import "testing"

// TestHealthAllocs asserts that what the engine calls per response does not
// allocate: Response for a probe in flight (answered, in or outside
// ReplyCodes, no change of mark), for a late or foreign branch, and Observe
// for statuses that change no mark, with passive success on and off.
func TestHealthAllocs(t *testing.T) {
	c := readyChecker(t, HealthConfig{PassiveFailures: 1 << 20, Fall: 1 << 20, ReplyCodes: []string{"2xx", "404"}})
	off := readyChecker(t, HealthConfig{PassiveFailures: 1 << 20, NoPassiveSuccess: true})
	branch := []byte(testBranchPrefix + "0000000000000000" + probeBranchTail)
	foreign := []byte("z9hG4bK00000000000000000000000000000000")
	answer := func(status int) func() {
		return func() {
			id := c.inFlight(backendAt(0))
			appendProbeHex(branch[:len(testBranchPrefix)], id, probeIDDigits)
			if !c.Response(branch, status) {
				t.Fatal("probe not recognized")
			}
		}
	}
	tests := []struct {
		name string
		f    func()
	}{
		{name: "Response in flight", f: answer(200)},
		{name: "Response in flight, listed 404", f: answer(404)},
		{name: "Response in flight, outside reply_codes", f: answer(486)},
		{name: "Response late", f: func() {
			if !c.Response(branch, 200) {
				t.Fatal("late reply not recognized")
			}
		}},
		{name: "Response foreign", f: func() {
			if c.Response(foreign, 200) {
				t.Fatal("foreign branch taken")
			}
		}},
		{name: "Observe 200", f: func() { c.Observe(backendAt(0), 200) }},
		{name: "Observe 200, passive success off", f: func() { off.Observe(backendAt(0), 200) }},
		{name: "Observe 603", f: func() { c.Observe(backendAt(0), 603) }},
		{name: "Observe 500", f: func() { c.Observe(backendAt(0), 500) }},
		{name: "Observe unknown", f: func() { c.Observe(backendAt(9), 500) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tc.f); n != 0 {
				t.Errorf("%v allocs per run, want 0", n)
			}
		})
	}
}
