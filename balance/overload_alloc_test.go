//go:build !race

package balance

import "testing"

// Admission allocates nothing: the pick, a refusal by overload and by
// MaxCPS, and the walk to the next member.
func TestPickAdmittedAllocs(t *testing.T) {
	now := int64(1e18)
	bcs := members(3)
	bcs[1].MaxCPS = 1
	bal, err := New([]PoolConfig{{Name: "p", Backends: bcs}})
	if err != nil {
		t.Fatal(err)
	}
	p := bal.Table().Pool(0)
	p.Backends()[0].Overload().Report(OverloadReport{Reduction: 50, Validity: 60_000, Seq: 1}, now)
	keys := callIDs(64)
	i := 0
	n := testing.AllocsPerRun(200, func() {
		a := Admit{Dialog: HashKey(keys[i%len(keys)]), Now: now}
		p.PickAdmitted(keys[i%len(keys)], &a)
		i++
	})
	if n != 0 {
		t.Errorf("PickAdmitted: %.1f allocations, want 0", n)
	}
}
