package engine

import (
	"bytes"
	"crypto/tls"
	"net/netip"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/guard"
	"github.com/siplb/siplb/parser"
)

// The edge defences (package guard) as the forwarding rules apply them:
// a listener's allow/deny lists and the flood detector before a message is
// parsed, the scanner filter once it is, and the limit on stateless replies
// to UDP senders. Pool members are never blocked nor limited: their
// traffic is what siplb is for.

// clockTick is how often the coarse clock the defences read advances.
const clockTick = 5 * time.Millisecond

// clockIdleTicks is how many ticks pass without a read of the coarse clock
// before it parks: an idle siplb then wakes for no tick at all (each costs
// the process a timer, a netpoller wake-up and the scheduler's spinning,
// ≈ 200 a second and ≈ 1.5 % of a core per idle instance before).
const clockIdleTicks = 20

// now is the coarse clock in UnixNano: the running server's ticker, else
// the wall clock (a Forwarder used without a Server, in tests and tools,
// or a parked clock, which this read restarts).
func (f *Forwarder) now() int64 {
	if !f.clockUsed.Load() {
		// One store per tick at most: the line stays shared between the
		// readers until the ticker clears the flag.
		f.clockUsed.Store(true)
	}
	if c := f.clock.Load(); c != 0 {
		return c
	}
	select {
	case f.clockWake <- struct{}{}:
	default:
	}
	return time.Now().UnixNano()
}

// runClock advances the coarse clock until stop is closed. After
// clockIdleTicks ticks in which nobody read it, it stores 0 (readers take
// the wall clock) and waits for a reader to wake it.
func (f *Forwarder) runClock(stop <-chan struct{}) {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	defer f.clock.Store(0)
	f.clock.Store(time.Now().UnixNano())
	idle := 0
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			f.clock.Store(now.UnixNano())
			if f.clockUsed.Swap(false) {
				idle = 0
				continue
			}
			if idle++; idle < clockIdleTicks {
				continue
			}
		}
		// Park. A reader that saw the old value before the 0 was stored
		// used a time at most a tick old; one that sees the 0 reads the
		// wall clock and wakes the ticker (the channel keeps the wake-up
		// if it comes before the select).
		t.Stop()
		select { // a wake-up left from the last time parked
		case <-f.clockWake:
		default:
		}
		f.clock.Store(0)
		select {
		case <-f.clockWake:
		default:
			select {
			case <-stop:
				return
			case <-f.clockWake:
			}
		}
		idle = 0
		f.clockUsed.Store(false)
		f.clock.Store(time.Now().UnixNano())
		t.Reset(clockTick)
	}
}

// admit says whether a message from src on leg in may be looked at: the
// leg's ACL permits src, and src is a member, a trusted source, or not
// blocked by the flood detector (DropNone), or why not. A refused message
// is counted; a source blocked anew is logged, once per block.
func (f *Forwarder) admit(s *Scratch, src netip.AddrPort, in *Leg) Drop {
	ip := src.Addr()
	if in.acl != nil && !in.acl.Permit(ip) {
		s.Counters.Drops[DropDenied].Add(1)
		return DropDenied
	}
	if f.guard == nil || s.src.isMember(f.bal.Table(), src) {
		return DropNone
	}
	v := f.guard.Check(ip, f.now())
	if !v.Drop() {
		return DropNone
	}
	s.Counters.Drops[DropFlood].Add(1)
	if v == guard.NewlyBlocked {
		f.log.Warn("source blocked by the flood detector", "source", ip.Unmap().String(), "leg", in.Name)
		if f.onBlock != nil {
			f.onBlock(ip)
		}
	}
	return DropFlood
}

// AdmitConn reports whether a connection from peer may be accepted on leg
// in (its ACL, the flood detector), counting a refusal in cnt.
func (f *Forwarder) AdmitConn(cnt *Counters, peer netip.AddrPort, in *Leg) bool {
	ip := peer.Addr()
	if in.acl != nil && !in.acl.Permit(ip) {
		cnt.Drops[DropDenied].Add(1)
		return false
	}
	if f.guard == nil || f.isMember(peer) || !f.guard.Check(ip, f.now()).Drop() {
		return true
	}
	cnt.Drops[DropFlood].Add(1)
	return false
}

// isMember reports whether src is a pool member or in a pool's
// backend_sources: never blocked nor limited.
func (f *Forwarder) isMember(src netip.AddrPort) bool {
	t := f.bal.Table()
	if _, ok := t.Lookup(src); ok {
		return true
	}
	return t.BackendSource(src.Addr())
}

// backendCert reports whether a TLS peer's verified client certificate
// names a backend (a pool's backend_certs): its Common Name or a DNS SAN.
// An unverified certificate (client_auth none, or no CA) never counts.
func (f *Forwarder) backendCert(cs tls.ConnectionState) bool {
	t := f.bal.Table()
	if !t.HasBackendCerts() || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return false
	}
	leaf := cs.VerifiedChains[0][0]
	if leaf.Subject.CommonName != "" && t.BackendCert(leaf.Subject.CommonName) {
		return true
	}
	for _, n := range leaf.DNSNames {
		if t.BackendCert(n) {
			return true
		}
	}
	return false
}

// scanner reports whether the request in s.Msg comes from a known SIP
// scanner (its User-Agent, or the display name of its From).
func (f *Forwarder) scanner(s *Scratch) bool {
	if f.guard == nil {
		return false
	}
	m := &s.Msg
	if ua := m.Header(parser.HdrUserAgent); len(ua) > 0 && f.guard.Scanner(ua) {
		return true
	}
	from := m.Header(parser.HdrFrom)
	if i := bytes.IndexByte(from, '<'); i > 0 && f.guard.Scanner(from[:i]) {
		return true
	}
	return false
}

// allowReply reports whether a stateless reply may go to src: replies over
// UDP are limited per source and in total, so siplb never reflects more
// than junk sends it. Streams are not limited (a connection proved its
// address).
func (f *Forwarder) allowReply(s *Scratch, src netip.AddrPort, in *Leg) bool {
	if f.guard == nil || in.Transport != balance.UDP || s.inConn != 0 {
		return true
	}
	if f.guard.AllowReply(src.Addr(), f.now()) {
		return true
	}
	s.Counters.Drops[DropReplyLimited].Add(1)
	return false
}

// GuardStats returns the edge defences' counters (zero without them).
func (f *Forwarder) GuardStats() guard.Stats { return f.guard.Stats() }
