package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults of Config.
const (
	DefaultPort           = 7946             // memberlist's (and Serf's)
	DefaultRejoinInterval = 30 * time.Second // Join again while running, to heal a partition that outlived memberlist's memory of the dead
	aloneRetry            = 2 * time.Second  // Join again while no other member is known
	leaveTimeout          = 2 * time.Second
	deadReclaim           = 30 * time.Second
	maxSeen               = 256 // members remembered for Status, the gone ones dropped oldest first
)

// ErrNoName is a Config without a Name.
var ErrNoName = errors.New("cluster: a member name is required")

// ErrBindInUse is New failing because another socket holds Config.Bind
// (UDP or TCP): during a hitless upgrade, the predecessor's until it
// leaves. Trying New again later may succeed.
var ErrBindInUse = errors.New("cluster: the gossip address is in use")

// Config configures a Node. The zero value of each optional field is its
// default.
type Config struct {
	// Name is this member's name, unique in the cluster (required); it
	// orders ties between facts and is what Owner returns.
	Name string
	// Bind is where gossip is served, over UDP and TCP (required; port 0
	// takes a free one, see Node.Addr).
	Bind netip.AddrPort
	// Advertise is the address the others reach this member at (default:
	// Bind, or a private address of the host when Bind is unspecified).
	Advertise netip.AddrPort
	// Join are members to join at the start: "IP:PORT" or "name:port",
	// where a name is looked up in DNS and each of its addresses tried
	// (a Kubernetes headless Service). The port defaults to DefaultPort.
	// Empty: this member waits for others to join it.
	Join []string
	// Keys are AES keys (16, 24 or 32 bytes) of memberlist's keyring: the
	// first encrypts and authenticates every message, all of them are tried
	// on what arrives (a key rotation). Empty: gossip is in the clear and
	// unauthenticated.
	Keys [][]byte
	// RejoinInterval is how often Join is tried again while others are
	// known (default DefaultRejoinInterval); while none is, every 2s.
	RejoinInterval time.Duration
	// OnFact is told of each fact from another member that is newer than
	// the one held, one at a time, in the order they won.
	OnFact func(Fact)
	// OnMembers is told that the live members changed: owners may have
	// moved.
	OnMembers func()
	Log       *slog.Logger // default: discard

	tune func(*memberlist.Config) // tests: faster failure detection
}

// Member is one member as this one sees it.
type Member struct {
	Name  string    `json:"name"`
	Addr  string    `json:"address"`
	State string    `json:"state"` // alive, suspect, dead or left
	Since time.Time `json:"since"` // when this member last saw the state change
}

// Status is what a Node knows, for the admin API.
type Status struct {
	Self    string   `json:"self"`
	Members []Member `json:"members"`
	Facts   []Fact   `json:"facts"`
	Clock   uint64   `json:"clock"`   // the Lamport clock
	Dropped uint64   `json:"dropped"` // facts from others refused (invalid, or past MaxFacts)
}

// Node is this instance's membership of a cluster. Publish and Owner may
// be called from any goroutine.
type Node struct {
	cfg   Config
	log   *slog.Logger
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	facts *store

	applyMu sync.Mutex // orders OnFact calls as their facts won

	live atomic.Pointer[[]string] // names of the live members, sorted

	mu   sync.Mutex
	seen map[string]Member
	ring []string // this member's own ring, re-asserted over a stale copy
}

// New binds and starts the gossip listener; Run joins the others.
func New(cfg Config) (*Node, error) {
	if cfg.Name == "" {
		return nil, ErrNoName
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Log, facts: newStore(), seen: make(map[string]Member)}
	self := []string{cfg.Name}
	n.live.Store(&self)
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = cfg.Bind.Addr().String()
	mc.BindPort = int(cfg.Bind.Port())
	// Without Advertise, memberlist advertises the bind address (a private
	// address of the host for an unspecified one) and port (the bound one
	// for port 0).
	mc.AdvertisePort = mc.BindPort
	if cfg.Advertise.IsValid() {
		mc.AdvertiseAddr = cfg.Advertise.Addr().String()
		mc.AdvertisePort = int(cfg.Advertise.Port())
	}
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("cluster key: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.Logger = log.New(logWriter{n.log}, "", 0)
	// A member that comes back under its name at another address (a
	// restarted pod of a StatefulSet) is taken once the old one has been
	// dead this long; memberlist's default (0) refuses it for good.
	mc.DeadNodeReclaimTime = deadReclaim
	if cfg.tune != nil {
		cfg.tune(mc)
	}
	n.queue = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return len(*n.live.Load()) }, RetransmitMult: mc.RetransmitMult}
	ml, err := memberlist.Create(mc)
	if err != nil {
		if bindInUse(cfg.Bind) {
			return nil, fmt.Errorf("%w: %s: %v", ErrBindInUse, cfg.Bind, err)
		}
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.ml = ml
	return n, nil
}

// Name is this member's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr is the address gossip is served at (the bound port of Bind port 0).
func (n *Node) Addr() netip.AddrPort {
	ln := n.ml.LocalNode()
	a, _ := netip.AddrFromSlice(ln.Addr)
	return netip.AddrPortFrom(a.Unmap(), ln.Port)
}

// Run joins the members of Config.Join, and joins them again every
// RejoinInterval (every 2s while no other member is known), until ctx is
// done. It does not leave: call Leave, then Shutdown.
func (n *Node) Run(ctx context.Context) {
	if len(n.cfg.Join) == 0 {
		<-ctx.Done()
		return
	}
	warned := false
	for {
		alone := n.ml.NumMembers() <= 1
		k, err := n.ml.Join(n.cfg.Join)
		switch {
		case err != nil && alone && !warned:
			n.log.Warn("cluster: no member to join yet; probing every backend alone meanwhile", "join", n.cfg.Join, "err", err)
			warned = true
		case err == nil && alone && k > 0:
			n.log.Info("cluster joined", "contacted", k, "members", n.ml.NumMembers())
			warned = false
		}
		wait := n.cfg.RejoinInterval
		if n.ml.NumMembers() <= 1 {
			wait = aloneRetry
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Leave tells the others this member goes, so they move its backends at
// once instead of after failure detection.
func (n *Node) Leave() error { return n.ml.Leave(leaveTimeout) }

// Shutdown stops gossip without telling anyone (as a crash would, when
// Leave was not called first).
func (n *Node) Shutdown() error { return n.ml.Shutdown() }

// Publish sets a fact of this member (its Version and Origin are set here)
// and broadcasts it, unless the fact held says the same already. It does
// not call OnFact.
func (n *Node) Publish(f Fact) {
	f.Origin = n.cfg.Name
	if f.Kind == Ring {
		f.Key = n.cfg.Name
		f.Secrets = slices.Clone(f.Secrets[:min(len(f.Secrets), MaxRing)])
		n.mu.Lock()
		n.ring = f.Secrets
		n.mu.Unlock()
	}
	if len(f.Reason) > maxReasonLen {
		f.Reason = f.Reason[:maxReasonLen]
	}
	stored, changed := n.facts.local(f)
	if changed {
		n.broadcast(stored)
	}
}

// Fact returns the fact held about kind and key.
func (n *Node) Fact(kind Kind, key string) (Fact, bool) { return n.facts.get(kind, key) }

// Facts returns every fact held, sorted by kind and key.
func (n *Node) Facts() []Fact {
	f, _ := n.facts.all()
	return f
}

// PeerSecrets returns the secrets of the other members' Ring facts, each
// once: those of live members first, then those of members gone (whose
// tokens may still be in dialogs), newest ring first, so that a bound on
// them (the caller's) drops the oldest.
func (n *Node) PeerSecrets() []string {
	live := *n.live.Load()
	var rings []Fact
	for _, f := range n.Facts() {
		if f.Kind == Ring && f.Key != n.cfg.Name {
			rings = append(rings, f)
		}
	}
	slices.SortStableFunc(rings, func(a, b Fact) int {
		al, bl := slices.Contains(live, a.Key), slices.Contains(live, b.Key)
		switch {
		case al != bl && al:
			return -1
		case al != bl:
			return 1
		case a.Version != b.Version && a.Version > b.Version:
			return -1
		case a.Version != b.Version:
			return 1
		}
		return 0
	})
	var out []string
	for _, f := range rings {
		for _, s := range f.Secrets {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// Members returns the names of the live members, sorted.
func (n *Node) Members() []string { return slices.Clone(*n.live.Load()) }

// Owner returns the member that probes the backend at addr: of the live
// members, the one whose name scores highest with addr (rendezvous
// hashing), so a member's departure moves only its own backends. It does
// not allocate.
func (n *Node) Owner(addr netip.AddrPort) string {
	return owner(*n.live.Load(), addr)
}

// Owns reports whether this member probes the backend at addr.
func (n *Node) Owns(addr netip.AddrPort) bool { return n.Owner(addr) == n.cfg.Name }

// Status returns the members and the facts.
func (n *Node) Status() Status {
	st := Status{Self: n.cfg.Name}
	now := map[string]*memberlist.Node{}
	for _, m := range n.ml.Members() {
		now[m.Name] = m
	}
	n.mu.Lock()
	for name, m := range n.seen {
		if ml, ok := now[name]; ok && ml.State == memberlist.StateSuspect {
			m.State = "suspect"
		}
		st.Members = append(st.Members, m)
	}
	n.mu.Unlock()
	slices.SortFunc(st.Members, func(a, b Member) int { return compareStrings(a.Name, b.Name) })
	st.Facts, st.Clock = n.facts.all()
	n.facts.mu.Lock()
	st.Dropped = n.facts.dropped
	n.facts.mu.Unlock()
	return st
}

func (n *Node) broadcast(f Fact) {
	n.queue.QueueBroadcast(&broadcast{key: factKey{f.Kind, f.Key}, msg: encode([]Fact{f})})
}

// take merges facts from another member and tells OnFact of those that
// won, in order. A broadcast fact that won is broadcast on (relay), so it
// spreads epidemically, not only from its origin.
func (n *Node) take(facts []Fact, relay bool) {
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	for _, f := range facts {
		if !n.facts.merge(f) {
			continue
		}
		if relay {
			n.broadcast(f)
		}
		if f.Kind == Ring && f.Key == n.cfg.Name {
			// A copy of this member's ring from before a restart: the ring
			// in force now wins with a newer version.
			n.mu.Lock()
			ring := n.ring
			n.mu.Unlock()
			if ring != nil && !slices.Equal(ring, f.Secrets) {
				n.Publish(Fact{Kind: Ring, Secrets: ring})
			}
			continue
		}
		if n.cfg.OnFact != nil {
			n.cfg.OnFact(f)
		}
	}
}

// membersChanged publishes the live members and tells OnMembers.
func (n *Node) membersChanged() {
	n.mu.Lock()
	live := []string{n.cfg.Name}
	for name, m := range n.seen {
		if name != n.cfg.Name && (m.State == "alive" || m.State == "suspect") {
			live = append(live, name)
		}
	}
	n.mu.Unlock()
	slices.Sort(live)
	prev := n.live.Swap(&live)
	if slices.Equal(*prev, live) {
		return
	}
	n.log.Info("cluster members", "live", live)
	if n.cfg.OnMembers != nil {
		n.cfg.OnMembers()
	}
}

// forgetOldestGone drops the member dead or left the longest from seen;
// false if none is. Called with n.mu.
func (n *Node) forgetOldestGone() bool {
	oldest := ""
	for name, m := range n.seen {
		if (m.State == "dead" || m.State == "left") && (oldest == "" || m.Since.Before(n.seen[oldest].Since)) {
			oldest = name
		}
	}
	if oldest == "" {
		return false
	}
	delete(n.seen, oldest)
	return true
}

// delegate is memberlist's view of a Node: the facts.
type delegate Node

func (d *delegate) NodeMeta(int) []byte { return nil }

func (d *delegate) NotifyMsg(b []byte) {
	facts, err := decode(b)
	n := (*Node)(d)
	if err != nil {
		n.facts.mu.Lock()
		n.facts.dropped++
		n.facts.mu.Unlock()
		return
	}
	n.take(facts, true)
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(bool) []byte {
	facts, _ := d.facts.all()
	return encode(facts)
}

func (d *delegate) MergeRemoteState(b []byte, _ bool) {
	n := (*Node)(d)
	facts, err := decode(b)
	if err != nil {
		n.facts.mu.Lock()
		n.facts.dropped++
		n.facts.mu.Unlock()
		return
	}
	n.take(facts, false)
}

// events is memberlist's view of a Node: membership.
type events Node

func (e *events) NotifyJoin(m *memberlist.Node)   { e.note(m, "alive") }
func (e *events) NotifyUpdate(m *memberlist.Node) { e.note(m, "alive") }
func (e *events) NotifyLeave(m *memberlist.Node) {
	st := "dead"
	if m.State == memberlist.StateLeft {
		st = "left"
	}
	e.note(m, st)
}

func (e *events) note(m *memberlist.Node, state string) {
	n := (*Node)(e)
	n.mu.Lock()
	prev, ok := n.seen[m.Name]
	mem := Member{Name: m.Name, Addr: m.Address(), State: state, Since: prev.Since}
	if !ok || prev.State != state {
		mem.Since = time.Now()
	}
	n.seen[m.Name] = mem
	for len(n.seen) > maxSeen && n.forgetOldestGone() {
	}
	n.mu.Unlock()
	if m.Name != n.cfg.Name && (!ok || prev.State != state) {
		n.log.Info("cluster member "+state, "member", m.Name, "address", m.Address())
	}
	n.membersChanged()
}

// broadcast is one fact queued for gossip; a newer one about the same thing
// replaces it in the queue.
type broadcast struct {
	key factKey
	msg []byte
}

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*broadcast)
	return ok && ob.key == b.key
}
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// records of log at their level.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelInfo}, {"[WARN] ", slog.LevelWarn}, {"[ERR] ", slog.LevelError}} {
		if i := bytes.Index(p, []byte(l.tag)); i >= 0 {
			level = l.level
			line = string(bytes.TrimSpace(p[i+len(l.tag):]))
			break
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

// bindInUse reports whether a socket holds bind's port, over UDP or TCP:
// memberlist's error says why in words only. Port 0 never is.
func bindInUse(bind netip.AddrPort) bool {
	if bind.Port() == 0 {
		return false
	}
	inUse := func(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(bind))
	if err != nil {
		return inUse(err)
	}
	ln.Close()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(bind))
	if err != nil {
		return inUse(err)
	}
	pc.Close()
	return false
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*events)(nil)
	_ memberlist.Broadcast     = (*broadcast)(nil)
)
