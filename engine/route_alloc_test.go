//go:build !race

package engine

import (
	"net/netip"
	"testing"

	"github.com/siplb/siplb/balance"
)

// A member's request to a domain that domain2proxy maps to a proxy goes
// there with no allocation: the proxy value is parsed once, not per
// request.
func TestDomainProxyAllocs(t *testing.T) {
	proxy := netip.MustParseAddrPort("127.0.0.1:5090")
	domains, err := balance.NewDomainMap(map[string]string{"*.partner.test": proxy.String(), "other.test": "tcp://127.0.0.1:5091"})
	if err != nil {
		t.Fatal(err)
	}
	pc := balance.PoolConfig{Name: "farm"}
	for _, a := range backends {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a})
	}
	f := newPoolForwarder(t, pc, Config{Domains: domains})
	s, leg := f.NewScratch(), f.Legs()[0]
	in := sip("INVITE sip:carol@pbx.partner.test SIP/2.0",
		"Via: SIP/2.0/UDP "+backends[0].String()+";branch=z9hG4bKdp1",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b1", "To: <sip:carol@pbx.partner.test>",
		"Call-ID: dp@x", "CSeq: 1 INVITE", "Content-Length: 0")
	for range 2 { // the first fills the cache, the second reads it
		if r := f.Process(s, in, backends[0], leg); r.To != proxy {
			t.Fatalf("sent to %v (drop %v, status %d), want the proxy %v", r.To, r.Drop, r.Status, proxy)
		}
	}
	if n := testing.AllocsPerRun(100, func() { f.Process(s, in, backends[0], leg) }); n != 0 {
		t.Errorf("%.1f allocations per request to a domain2proxy domain, want 0", n)
	}
}
