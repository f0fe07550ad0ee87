package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/siplb/siplb/balance"
)

// fixture is a leg, its backends and a client, by address family.
type fixture struct {
	leg      string // the leg's sent-by
	client   netip.AddrPort
	natted   netip.AddrPort
	backends []netip.AddrPort
}

var (
	fixture4 = fixture{leg: "127.0.0.1:5060", client: client, natted: natted, backends: backends}
	// fixture6 is for Forwarder-level tests only (no socket binds these).
	fixture6 = fixture{
		leg:    "[::1]:5060",
		client: netip.MustParseAddrPort("[2001:db8::1]:40000"),
		natted: netip.MustParseAddrPort("[2001:db8::9]:61000"),
		backends: []netip.AddrPort{
			netip.MustParseAddrPort("[::1]:5070"),
			netip.MustParseAddrPort("[::1]:5071"),
			netip.MustParseAddrPort("[::1]:5072"),
		},
	}
)

// invite is the fixture client's INVITE (see the package-level invite).
func (fx fixture) invite(callID, branch string, extra ...string) []byte {
	b := string(invite(callID, branch, extra...))
	b = strings.ReplaceAll(b, "127.0.0.1:40000", fx.client.String())
	return []byte(b)
}

// newTestForwarder6 is newTestForwarder on [::1]:5060 with IPv6 backends.
func newTestForwarder6(t testing.TB) *Forwarder {
	t.Helper()
	pc := balance.PoolConfig{Name: "farm"}
	for _, a := range fixture6.backends {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a})
	}
	return newPoolForwarder(t, pc, Config{Legs: []LegConfig{{Transport: balance.UDP, Addr: netip.MustParseAddrPort("[::1]:5060")}}})
}
