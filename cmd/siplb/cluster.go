package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
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
type clusterRuntime struct {
	node    *cluster.Node
	bal     *balance.Balancer
	checker *balance.Checker
	secrets *rotation // nil: the key ring is not shared
	log     *slog.Logger
	done    chan struct{} // closed when Run returned
	once    sync.Once
}

// startCluster starts gossip for cfg (enabled), wires it to the Checker
// (before the Checker runs) and the key ring, and joins in the background.
// stop leaves the cluster.
func startCluster(ctx context.Context, cfg ClusterConfig, bal *balance.Balancer, checker *balance.Checker, secrets *rotation, log *slog.Logger) (*clusterRuntime, error) {
	nc, err := cfg.nodeConfig()
	if err != nil {
		return nil, err
	}
	rt := &clusterRuntime{bal: bal, checker: checker, log: log, done: make(chan struct{})}
	if *cfg.ShareSecrets {
		rt.secrets = secrets
	}
	nc.Log = log
	nc.OnFact = rt.apply
	nc.OnMembers = checker.Reown
	node, err := cluster.New(nc)
	if err != nil {
		return nil, invalid("cluster.bind", "%v", err)
	}
	rt.node = node
	checker.SetCluster(node.Owns, rt.verdict)
	if rt.secrets != nil {
		rt.secrets.share(func(ring []string) { node.Publish(cluster.Fact{Kind: cluster.Ring, Secrets: ring}) })
	}
	go func() {
		defer close(rt.done)
		node.Run(ctx)
	}()
	log.Info("cluster member", "name", node.Name(), "gossip", node.Addr().String(), "join", nc.Join,
		"encrypted", len(nc.Keys) > 0, "share_secrets", rt.secrets != nil)
	return rt, nil
}

// stop leaves the cluster (the others move this member's backends at once)
// and stops gossip. Safe to call more than once.
func (rt *clusterRuntime) stop() {
	if rt == nil {
		return
	}
	rt.once.Do(func() {
		if err := rt.node.Leave(); err != nil {
			rt.log.Warn("cluster: leave not acknowledged", "err", err)
		}
		rt.node.Shutdown()
		if rt.secrets != nil {
			rt.secrets.share(nil)
		}
	})
}

// verdict publishes a mark the Checker made. The Checker calls it with its
// lock held: Publish only queues.
func (rt *clusterRuntime) verdict(v balance.Verdict) {
	rt.node.Publish(cluster.Fact{Kind: cluster.Health, Key: v.Addr.String(), Up: v.Up, Reason: v.Reason})
}

// publishState shares an operator state set through this member's API.
func (rt *clusterRuntime) publishState(addr netip.AddrPort, s balance.State) {
	if rt == nil {
		return
	}
	rt.node.Publish(cluster.Fact{Kind: cluster.State, Key: addr.String(), State: s.String()})
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
		if rt.secrets != nil {
			rt.secrets.setPeers(rt.node.PeerSecrets())
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
	st := rt.node.Status()
	out := clusterInfo{Enabled: true, Self: st.Self, Members: st.Members, Clock: st.Clock, Dropped: st.Dropped,
		Probing: []probeOwner{}, Facts: []factInfo{}}
	seen := map[netip.AddrPort]bool{}
	for i := range t.NumPools() {
		for _, b := range t.Pool(balance.PoolID(i)).Backends() {
			if !seen[b.Addr] {
				seen[b.Addr] = true
				out.Probing = append(out.Probing, probeOwner{Backend: b.Addr.String(), Owner: rt.node.Owner(b.Addr)})
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
	fmt.Fprintf(c.stdout, "cluster member %s, clock %d, %d facts refused\n\n", ci.Self, ci.Clock, ci.Dropped)
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
