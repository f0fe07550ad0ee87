package main

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siplb/siplb/balance"
)

// A member whose gossip is not bound yet (the successor of an upgrade,
// until its predecessor leaves) owns every backend, says so in
// /api/v1/cluster, shares nothing, and its metrics still answer.
func TestClusterUnbound(t *testing.T) {
	addrs := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5070"), netip.MustParseAddrPort("127.0.0.1:5071")}
	var bcs []balance.BackendConfig
	for _, a := range addrs {
		bcs = append(bcs, balance.BackendConfig{Addr: a, Transport: balance.UDP, Weight: 1, Priority: 1})
	}
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: bcs}})
	if err != nil {
		t.Fatal(err)
	}
	rt := &clusterRuntime{name: "lb-1", bal: bal, log: slog.New(slog.DiscardHandler)}
	ci := rt.info(bal.Table())
	if !ci.Enabled || !ci.Unbound || ci.Self != "lb-1" || ci.Members == nil || len(ci.Probing) != 2 {
		t.Fatalf("info = %+v, want enabled, unbound, self lb-1, both backends", ci)
	}
	for i, p := range ci.Probing {
		if p.Owner != "lb-1" || !rt.owns(addrs[i]) {
			t.Errorf("backend %s: owner %q (owns %v), want this member", p.Backend, p.Owner, rt.owns(addrs[i]))
		}
	}
	// Nothing to share with yet: no panic, nothing sent.
	rt.verdict(balance.Verdict{Addr: addrs[0], Up: false, Reason: "test"})
	rt.publishState(addrs[0], balance.Draining)
	ch := make(chan prometheus.Metric, 64)
	newClusterCollector(rt, bal.Table).Collect(ch)
	close(ch)
	if n := len(ch); n == 0 {
		t.Error("no cluster metrics while unbound")
	}
	rt.stop()
	rt.stop() // twice: nothing
}
