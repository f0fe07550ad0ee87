package engine

import (
	"sync/atomic"
	"time"

	"github.com/siplb/siplb/pool"
)

// A graceful stop: Drain closes the stream listeners, so new TCP, TLS and
// WebSocket connections are refused and go to another instance; new dialogs from
// outside get a stateless 503 (or are still forwarded); requests inside
// dialogs and every response keep flowing over UDP and over the
// connections already open; and each connection is closed once it is idle:
// no transaction open on it, nothing carried for DrainOptions.Idle. siplb
// keeps no per-call state, so "a transaction open" is counted per
// connection from the first line of what it carries (txTrack): a request
// other than ACK opens one, a final response closes one. A request that is
// never answered keeps its connection until the caller ends Run.

// NewDialogs is what a draining Server does with a request from outside
// that would start a dialog: one without a To tag, other than ACK and
// CANCEL (a CANCEL belongs to an INVITE already forwarded).
type NewDialogs int

const (
	// RejectNewDialogs answers it with a stateless 503 Service Unavailable
	// and Retry-After (Config.RetryAfter): the client tries another
	// instance (RFC 3261 §21.5.4, RFC 3263 §4.3).
	RejectNewDialogs NewDialogs = iota
	// ForwardNewDialogs forwards it as before the drain.
	ForwardNewDialogs
)

// DefaultDrainIdle is DrainOptions.Idle's default.
const DefaultDrainIdle = 2 * time.Second

// DrainOptions configures a drain.
type DrainOptions struct {
	NewDialogs NewDialogs
	// Idle is how long a connection with no transaction open on it must go
	// without a message to be closed (DefaultDrainIdle when 0): long
	// enough for the ACK that follows a 2xx.
	Idle time.Duration
}

// Drain begins a graceful stop (see above); Run goes on serving until its
// context ends, which the caller decides: when Stats says no connection is
// open and nothing is being forwarded, or at a deadline. It may be called
// more than once (the first call's listeners stay closed; the options are
// the last call's) and from any goroutine, once Ready is closed.
func (s *Server) Drain(o DrainOptions) {
	if o.Idle <= 0 {
		o.Idle = DefaultDrainIdle
	}
	s.drainIdle.Store(int64(o.Idle))
	s.f.draining.Store(o.NewDialogs == RejectNewDialogs)
	if !s.draining.CompareAndSwap(false, true) {
		return
	}
	s.closeListeners()
	// TLS readers wait in a read with a deadline of up to the idle expiry,
	// WebSocket idle timers for as long: wake them, so each looks at its
	// connection now and then (readStream, wsIdle).
	now := time.Now()
	s.reg.Range(func(_ pool.ConnID, sc *streamConn) bool {
		switch {
		case sc.tls != nil:
			sc.tls.conn.SetReadDeadline(now)
		case sc.ws != nil:
			wsDrainWake(sc.ws)
		}
		return true
	})
	s.log.Info("draining: stream listeners closed", "new_dialogs", o.NewDialogs.String(), "idle", o.Idle)
}

// Draining reports whether Drain has been called.
func (s *Server) Draining() bool { return s.draining.Load() }

// String names the policy as the configuration does.
func (n NewDialogs) String() string {
	if n == ForwardNewDialogs {
		return "forward"
	}
	return "reject"
}

// drainIdleFor reports whether sc may be closed by a drain at coarse time
// now: Drain was called and sc has had no transaction open nor carried a
// message for the drain's Idle.
func (s *Server) drainIdleFor(sc *streamConn, now int64) bool {
	return s.draining.Load() && sc.tx.idle(now, s.drainIdle.Load())
}

// maxOpenTx caps the count of transactions open on a connection: requests
// never answered must not make it wrap.
const maxOpenTx = 1 << 20

// txTrack is a stream's bookkeeping for the drain: the transactions open
// on it, and when it last carried a SIP message. Written by whoever carries
// a message on the stream (its reader, and writers on other loops); read
// by the sweeper and the TLS reader.
type txTrack struct {
	open atomic.Int32
	last atomic.Int64 // coarse UnixNano
}

// carry notes a message b the stream carries, in either direction, at
// coarse time now: a request other than ACK opens a transaction (it is
// answered on this stream, or its answer is sent back over it), a final
// response (2xx-6xx) closes one. Pings and bytes that are not SIP change
// nothing. It reads b's first bytes only and does not allocate.
func (t *txTrack) carry(b []byte, now int64) {
	if len(b) == 0 {
		return
	}
	switch c := b[0]; {
	case len(b) > 8 && string(b[:8]) == "SIP/2.0 ":
		if b[8] >= '2' && b[8] <= '6' {
			for {
				n := t.open.Load()
				if n <= 0 || t.open.CompareAndSwap(n, n-1) {
					break
				}
			}
		}
	case c >= 'A' && c <= 'Z':
		if !(len(b) > 4 && string(b[:4]) == "ACK ") && t.open.Load() < maxOpenTx {
			t.open.Add(1)
		}
	default:
		return
	}
	if t.last.Load() != now {
		t.last.Store(now)
	}
}

// idle reports whether no transaction is open and nothing was carried for
// idle nanoseconds before now.
func (t *txTrack) idle(now, idle int64) bool {
	return t.open.Load() <= 0 && now-t.last.Load() >= idle
}
