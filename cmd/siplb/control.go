package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplb/siplb/balance"
)

// errNothingToReload is reload's answer when siplb runs without --config.
var errNothingToReload = errors.New("siplb was started without --config: there is no file to reload")

// control is what serve shares with the admin listener: how to reload the
// configuration (what SIGHUP does), the outcome of reloads, and whether
// siplb is ready for traffic. Safe for concurrent use.
type control struct {
	bal      *balance.Balancer
	reloadFn func() error
	reloads  *reloadStats

	mu sync.Mutex // serializes reloads, so that each one's changes are its own

	// notify tells systemd of each reload (RELOADING=1, then READY=1); nil
	// outside systemd. Set before the control is shared.
	notify *notifier
	// token, once set, is the admin token in force: a reload changes it
	// (admin.token, admin.token_file) without restarting the listener.
	token atomic.Pointer[string]
	// cluster is this instance's cluster membership (cluster.go); nil when
	// cluster.enabled is false. Set before the control is shared.
	cluster *clusterRuntime

	ready      atomic.Bool  // set by serve once the data path runs; cleared while draining
	readySince atomic.Int64 // UnixNano of the first SetReady(true); 0 before
	stopping   atomic.Bool  // the serving context is done
	probed     atomic.Bool  // latched: every probed backend had its first probe settle

	// upgradeFn starts a successor process and waits for it (upgrade.go);
	// listen opens the admin listener so that it is handed over too. Both
	// nil without an upgrader. Set before the control is shared.
	upgradeFn func() error
	listen    func(network, addr string) (net.Listener, error)
}

// newControl returns the control of a serve whose reload (SIGHUP's work)
// is reload; the configuration counts as loaded now.
func newControl(bal *balance.Balancer, reload func() error) *control {
	return &control{bal: bal, reloadFn: reload, reloads: newReloadStats(time.Now())}
}

// Reload reloads as SIGHUP does and counts the outcome (a siplb without
// --config has nothing to reload: errNothingToReload, not counted).
func (c *control) Reload() error {
	_, err := c.reloadChanges()
	return err
}

// reloadChanges is Reload, also returning what the reload changed in the
// pools.
func (c *control) reloadChanges() ([]poolChange, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.bal.Table()
	c.notify.Reloading()
	err := c.reloadFn()
	c.notify.ReloadDone(err)
	if !errors.Is(err, errNothingToReload) {
		c.reloads.record(err, time.Now())
	}
	if err != nil {
		return nil, err
	}
	return tableChanges(before, c.bal.Table()), nil
}

// gate is requireToken with the token in force at each request: the one
// the last reload set, else initial (the start's).
func (c *control) gate(initial string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := initial
		if p := c.token.Load(); p != nil {
			tok = *p
		}
		requireToken(tok, h).ServeHTTP(w, r)
	})
}

// SetReady says whether siplb takes traffic: serve sets it once the data
// path runs, and a drain before stopping clears it. /readyz also waits for
// the first round of health probes.
func (c *control) SetReady(ready bool) {
	if ready {
		c.readySince.CompareAndSwap(0, time.Now().UnixNano())
	}
	c.ready.Store(ready)
}

// readiness reports whether siplb is ready, and if not why: starting,
// draining, stopping, or waiting for the first health round. health is the
// Checker's Status (nil without one); now is the time of the question.
func (c *control) readiness(health []balance.BackendHealth, now time.Time) (bool, string) {
	switch {
	case c.stopping.Load():
		return false, "stopping"
	case !c.ready.Load() && c.readySince.Load() == 0:
		return false, "starting"
	case !c.ready.Load():
		return false, "draining"
	case c.probed.Load():
		return true, "ready"
	}
	// Before the Checker's first round its Status is empty; a Checker that
	// probes nothing (every pool's probing disabled) stays empty, so an empty
	// Status counts as done once the Checker has surely looked at the Table.
	if len(health) == 0 && now.Sub(time.Unix(0, c.readySince.Load())) < probeStartGrace {
		return false, "waiting for the health checker to start"
	}
	settled := 0
	for _, h := range health {
		// A backend another cluster member probes has its verdict from it.
		if h.Remote || h.Failures+h.Successes > 0 || !h.Since.IsZero() {
			settled++
		}
	}
	if settled < len(health) {
		return false, fmt.Sprintf("waiting for the first health round: %d of %d backends probed", settled, len(health))
	}
	c.probed.Store(true)
	return true, "ready"
}

// probeStartGrace is how long readiness waits for the Checker's first look
// at the Table (it looks at once when it starts, and every second).
const probeStartGrace = time.Second

// poolChange is one difference a reload made to the pools.
type poolChange struct {
	Pool    string `json:"pool"`
	Backend string `json:"backend,omitempty"` // empty for a change of the pool itself
	Change  string `json:"change"`            // added, removed or changed
	Detail  string `json:"detail,omitempty"`  // for changed: "weight 1 -> 3, state draining -> up"
}

// tableChanges lists what differs between two Tables in the configuration:
// pools and members added or removed, and each member's transport, weight,
// priority and operator state, in the order of after (then removals). Health
// marks are not compared.
func tableChanges(before, after *balance.Table) []poolChange {
	out := []poolChange{}
	for i := range after.NumPools() {
		p := after.Pool(balance.PoolID(i))
		id, ok := before.PoolByName(p.Name())
		if !ok {
			out = append(out, poolChange{Pool: p.Name(), Change: "added"})
			continue
		}
		old := before.Pool(id)
		if old.Algorithm() != p.Algorithm() {
			out = append(out, poolChange{Pool: p.Name(), Change: "changed", Detail: "algorithm " + old.Algorithm().String() + " -> " + p.Algorithm().String()})
		}
		was := make(map[string]*balance.Backend, len(old.Backends()))
		for _, b := range old.Backends() {
			was[b.Addr.String()] = b
		}
		for _, b := range p.Backends() {
			a := b.Addr.String()
			o, ok := was[a]
			delete(was, a)
			if !ok {
				out = append(out, poolChange{Pool: p.Name(), Backend: a, Change: "added"})
				continue
			}
			var d []string
			if o.Transport != b.Transport {
				d = append(d, "transport "+o.Transport.String()+" -> "+b.Transport.String())
			}
			if o.Weight != b.Weight {
				d = append(d, fmt.Sprintf("weight %d -> %d", o.Weight, b.Weight))
			}
			if o.Priority != b.Priority {
				d = append(d, fmt.Sprintf("priority %d -> %d", o.Priority, b.Priority))
			}
			if o.ConfigState() != b.ConfigState() {
				d = append(d, "state "+o.ConfigState().String()+" -> "+b.ConfigState().String())
			}
			if len(d) > 0 {
				out = append(out, poolChange{Pool: p.Name(), Backend: a, Change: "changed", Detail: strings.Join(d, ", ")})
			}
		}
		for _, b := range old.Backends() {
			if _, gone := was[b.Addr.String()]; gone {
				out = append(out, poolChange{Pool: p.Name(), Backend: b.Addr.String(), Change: "removed"})
			}
		}
	}
	for i := range before.NumPools() {
		p := before.Pool(balance.PoolID(i))
		if _, ok := after.PoolByName(p.Name()); !ok {
			out = append(out, poolChange{Pool: p.Name(), Change: "removed"})
		}
	}
	return out
}
