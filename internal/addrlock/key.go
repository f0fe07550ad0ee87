package addrlock

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// namePrefix starts every lock's abstract socket name.
const namePrefix = "siplb/"

// Key is one listen address as the lock sees it: a transport class and an
// address whose IP is unmapped, or unspecified for the wildcard. The zero
// Key is invalid.
type Key struct {
	Net  string         // "udp" or "tcp" (tcp://, tls://, ws:// and wss:// listeners)
	Addr netip.AddrPort // IP unmapped; 0.0.0.0 for any wildcard
}

// ErrTransport is a transport NewKey does not know.
var ErrTransport = errors.New("addrlock: transport is not udp, tcp, tls, ws or wss")

// NewKey returns the key of a listener of transport ("udp", "tcp", "tls",
// "ws" or "wss", case-insensitive) on ap.
func NewKey(transport string, ap netip.AddrPort) (Key, error) {
	var n string
	switch strings.ToLower(transport) {
	case "udp":
		n = "udp"
	case "tcp", "tls", "ws", "wss":
		n = "tcp"
	default:
		return Key{}, fmt.Errorf("%w: %q", ErrTransport, transport)
	}
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		ip = netip.IPv4Unspecified()
	}
	return Key{Net: n, Addr: netip.AddrPortFrom(ip, ap.Port())}, nil
}

// Wildcard reports whether k covers every address of its port.
func (k Key) Wildcard() bool { return k.Addr.Addr().IsUnspecified() }

// wildcard returns the wildcard key of k's port.
func (k Key) wildcard() Key {
	return Key{Net: k.Net, Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), k.Addr.Port())}
}

// Conflicts reports whether two listeners on k and o would share traffic:
// same class and port, and equal IPs or either the wildcard.
func (k Key) Conflicts(o Key) bool {
	if k.Net != o.Net || k.Addr.Port() != o.Addr.Port() {
		return false
	}
	return k.Wildcard() || o.Wildcard() || k.Addr.Addr() == o.Addr.Addr()
}

// String returns "udp/127.0.0.1:5060", "tcp/[::1]:5061" or "udp/*:5060".
func (k Key) String() string {
	if k.Wildcard() {
		return k.Net + "/*:" + strconv.Itoa(int(k.Addr.Port()))
	}
	return k.Net + "/" + k.Addr.String()
}

// name is the abstract socket name of k, without the leading NUL.
func (k Key) name() string { return namePrefix + k.String() }

// parseName is the inverse of name.
func parseName(s string) (Key, bool) {
	rest, ok := strings.CutPrefix(s, namePrefix)
	if !ok {
		return Key{}, false
	}
	n, addr, ok := strings.Cut(rest, "/")
	if !ok || (n != "udp" && n != "tcp") {
		return Key{}, false
	}
	if p, ok := strings.CutPrefix(addr, "*:"); ok {
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return Key{}, false
		}
		return Key{Net: n, Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))}, true
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Addr().IsUnspecified() || ap.Addr().Is4In6() {
		return Key{}, false
	}
	return Key{Net: n, Addr: ap}, true
}

// HeldError is a key whose lock another siplb holds.
type HeldError struct {
	Key    Key // the key asked for
	Holder Key // the key held: Key itself, or a wildcard or specific key that conflicts with it
	PID    int // the holder's pid; 0 if unknown (it has not listened yet, or lives in another pid namespace)
	UID    int // the holder's effective uid; -1 if unknown
	// Foreign: the holder runs under another uid, so SO_REUSEPORT cannot
	// share the port with it; the caller may go on without the lock.
	Foreign bool
}

// ErrHeld matches every *HeldError with errors.Is.
var ErrHeld = errors.New("addrlock: address already served by siplb")

func (e *HeldError) Error() string {
	var b strings.Builder
	if e.PID > 0 {
		fmt.Fprintf(&b, "already served by siplb pid %d", e.PID)
	} else {
		b.WriteString("already served by another siplb (pid unknown)")
	}
	if e.Holder != e.Key {
		fmt.Fprintf(&b, " listening on %s", e.Holder)
	}
	if e.Foreign {
		fmt.Fprintf(&b, " under uid %d", e.UID)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrHeld) hold.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }
