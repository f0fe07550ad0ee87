package balance

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// MinHintProbeGap is the least time between two probes of one backend that
// hints start (Checker.Unreachable); the gap is the larger of it and the
// pool's Timeout. A flood of hints, genuine or forged, thus costs at most one
// extra probe per backend per gap.
const MinHintProbeGap = 500 * time.Millisecond

// Unreachable takes a hint from the engine that backend addr may be
// unreachable: an ICMP destination unreachable whose offender is the backend
// (UDP), or a connection to it that failed (TCP, TLS). A hint is not a
// verdict, since an ICMP error can be forged by anyone who can spoof the
// backend's address: only probes mark a backend down. A hint for an up
// backend with no probe in flight probes it at once, unless a hint already
// started a probe of it less than the larger of MinHintProbeGap and the
// pool's Timeout ago (so a flood of hints costs at most one probe per gap);
// and it puts the backend in quick re-probing: while it stays up, a failed
// probe is followed by the next one a Timeout after the failed one was sent
// rather than an Interval, so a dead backend is marked down about
// Fall×Timeout after the hint (the reason says which hint it followed), and
// one that answers in that time (a backend started just after siplb) is
// never marked down. The first answered probe ends quick re-probing, and
// hints while it lasts change nothing, so the Fall probes that mark a
// backend down span at least (Fall-1)×Timeout even when each fails at once
// (a refused connect).
//
// An ICMP hint never settles a probe: only the probe's own answer or
// timeout does. A connection hint (Hint.Connect) for a stream backend fails
// its probe in flight, which goes over a connection of its own, and is
// counted by its kind for the reason: a refused TCP connection cannot be
// forged off the path (the reset must acknowledge the SYN's sequence
// number).
//
// Hints for a backend already down change nothing else (it is being
// re-probed). Hints for addresses that are not probed (not configured,
// Disabled by the operator, or in a pool whose probing is Disabled) are
// ignored and counted in HintStats.Ignored: no probe could confirm them, and
// no probe would ever mark the backend up again. Safe for concurrent use; it
// does not allocate unless it marks the backend down.
func (c *Checker) Unreachable(addr netip.AddrPort, hint Hint) {
	c.hints.received.Add(1)
	addr = unmap(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.targets[addr]
	if t == nil {
		c.hints.ignored.Add(1)
		return
	}
	now := time.Now()
	if t.pending != 0 && t.transport != UDP && hint.Connect() {
		if t.up {
			t.hint = hint
		}
		t.conn[hint]++
		c.fail(t, now)
		return
	}
	if !t.up || t.hint != 0 && t.fails > 0 {
		return // down, or re-probed quickly already
	}
	t.hint = hint
	if t.pending != 0 {
		return // the probe in flight confirms it or not
	}
	if !t.hintProbe.IsZero() && now.Sub(t.hintProbe) < max(t.cfg.Timeout, MinHintProbeGap) {
		c.hints.limited.Add(1)
		return
	}
	t.hintProbe = now
	t.next = now
	c.hints.probed.Add(1)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// HintStats counts the hints Checker.Unreachable took.
type HintStats struct {
	Received uint64 // all hints
	Probed   uint64 // that started a probe at once
	Limited  uint64 // for an up backend, not probed again within the gap
	Ignored  uint64 // for addresses that are not probed
}

type hintCounts struct {
	received, probed, limited, ignored atomic.Uint64
}

// HintStats returns the counts of hints so far; for metrics and tests.
func (c *Checker) HintStats() HintStats {
	return HintStats{Received: c.hints.received.Load(), Probed: c.hints.probed.Load(),
		Limited: c.hints.limited.Load(), Ignored: c.hints.ignored.Load()}
}

// Hint is what the engine saw that suggests a backend may be unreachable,
// for Checker.Unreachable. The zero Hint is none.
type Hint uint8

const (
	HintPortUnreachable Hint = iota + 1 // ICMP port unreachable (ICMPv6 code 4)
	HintHostUnreachable                 // ICMP host unreachable (ICMPv6 address unreachable)
	HintNetUnreachable                  // ICMP network unreachable (ICMPv6 no route)
	HintProhibited                      // ICMP communication administratively prohibited
	HintConnectRefused                  // a TCP or TLS connection refused (RST to the SYN)
	HintConnectFailed                   // a TCP or TLS connection that failed otherwise
	HintConnectTimeout                  // a TCP or TLS connection not established within the connect timeout
	HintTLSHandshake                    // a TCP connection made whose TLS handshake failed (alert, certificate, timeout)

	numHints = iota + 1
)

var hintNames = [numHints]string{
	HintPortUnreachable: "ICMP port unreachable",
	HintHostUnreachable: "ICMP host unreachable",
	HintNetUnreachable:  "ICMP network unreachable",
	HintProhibited:      "ICMP administratively prohibited",
	HintConnectRefused:  "connect refused",
	HintConnectFailed:   "connect failed",
	HintConnectTimeout:  "connect timed out",
	HintTLSHandshake:    "TLS handshake failed",
}

// String names h for logs and reasons: "ICMP port unreachable", "connect
// refused", "TLS handshake failed".
func (h Hint) String() string {
	if h == 0 || int(h) >= len(hintNames) {
		return "unknown hint"
	}
	return hintNames[h]
}

// Connect reports whether h is about a TCP or TLS connection (the
// HintConnect* and HintTLSHandshake hints) rather than an ICMP error.
func (h Hint) Connect() bool { return h >= HintConnectRefused && h <= HintTLSHandshake }

// ConnectHint returns the Hint for a TCP or TLS connection to a backend that
// failed with err (from net.Dialer, or from a TLS dial that connects and
// then shakes hands): HintConnectRefused if the backend refused it
// (ECONNREFUSED); HintConnectTimeout if the connect itself timed out;
// HintTLSHandshake if the connection was made and its handshake failed (a
// TLS alert, a certificate that does not verify, a record that is not TLS,
// the handshake's timeout; crypto/tls's errors that have no type are told
// by their "tls: " text); else HintConnectFailed.
func ConnectHint(err error) Hint {
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return HintConnectRefused
	case errors.As(err, &op) && op.Op == "dial":
		if op.Timeout() {
			return HintConnectTimeout
		}
		return HintConnectFailed
	case tlsHandshakeError(err):
		return HintTLSHandshake
	}
	return HintConnectFailed
}

// tlsHandshakeError reports whether err, which is not from the connect,
// came from a TLS handshake.
func tlsHandshakeError(err error) bool {
	var (
		rec    tls.RecordHeaderError
		alert  tls.AlertError
		verify *tls.CertificateVerificationError
		auth   x509.UnknownAuthorityError
		host   x509.HostnameError
		inval  x509.CertificateInvalidError
		op     *net.OpError
		nerr   net.Error
	)
	switch {
	case errors.As(err, &rec), errors.As(err, &alert), errors.As(err, &verify),
		errors.As(err, &auth), errors.As(err, &host), errors.As(err, &inval):
		return true
	case errors.As(err, &op) && op.Op == "remote error":
		return true // an alert the backend sent
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true // the backend closed the connection during the handshake
	case errors.As(err, &nerr) && nerr.Timeout():
		return true // past the connect, only a handshake can time out
	}
	return strings.Contains(err.Error(), "tls: ")
}
