package balance

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/siplb/siplb/internal/fnv1a"
)

// Limits on configured values. Both are 16-bit like the fields of a DNS SRV
// record (RFC 2782), from which pools may later be discovered.
const (
	MaxWeight   = 65535
	MaxPriority = 65535
	// DefaultWeight is the weight of a member configured with Weight 0.
	DefaultWeight = 1
	// DefaultPriority is the priority of a member configured with Priority 0.
	// As in DNS SRV, a lower number is a higher priority, so 1 is the highest
	// priority that can be written explicitly, and an unset Priority joins it.
	DefaultPriority = 1
)

// BackendConfig is one configured member of a pool.
type BackendConfig struct {
	// Addr is the backend's IP address and port. The port must not be 0; an
	// IPv4-mapped IPv6 address is stored as plain IPv4.
	Addr netip.AddrPort
	// Transport is the transport siplb uses to reach it (default UDP).
	Transport Transport
	// AlsoTCP says a UDP member also takes TCP on the same address: a
	// request too large for UDP (RFC 3261 §18.1.1) goes to it over TCP.
	AlsoTCP bool
	// Weight is the member's share within its priority group, 0..MaxWeight;
	// 0 means DefaultWeight (1).
	Weight int
	// Priority is the member's priority group, 0..MaxPriority; a lower number
	// is a higher priority (as in DNS SRV), and 0 means DefaultPriority (1),
	// so members with Priority 0 and 1 share one group. A group takes new
	// dialogs only while every group with a lower number has no member Up.
	Priority int
	// State is the operator's state: Up (default), Disabled or Draining. Down
	// is accepted as an initial health mark: the member starts Down until
	// SetHealth reports it up (on Reload it applies to new members only).
	State State
	// MaxCPS caps the new dialogs per second it takes (overload.go), 0 the
	// pool's MaxCPS (0 there: no cap); at most MaxCPS.
	MaxCPS float64
}

// Backend is one member of a pool in one Table. It is immutable; pointers to
// it stay valid (and keep describing that Table's view) for as long as the
// caller holds them, even after newer Tables are published.
type Backend struct {
	Addr      netip.AddrPort
	Transport Transport
	Weight    int // effective weight, ≥ 1
	Priority  int // effective priority, ≥ 1
	State     State
	// AlsoTCP: a UDP member that also takes TCP on Addr (BackendConfig).
	AlsoTCP bool
	// MaxCPS is its cap on new dialogs per second, 0 for none.
	MaxCPS float64
	// Stats are the address's traffic counts, the same across Tables.
	Stats *BackendStats
	Pool  int // index of its pool in the Table
	Index int // index within the pool, in configuration order

	seed     uint64      // stable per address:port/transport, see backendSeed
	weight   float64     // Weight as float64 for rendezvous scores
	cfgState State       // operator state: Up, Disabled or Draining
	healthy  bool        // health mark: false after SetHealth(addr, false)
	lat      latencyMark // from SetLatency (latency.go)
	latCost  int8        // cost in its group, set by prepareLatency

	cpsInterval int64 // 1e9/MaxCPS: ns between two new dialogs, 0 without a cap
}

// Usable reports whether an in-dialog request may go to b: it is Up or
// Draining.
func (b *Backend) Usable() bool { return b.State == Up || b.State == Draining }

// Healthy reports the health mark of b (false after SetHealth(addr, false)),
// whatever the operator's state.
func (b *Backend) Healthy() bool { return b.healthy }

// ConfigState returns the operator's state of b (Up, Disabled or Draining),
// before the health mark is applied.
func (b *Backend) ConfigState() State { return b.cfgState }

// String returns "addr:port/transport", e.g. "10.0.0.1:5060/udp" or
// "[2001:db8::1]:5061/tls". It allocates; for logs and the admin API.
func (b *Backend) String() string { return backendKey(b.Addr, b.Transport) }

// backendKey is the identity string the seed is derived from.
func backendKey(ap netip.AddrPort, t Transport) string {
	buf := make([]byte, 0, 64)
	buf = ap.AppendTo(buf)
	buf = append(buf, '/')
	buf = append(buf, t.String()...)
	return string(buf)
}

// backendSeed derives the rendezvous seed of a member from its identity
// "addr:port/transport" alone, so that it is the same in every process and
// does not depend on the member's position in the list or on other members.
func backendSeed(ap netip.AddrPort, t Transport) uint64 {
	return fnv1a.Mix(hashString(backendKey(ap, t)))
}

// checkZone checks the zone of a link-local backend address: a number, or
// the name of an interface of this host.
func checkZone(a netip.Addr) error {
	z := a.Zone()
	if z == "" {
		return nil
	}
	if _, err := strconv.ParseUint(z, 10, 32); err == nil {
		return nil
	}
	if _, err := net.InterfaceByName(z); err != nil {
		return fmt.Errorf("%w: zone %q: %v", ErrInvalidAddr, z, err)
	}
	return nil
}
