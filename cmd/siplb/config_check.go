package main

import (
	"fmt"
	"net/netip"

	"github.com/siplb/siplb/balance"
)

// The checks of Validate that look across sections: what passes them can
// be sent from the listeners configured. They mirror the engine's rules, so
// that a configuration --check passes also starts and forwards (before them,
// some of these started and black-holed).

// socketKind is what two listeners conflict on: UDP, or a TCP socket
// (tcp:// and tls:// both listen on one).
func socketKind(tr balance.Transport) string {
	if tr == balance.UDP {
		return "udp"
	}
	return "tcp"
}

// family names an address's family.
func family(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// checkReach refuses:
//   - two listeners on one socket address (tcp:// and tls:// on one port
//     would split connections between them through SO_REUSEPORT);
//   - a backend (or a discovery source's members) whose transport has no
//     listener: requests to a backend leave from the first listener of its
//     transport, so without one nothing reaches it;
//   - a UDP backend of another address family than that first UDP
//     listener: a socket of one family cannot send to the other, and the
//     datagrams would be counted as forwarded and never sent.
func (c *Config) checkReach() error {
	type sock struct {
		kind string
		ap   netip.AddrPort
	}
	bound := make(map[sock]int, len(c.Listen))
	first := map[balance.Transport]int{} // index of the first listener of each transport
	addrs := make([]netip.AddrPort, len(c.Listen))
	for i, l := range c.Listen {
		tr, ap, err := parseEndpoint(l.Address)
		if err != nil {
			return invalid(fmt.Sprintf("listen[%d].address", i), "%v", err)
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		addrs[i] = ap
		k := sock{socketKind(tr), ap}
		if j, dup := bound[k]; dup && ap.Port() != 0 {
			return invalid(fmt.Sprintf("listen[%d].address", i), "%s is already a %s socket of listen[%d] (%s)", ap, k.kind, j, c.Listen[j].Address)
		}
		bound[k] = i
		if _, ok := first[tr]; !ok {
			first[tr] = i
		}
	}
	for i, p := range c.Pools {
		for j, b := range p.Backends {
			key := fmt.Sprintf("pools[%d].backends[%d].address", i, j)
			tr, ap, err := parseEndpoint(b.Address)
			if err != nil {
				return invalid(key, "%v", err)
			}
			li, ok := first[tr]
			if !ok {
				return invalid(key, "no %s:// listener to send to it from (listen has none)", tr)
			}
			if tr != balance.UDP {
				continue // connections are dialed, from either family
			}
			if got, want := family(ap.Addr()), family(addrs[li].Addr()); got != want {
				return invalid(key, "no udp:// listener of its address family (%s): UDP requests to backends leave from listen[%d] (%s, %s)", got, li, c.Listen[li].Address, want)
			}
		}
		for j, d := range p.Discovery {
			if d.SRV != "" {
				continue // the records say the transport
			}
			tr := balance.UDP
			if d.Transport != "" {
				tr, _ = balance.ParseTransport(d.Transport) // checked before
			}
			if _, ok := first[tr]; !ok {
				return invalid(fmt.Sprintf("pools[%d].discovery[%d].transport", i, j), "no %s:// listener to send to its members from (listen has none)", tr)
			}
		}
	}
	return nil
}
