package mmsg

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// Sockaddr writes ap into sa4 or sa6, whichever its family takes (an
// IPv4-mapped address is IPv4), and returns that one as the unix.Sockaddr
// unix.Sendto takes. The result is the caller's storage: unix.Sendto writes
// into it, so each goroutine sending keeps its own. Zones are not carried.
// It does not allocate.
func Sockaddr(ap netip.AddrPort, sa4 *unix.SockaddrInet4, sa6 *unix.SockaddrInet6) unix.Sockaddr {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		sa4.Addr = a.Unmap().As4()
		sa4.Port = int(ap.Port())
		return sa4
	}
	sa6.Addr = a.As16()
	sa6.Port = int(ap.Port())
	sa6.ZoneId = 0
	return sa6
}
