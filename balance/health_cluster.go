package balance

import (
	"net/netip"
	"time"
)

// Verdict is a health mark a Checker made, or one another cluster member
// made that a Checker takes (ApplyVerdict).
type Verdict struct {
	Addr   netip.AddrPort
	Up     bool
	Reason string // why, as BackendHealth.Reason
}

// SetCluster splits probing with other instances (package cluster): owner
// reports whether this instance probes the backend at an address (the
// others' verdicts come through ApplyVerdict), and onVerdict, if not nil,
// is told of each mark this Checker makes, by probes or passive detection,
// so that it can be shared. A backend this instance does not own is not
// probed; passive detection (Observe) still applies to it. A backend it
// comes to own (a member left) is probed at once, from the mark it has.
// Call SetCluster before Run. owner is called for every probed backend at
// every round, with the Checker's lock held: it must be quick and must not
// call the Checker; so must onVerdict, which is called with the lock held
// too. Without SetCluster (nil owner) this instance probes everything.
func (c *Checker) SetCluster(owner func(netip.AddrPort) bool, onVerdict func(Verdict)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owner, c.onVerdict = owner, onVerdict
}

// Reown asks Run for a round now, after the owners may have changed (a
// member joined or left), so that backends this instance now owns are
// probed at once. Safe for concurrent use; it does not block.
func (c *Checker) Reown() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ApplyVerdict takes the health mark another member made of the backend at
// v.Addr: the Balancer's mark follows it (as SetHealth), and so does this
// Checker's, whose count of probes starts afresh. It reports whether the
// mark changed. It does not call onVerdict. Safe for concurrent use.
func (c *Checker) ApplyVerdict(v Verdict) bool {
	addr := unmap(v.Addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if t := c.targets[addr]; t != nil && t.up != v.Up {
		t.up = v.Up
		t.reason, t.since = v.Reason, now
		c.resetCounts(t)
		if !v.Up {
			t.downAt = now
			if !t.remote {
				// A peer's passive detection marked a backend this
				// instance probes: re-probe it as after its own mark.
				c.settle(t)
				t.next = now.Add(t.cfg.DownInterval)
			}
		}
	}
	if !c.bal.SetHealth(addr, v.Up) {
		return false
	}
	if v.Up {
		c.log.Info("backend up (cluster verdict)", "backend", addr, "reason", v.Reason)
	} else {
		c.log.Warn("backend down (cluster verdict)", "backend", addr, "reason", v.Reason)
	}
	return true
}

// skipRemote reports whether another member probes t; a target that this
// instance comes to own again is probed at once. Called with c.mu.
func (c *Checker) skipRemote(t *healthTarget, now time.Time) bool {
	if c.owner == nil || c.owner(t.addr) {
		if t.remote {
			t.remote = false
			c.resetCounts(t)
			t.next = now
			if !t.up {
				t.downAt = now
			}
		}
		return false
	}
	if !t.remote {
		t.remote = true
		c.settle(t)
		c.resetCounts(t)
	}
	return true
}

// verdict tells onVerdict of t's mark. Called with c.mu.
func (c *Checker) verdict(t *healthTarget) {
	if c.onVerdict != nil {
		c.onVerdict(Verdict{Addr: t.addr, Up: t.up, Reason: t.reason})
	}
}
