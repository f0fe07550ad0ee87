package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/cluster"
)

// clusterRuntime joins this instance's Balancer, Checker and key ring to
// the cluster (cluster.Node): the Checker probes only the backends this
// member owns and its marks are published; the others' marks, the drains
// set through any member's API and the other members' secrets are applied
// here. Nothing of it runs per SIP message.
//
// The successor of a hitless upgrade finds the gossip port still held by
// its predecessor, which leaves the cluster only once the successor is
// ready: until it can bind the port, the successor runs without a node
// (node nil), probing every backend itself from the health state handed
// over, as an instance cut off from the others does, and tries to bind
// again, with a backoff up to bindRetryMax, until it succeeds; then it
// joins under the same name.
type clusterRuntime struct {
	name    string
	bal     *balance.Balancer
	checker *balance.Checker
	secrets *rotation // nil: the key ring is not shared
	log     *slog.Logger
	node    atomic.Pointer[cluster.Node] // nil until gossip is bound

	mu      sync.Mutex // orders attach and stop
	stopped bool
}

// Backoff of a successor's attempts to bind the gossip port.
const (
	bindRetryMin = 50 * time.Millisecond
	bindRetryMax = time.Second
)

// startCluster starts gossip for cfg (enabled), wires it to the Checker
// (before the Checker runs) and the key ring, and joins in the background.
// successor (a process an upgrade started) waits for a gossip port its
// predecessor holds instead of failing. stop leaves the cluster.
func startCluster(ctx context.Context, cfg ClusterConfig, bal *balance.Balancer, checker *balance.Checker, secrets *rotation, log *slog.Logger, successor bool) (*clusterRuntime, error) {
	nc, err := cfg.nodeConfig()
	if err != nil {
		return nil, err
	}
	rt := &clusterRuntime{name: nc.Name, bal: bal, checker: checker, log: log}
	if *cfg.ShareSecrets {
		rt.secrets = secrets
	}
	nc.Log = log
	nc.OnFact = rt.apply
	nc.OnMembers = checker.Reown
	checker.SetCluster(rt.owns, rt.verdict)
	node, err := cluster.New(nc)
	switch {
	case err == nil:
		rt.attach(ctx, node, nc)
	case successor && errors.Is(err, cluster.ErrBindInUse):
		log.Info("cluster: the predecessor holds the gossip port until it leaves; probing every backend meanwhile", "bind", nc.Bind.String())
		go rt.bindLater(ctx, nc)
	default:
		return nil, invalid("cluster.bind", "%v", err)
	}
	return rt, nil
}

// bindLater creates the node once the gossip port is free, until ctx ends
// or stop.
func (rt *clusterRuntime) bindLater(ctx context.Context, nc cluster.Config) {
	wait := bindRetryMin
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, bindRetryMax)
		node, err := cluster.New(nc)
		switch {
		case err == nil:
			rt.log.Info("cluster: gossip port free, joining", "after", time.Since(start).Round(time.Millisecond))
			rt.attach(ctx, node, nc)
			return
		case !errors.Is(err, cluster.ErrBindInUse):
			rt.log.Warn("cluster: gossip not started; retrying", "err", err)
		}
		rt.mu.Lock()
		stopped := rt.stopped
		rt.mu.Unlock()
		if stopped {
			return
		}
	}
}

// attach makes node this member's and starts it joining, unless stop came
// first (then node is shut down).
func (rt *clusterRuntime) attach(ctx context.Context, node *cluster.Node, nc cluster.Config) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.stopped {
		node.Shutdown()
		return
	}
	rt.node.Store(node)
	if rt.secrets != nil {
		rt.secrets.share(func(ring []string) { node.Publish(cluster.Fact{Kind: cluster.Ring, Secrets: ring}) })
	}
	go node.Run(ctx)
	rt.checker.Reown() // owners may have moved off this member
	rt.log.Info("cluster member", "name", node.Name(), "gossip", node.Addr().String(), "join", nc.Join,
		"encrypted", len(nc.Keys) > 0, "share_secrets", rt.secrets != nil)
}

// owns is the Checker's owner: without a node, every backend is this
// member's.
func (rt *clusterRuntime) owns(addr netip.AddrPort) bool {
	n := rt.node.Load()
	return n == nil || n.Owns(addr)
}

// stop leaves the cluster (the others move this member's backends at once)
// and stops gossip, which frees the gossip port (for a successor). Safe to
// call more than once.
func (rt *clusterRuntime) stop() {
	if rt == nil {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.stopped {
		return
	}
	rt.stopped = true
	node := rt.node.Load()
	if node == nil {
		return
	}
	if err := node.Leave(); err != nil {
		rt.log.Warn("cluster: leave not acknowledged", "err", err)
	}
	node.Shutdown()
	if rt.secrets != nil {
		rt.secrets.share(nil)
	}
}

// verdict publishes a mark the Checker made. The Checker calls it with its
// lock held: Publish only queues.
func (rt *clusterRuntime) verdict(v balance.Verdict) {
	if n := rt.node.Load(); n != nil {
		n.Publish(cluster.Fact{Kind: cluster.Health, Key: v.Addr.String(), Up: v.Up, Reason: v.Reason})
	}
}

// publishState shares an operator state set through this member's API
// (not while gossip is not bound yet: it holds here only).
func (rt *clusterRuntime) publishState(addr netip.AddrPort, s balance.State) {
	if rt == nil {
		return
	}
	n := rt.node.Load()
	if n == nil {
		rt.log.Warn("cluster: gossip not bound yet (upgrade): the state holds on this member only", "backend", addr, "state", s.String())
		return
	}
	n.Publish(cluster.Fact{Kind: cluster.State, Key: addr.String(), State: s.String()})
}

// apply takes a fact another member set.
func (rt *clusterRuntime) apply(f cluster.Fact) {
	switch f.Kind {
	case cluster.Health:
		addr, err := netip.ParseAddrPort(f.Key)
		if err == nil {
			rt.checker.ApplyVerdict(balance.Verdict{Addr: addr, Up: f.Up, Reason: f.Reason + " (" + f.Origin + ")"})
		}
	case cluster.State:
		addr, err := netip.ParseAddrPort(f.Key)
		st, serr := balance.ParseState(f.State)
		if err != nil || serr != nil {
			return
		}
		// ErrUnknownBackend: not configured here; the fact stays held.
		changed, err := rt.bal.SetState(addr, st)
		switch {
		case err != nil:
			rt.log.Debug("cluster: state of a backend not configured here", "backend", addr, "state", f.State, "member", f.Origin, "err", err)
		case changed:
			rt.log.Info("backend state set by a cluster member", "backend", addr, "state", f.State, "member", f.Origin)
		}
	case cluster.Ring:
		if n := rt.node.Load(); rt.secrets != nil && n != nil {
			rt.secrets.setPeers(n.PeerSecrets())
		}
	}
}

// clusterInfo answers GET /api/v1/cluster.
type clusterInfo struct {
	Enabled bool             `json:"enabled"`
	Self    string           `json:"self,omitempty"`
	Members []cluster.Member `json:"members"`
	// Probing says which member probes each configured backend.
	Probing []probeOwner `json:"probing"`
	Facts   []factInfo   `json:"facts"`
	Clock   uint64       `json:"clock"`   // this member's Lamport clock
	Dropped uint64       `json:"dropped"` // facts from others refused
	// Unbound: gossip is not bound yet (the successor of an upgrade, until
	// its predecessor leaves): this member probes every backend itself.
	Unbound bool `json:"unbound,omitempty"`
}

type probeOwner struct {
	Backend string `json:"backend"`
	Owner   string `json:"owner"`
}

// factInfo is one shared fact; a ring shows how many secrets it holds,
// never them.
type factInfo struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	Version uint64 `json:"version"`
	Origin  string `json:"origin"`
	Value   string `json:"value"`
}

// info describes the cluster; nil (no cluster) answers enabled false.
func (rt *clusterRuntime) info(t *balance.Table) clusterInfo {
	if rt == nil {
		return clusterInfo{Members: []cluster.Member{}, Probing: []probeOwner{}, Facts: []factInfo{}}
	}
	n := rt.node.Load()
	st := cluster.Status{Self: rt.name, Members: []cluster.Member{}}
	if n != nil {
		st = n.Status()
	}
	out := clusterInfo{Enabled: true, Self: st.Self, Members: st.Members, Clock: st.Clock, Dropped: st.Dropped,
		Probing: []probeOwner{}, Facts: []factInfo{}, Unbound: n == nil}
	seen := map[netip.AddrPort]bool{}
	for i := range t.NumPools() {
		for _, b := range t.Pool(balance.PoolID(i)).Backends() {
			if !seen[b.Addr] {
				seen[b.Addr] = true
				owner := rt.name
				if n != nil {
					owner = n.Owner(b.Addr)
				}
				out.Probing = append(out.Probing, probeOwner{Backend: b.Addr.String(), Owner: owner})
			}
		}
	}
	for _, f := range st.Facts {
		fi := factInfo{Kind: f.Kind.String(), Key: f.Key, Version: f.Version, Origin: f.Origin}
		switch f.Kind {
		case cluster.Health:
			fi.Value = "up"
			if !f.Up {
				fi.Value = "down"
			}
			if f.Reason != "" {
				fi.Value += ": " + f.Reason
			}
		case cluster.State:
			fi.Value = f.State
		case cluster.Ring:
			fi.Value = fmt.Sprintf("%d secrets", len(f.Secrets))
		}
		out.Facts = append(out.Facts, fi)
	}
	return out
}

// clusterRoute serves GET /api/v1/cluster.
func (a *adminServer) clusterRoute(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.ctl.cluster.info(a.bal.Table()))
}

func newTable(c *ctlClient) *tabwriter.Writer { return tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0) }

// clusterCmd is `siplb ctl cluster`.
func (c *ctlClient) clusterCmd() int {
	var ci clusterInfo
	_, ae, err := c.call(http.MethodGet, "/api/v1/cluster", &ci)
	if ae != nil || err != nil {
		return c.done(ae, err)
	}
	if !ci.Enabled {
		fmt.Fprintln(c.stdout, "cluster: off (cluster.enabled is false); this instance probes every backend itself")
		return ctlOK
	}
	fmt.Fprintf(c.stdout, "cluster member %s, clock %d, %d facts refused\n", ci.Self, ci.Clock, ci.Dropped)
	if ci.Unbound {
		fmt.Fprintln(c.stdout, "gossip not bound yet (upgrade: the predecessor holds the port); probing every backend itself")
	}
	fmt.Fprintln(c.stdout)
	tw := newTable(c)
	fmt.Fprintln(tw, "MEMBER\tADDRESS\tSTATE\tSINCE")
	for _, m := range ci.Members {
		name := m.Name
		if name == ci.Self {
			name += " (self)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, m.Addr, m.State, m.Since.UTC().Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintln(c.stdout)
	tw = newTable(c)
	fmt.Fprintln(tw, "BACKEND\tPROBED BY")
	for _, p := range ci.Probing {
		fmt.Fprintf(tw, "%s\t%s\n", p.Backend, p.Owner)
	}
	tw.Flush()
	fmt.Fprintln(c.stdout)
	tw = newTable(c)
	fmt.Fprintln(tw, "FACT\tKEY\tVERSION\tORIGIN\tVALUE")
	for _, f := range ci.Facts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", f.Kind, f.Key, f.Version, f.Origin, strings.ReplaceAll(f.Value, "\t", " "))
	}
	tw.Flush()
	return ctlOK
}
