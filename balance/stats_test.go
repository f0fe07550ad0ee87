package balance

import (
	"net/netip"
	"sync"
	"testing"
)

// A backend's counts belong to its address: they survive reloads and
// health changes, and the stripes add up under concurrent counting.
func TestBackendStatsSurviveReloads(t *testing.T) {
	a, b := netip.MustParseAddrPort("127.0.0.1:5070"), netip.MustParseAddrPort("127.0.0.1:5071")
	bal, err := New([]PoolConfig{{Name: "p", Backends: []BackendConfig{{Addr: a}, {Addr: b}}}})
	if err != nil {
		t.Fatal(err)
	}
	be, _ := bal.Table().Lookup(a)
	var wg sync.WaitGroup
	for stripe := range 20 {
		wg.Go(func() {
			for range 1000 {
				be.Stats.Forwarded(stripe, stripe%2 == 0)
				be.Stats.Response(stripe, 200)
			}
		})
	}
	wg.Wait()
	be.Stats.Response(0, 503)
	be.Stats.Response(0, 99) // not a status: ignored
	bal.SetHealth(a, false)
	if err := bal.Reload([]PoolConfig{{Name: "p", Backends: []BackendConfig{{Addr: a, Weight: 5}}}}); err != nil {
		t.Fatal(err)
	}
	after, _ := bal.Table().Lookup(a)
	c := after.Stats.Read()
	if c.NewDialogs != 10000 || c.InDialog != 10000 || c.Responses[1] != 20000 || c.Responses[4] != 1 {
		t.Errorf("counts after a reload: %+v", c)
	}
	other, _ := bal.Table().Lookup(b)
	_ = other
	if x, ok := bal.Table().Lookup(b); ok && x.Stats.Read() != (BackendCounts{}) {
		t.Errorf("another backend shares the counts")
	}
}

func TestBackendStatsAllocs(t *testing.T) {
	var s BackendStats
	if n := testing.AllocsPerRun(100, func() { s.Forwarded(1, true); s.Response(1, 180) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
