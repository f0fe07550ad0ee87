package balance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of HealthConfig. With them a
// dead backend is noticed within (Fall-1)×Interval+Timeout of its first
// unanswered probe (12 s), or Fall×Timeout (6 s) of a hint that it is
// unreachable (Checker.Unreachable), and a recovered one taken back after
// Rise probes.
const (
	DefaultHealthInterval   = 5 * time.Second
	DefaultHealthTimeout    = 2 * time.Second
	DefaultHealthFall       = 3
	DefaultHealthRise       = 2
	DefaultHealthMaxBackoff = 30 * time.Second
)

// MinHintProbeGap is the least time between two probes of one backend that
// hints start (Checker.Unreachable); the gap is the larger of it and the
// pool's Timeout. A flood of hints, genuine or forged, thus costs at most one
// extra probe per backend per gap.
const MinHintProbeGap = 500 * time.Millisecond

// tableCheckEvery bounds how long Run sleeps without looking at the
// Balancer's Table, so a Reload that adds members gets them probed soon even
// when no probe is due.
const tableCheckEvery = time.Second

// HealthConfig configures active probing of one pool with SIP OPTIONS, and
// the passive detection fed by the engine. Zero values mean the defaults.
type HealthConfig struct {
	Interval time.Duration // between probes of a backend (default 5s)
	Timeout  time.Duration // a probe unanswered this long failed (default 2s; must be < Interval)
	Fall     int           // consecutive failures that mark an up backend down (default 3)
	Rise     int           // consecutive successes that mark a down backend up (default 2)
	// DownOn503 makes a 503 reply count as a failure (default: any final
	// response means alive).
	DownOn503 bool
	// Disabled turns off active probing for this pool; its members are then
	// neither probed nor marked by passive detection (hints of
	// Checker.Unreachable are ignored: no probe could confirm them).
	Disabled bool
	// MaxBackoff caps the probing interval of a down backend, which starts at
	// Interval and doubles with each failed probe (default 30s; ≥ Interval).
	MaxBackoff time.Duration
	// PassiveFailures is the number of consecutive 5xx final responses from a
	// backend (reported through Checker.Observe) that mark it down at once;
	// 0 turns this passive detection off.
	PassiveFailures int
}

// WithDefaults returns h with every zero (or negative) field replaced by its
// default, and values that Validate rejects replaced by usable ones: a
// Timeout not below Interval becomes 2/5 of Interval (the ratio of the
// defaults), a MaxBackoff below Interval becomes Interval.
func (h HealthConfig) WithDefaults() HealthConfig {
	if h.Interval <= 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Timeout >= h.Interval {
		h.Timeout = h.Interval * 2 / 5
	}
	if h.Fall <= 0 {
		h.Fall = DefaultHealthFall
	}
	if h.Rise <= 0 {
		h.Rise = DefaultHealthRise
	}
	if h.MaxBackoff <= 0 {
		h.MaxBackoff = DefaultHealthMaxBackoff
	}
	if h.MaxBackoff < h.Interval {
		h.MaxBackoff = h.Interval
	}
	if h.PassiveFailures < 0 {
		h.PassiveFailures = 0
	}
	return h
}

// Validate checks h as configured (zero meaning the default). path is the key
// of h in the configuration, e.g. "pools[1].health"; an error names the
// offending key under it: "pools[1].health.timeout: …". A Disabled
// configuration is still checked, so that enabling it later cannot fail.
func (h *HealthConfig) Validate(path string) error {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"max_backoff", h.MaxBackoff}} {
		if d.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative, got %v", path, d.key, d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"fall", h.Fall}, {"rise", h.Rise}, {"passive_failures", h.PassiveFailures}} {
		if n.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative, got %d", path, n.key, n.v)
		}
	}
	interval, timeout, maxBackoff := h.Interval, h.Timeout, h.MaxBackoff
	if interval == 0 {
		interval = DefaultHealthInterval
	}
	if timeout == 0 {
		timeout = DefaultHealthTimeout
	}
	if maxBackoff == 0 {
		maxBackoff = DefaultHealthMaxBackoff
	}
	if timeout >= interval {
		return fmt.Errorf("%s.timeout: must be less than interval (%v), got %v", path, interval, timeout)
	}
	if maxBackoff < interval {
		return fmt.Errorf("%s.max_backoff: must be at least interval (%v), got %v", path, interval, maxBackoff)
	}
	return nil
}

// ProbeSender sends a probe the checker built to a backend, from the socket
// of the leg that fronts it. msg is valid only during the call: the sender
// must copy it if it keeps it. SendProbe is called from the goroutine of
// Checker.Run, never with a lock of the Checker held, so it may call
// Checker.Response or Checker.Unreachable itself. An error counts as a
// failed probe.
type ProbeSender interface {
	SendProbe(to *Backend, msg []byte) error
}

// ProbeIdentity is what a probe says about its sender; the engine fills it
// from a leg.
type ProbeIdentity struct {
	Transport string // "UDP" (the default when empty)
	SentBy    string // "127.0.0.1:5060" (IPv6 bracketed)
	// BranchPrefix starts the branch of every probe, e.g.
	// "z9hG4bK1a2b3c4dff"; the branch is BranchPrefix, 16 hex digits of the
	// probe's id and "00000000".
	BranchPrefix string
}

// Checker probes the members of a Balancer's pools with SIP OPTIONS and takes
// passive reports from the engine (Unreachable: hints that start probes;
// Observe: runs of 5xx), and marks backends
// down and up through Balancer.SetHealth, so the change is in the next Table
// the data path loads. Each change is logged with its reason.
//
// State is kept per backend address (a health mark is about a host, so it
// applies in every pool that lists the address); an address in several pools
// follows the HealthConfig of the first of them, in configuration order,
// whose probing is not Disabled. Members the operator set Disabled are not
// probed; Draining ones are. Members that a Reload adds or removes are picked
// up within a second.
//
// Run drives the timers from one goroutine. Response, Unreachable and Observe
// may be called from any goroutine, concurrently with each other and Run.
type Checker struct {
	bal     *Balancer
	id      ProbeIdentity
	send    ProbeSender
	log     *slog.Logger
	deflt   *HealthConfig // for pools missing from cfgs
	fromTag uint32
	idBase  uint64 // first probe id this checker issues

	// passive is the set of targets with PassiveFailures > 0, rebuilt by
	// resync and read lock-free by Observe. The map is never modified after
	// it is stored.
	passive atomic.Pointer[map[netip.AddrPort]passiveTarget]

	mu      sync.Mutex               // guards everything below and every target's fields except run
	cfgs    map[string]*HealthConfig // effective, by pool name
	gen     uint64                   // Generation of the Table last resynced (0: resync now)
	targets map[netip.AddrPort]*healthTarget
	pending map[uint64]*healthTarget // probe id → its target, while unanswered
	nextID  uint64

	wake chan struct{} // a Reconfigure or a hint asks Run for a round now

	hints hintCounts

	// Owned by the goroutine of Run.
	out   []byte
	batch []pendingProbe
}

// healthTarget is the health state of one backend address.
type healthTarget struct {
	addr      netip.AddrPort
	pool      string
	transport Transport
	cfg       *HealthConfig

	up        bool
	fails     int // consecutive failed probes (any kind)
	oks       int // consecutive answered probes
	unanswer  int // of fails: timeouts
	got503    int // of fails: 503 replies with DownOn503
	sendErr   int // of fails: SendProbe errors
	refused   int // of fails: the probe's connection failed (stream backends)
	backoff   time.Duration
	next      time.Time // next probe is due (when pending == 0)
	pending   uint64    // id of the probe in flight, 0 if none
	sentAt    time.Time
	deadline  time.Time
	cseq      uint32
	reason    string
	since     time.Time
	lastRTT   time.Duration
	lastReply int // status of the last final response to a probe

	hint      Hint      // the hint that put t in quick re-probing; 0 if none
	hintProbe time.Time // when a hint last started a probe

	run atomic.Int32 // consecutive 5xx reported by Observe
}

// passiveTarget is an entry of Checker.passive: a target and its
// PassiveFailures, copied so that Observe reads nothing resync writes.
type passiveTarget struct {
	t     *healthTarget
	limit int32
}

// pendingProbe is one probe built by step, to be sent outside the lock.
type pendingProbe struct {
	t        *healthTarget
	id       uint64
	off, end int
}

// NewChecker returns a Checker that probes the members of every pool whose
// HealthConfig (by pool name; a pool missing from health gets the defaults)
// is not Disabled. Configurations should have passed Validate; invalid values
// are replaced as WithDefaults says. log may be nil: then slog.Default().
// Nothing is probed until Run.
func NewChecker(bal *Balancer, health map[string]HealthConfig, id ProbeIdentity, send ProbeSender, log *slog.Logger) *Checker {
	if log == nil {
		log = slog.Default()
	}
	if id.Transport == "" {
		id.Transport = "UDP"
	}
	d := HealthConfig{}.WithDefaults()
	c := &Checker{
		bal:     bal,
		id:      id,
		send:    send,
		log:     log,
		cfgs:    make(map[string]*HealthConfig, len(health)),
		deflt:   &d,
		fromTag: rand.Uint32(),
		// A random start keeps the probe ids (and so the Call-IDs) of two
		// instances, or of one instance across restarts, apart.
		idBase:  rand.Uint64()>>1 | 1,
		targets: make(map[netip.AddrPort]*healthTarget),
		pending: make(map[uint64]*healthTarget),
		wake:    make(chan struct{}, 1),
	}
	c.nextID = c.idBase
	for name, h := range health {
		e := h.WithDefaults()
		c.cfgs[name] = &e
	}
	return c
}

// Reconfigure replaces the HealthConfigs by pool name, as NewChecker takes
// them, for a configuration reload; Run applies them at once.
// Backends keep their marks and counts.
func (c *Checker) Reconfigure(health map[string]HealthConfig) {
	cfgs := make(map[string]*HealthConfig, len(health))
	for name, h := range health {
		e := h.WithDefaults()
		cfgs[name] = &e
	}
	c.mu.Lock()
	c.cfgs = cfgs
	c.gen = 0 // resync at the next round
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run probes backends until ctx is done. It reads the Balancer's Table at
// each wake-up and at least every second, probing the members present. Call
// it once; it uses the time package only, so it runs in a testing/synctest
// bubble.
func (c *Checker) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-c.wake:
		}
		now := time.Now()
		wake := c.step(now)
		c.flush()
		timer.Reset(max(time.Until(wake), 0))
	}
}

// step resyncs with the Table, fails the probes past their deadline and
// builds those due into c.batch. It returns when to wake up next.
func (c *Checker) step(now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tab := c.bal.Table(); tab.Generation() != c.gen {
		c.resync(tab, now)
	}
	wake := now.Add(tableCheckEvery)
	c.out = c.out[:0]
	c.batch = c.batch[:0]
	for _, t := range c.targets {
		if t.pending != 0 && !now.Before(t.deadline) {
			t.unanswer++
			c.fail(t, t.deadline)
		}
		if t.pending == 0 && !now.Before(t.next) {
			id := c.nextID
			c.nextID++
			t.pending = id
			t.sentAt = now
			t.deadline = now.Add(t.cfg.Timeout)
			t.cseq = t.cseq%(1<<31-1) + 1 // RFC 3261 §8.1.1.5: below 2**31
			c.pending[id] = t
			off := len(c.out)
			c.out = c.appendProbe(c.out, t, id)
			c.batch = append(c.batch, pendingProbe{t: t, id: id, off: off, end: len(c.out)})
		}
		if t.pending != 0 {
			wake = earlier(wake, t.deadline)
		} else {
			wake = earlier(wake, t.next)
		}
	}
	return wake
}

// flush sends the probes step built, outside the lock.
func (c *Checker) flush() {
	for i := range c.batch {
		p := &c.batch[i]
		b, ok := c.bal.Table().Lookup(p.t.addr)
		var err error
		if ok {
			err = c.send.SendProbe(b, c.out[p.off:p.end])
		}
		if !ok || err != nil {
			c.mu.Lock()
			if p.t.pending == p.id {
				if ok {
					p.t.sendErr++
					c.fail(p.t, time.Now())
					c.log.Debug("health probe not sent", "pool", p.t.pool, "backend", p.t.addr, "err", err)
				} else {
					c.settle(p.t) // removed by a Reload; the next resync forgets it
				}
			}
			c.mu.Unlock()
		}
		p.t = nil
	}
}

// Response takes a response whose top Via branch starts with the
// ProbeIdentity's BranchPrefix and reports whether it answers a probe of
// this checker (then the engine drops it: probe replies are never
// forwarded). The answer to a probe in flight counts as a success, unless it
// is a 503 and the pool has DownOn503; a reply that comes after the Timeout
// is a failure; provisional (1xx) replies and late duplicates are consumed
// without effect. branch is not retained. Safe for concurrent use; it does
// not allocate.
func (c *Checker) Response(branch []byte, status int) bool {
	id, ok := c.parseBranch(branch)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.pending[id]
	if t == nil {
		return id >= c.idBase && id < c.nextID
	}
	if status < 200 {
		return true
	}
	now := time.Now()
	t.lastReply = status
	switch {
	case now.After(t.deadline):
		t.unanswer++
		c.fail(t, t.deadline)
	case status == 503 && t.cfg.DownOn503:
		t.lastRTT = now.Sub(t.sentAt)
		t.got503++
		c.fail(t, now)
	default:
		t.lastRTT = now.Sub(t.sentAt)
		c.succeed(t)
	}
	return true
}

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
// timeout does. A connection hint (HintConnectRefused, HintConnectFailed)
// for a stream backend fails its probe in flight, which goes over a
// connection of its own: a refused TCP connection cannot be forged off the
// path (the reset must acknowledge the SYN's sequence number).
//
// Hints for a backend already down change nothing else (it is being
// re-probed with backoff). Hints for addresses that are not probed (not
// configured, Disabled by the operator, or in a pool whose probing is
// Disabled) are ignored and counted in HintStats.Ignored: no probe could
// confirm them, and no probe would ever mark the backend up again. Safe for
// concurrent use; it does not allocate unless it marks the backend down.
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
	if t.pending != 0 && t.transport != UDP && hint.connect() {
		if t.up {
			t.hint = hint
		}
		t.refused++
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

// Observe is passive detection of a run of failures: the engine reports the
// status of each final response from backend addr. With PassiveFailures N in
// the HealthConfig of its pool, N consecutive 5xx mark an up backend down at
// once (then it is re-probed with backoff); any other final status ends the
// run. Provisional statuses and unprobed addresses are ignored. Safe for
// concurrent use; it takes no lock and does not allocate unless it marks the
// backend down.
func (c *Checker) Observe(addr netip.AddrPort, status int) {
	m := c.passive.Load()
	if m == nil || status < 200 {
		return
	}
	pt, ok := (*m)[unmap(addr)]
	if !ok {
		return
	}
	t := pt.t
	if status < 500 || status > 599 {
		if t.run.Load() != 0 {
			t.run.Store(0)
		}
		return
	}
	n := t.run.Add(1)
	if n != pt.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.targets[t.addr] != t || !t.up {
		return
	}
	c.settle(t)
	t.fails++
	t.oks = 0
	c.markDown(t, time.Now(), strconv.Itoa(int(n))+" consecutive 5xx responses")
}

// Hint is what the engine saw that suggests a backend may be unreachable,
// for Checker.Unreachable. The zero Hint is none.
type Hint uint8

const (
	HintPortUnreachable Hint = iota + 1 // ICMP port unreachable (ICMPv6 code 4)
	HintHostUnreachable                 // ICMP host unreachable (ICMPv6 address unreachable)
	HintNetUnreachable                  // ICMP network unreachable (ICMPv6 no route)
	HintProhibited                      // ICMP communication administratively prohibited
	HintConnectRefused                  // a TCP or TLS connection refused
	HintConnectFailed                   // a TCP or TLS connection that failed otherwise (timeout, handshake)
)

var hintNames = [...]string{
	HintPortUnreachable: "ICMP port unreachable",
	HintHostUnreachable: "ICMP host unreachable",
	HintNetUnreachable:  "ICMP network unreachable",
	HintProhibited:      "ICMP administratively prohibited",
	HintConnectRefused:  "connect refused",
	HintConnectFailed:   "connect failed",
}

// String names h for logs: "ICMP port unreachable", "connect refused".
func (h Hint) String() string {
	if h == 0 || int(h) >= len(hintNames) {
		return "unknown hint"
	}
	return hintNames[h]
}

func (h Hint) connect() bool { return h == HintConnectRefused || h == HintConnectFailed }

// ConnectHint returns the Hint for a connection that failed with err:
// HintConnectRefused if the backend refused it (ECONNREFUSED), else
// HintConnectFailed.
func ConnectHint(err error) Hint {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return HintConnectRefused
	}
	return HintConnectFailed
}

// BackendHealth is what a Checker knows about one probed backend, for the
// admin API.
type BackendHealth struct {
	Addr      netip.AddrPort
	Pool      string // the pool whose HealthConfig applies
	Up        bool
	Reason    string    // why it last went down or up; empty before any change
	Since     time.Time // when it last changed; zero before any change
	Failures  int       // consecutive failed probes
	Successes int       // consecutive answered probes
	LastRTT   time.Duration
	LastReply int // status of the last final reply to a probe, 0 if none
}

// Status returns the health of every probed backend, in no particular order.
// It allocates; for the admin API and tests.
func (c *Checker) Status() []BackendHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]BackendHealth, 0, len(c.targets))
	for _, t := range c.targets {
		out = append(out, BackendHealth{
			Addr: t.addr, Pool: t.pool, Up: t.up, Reason: t.reason, Since: t.since,
			Failures: t.fails, Successes: t.oks, LastRTT: t.lastRTT, LastReply: t.lastReply,
		})
	}
	return out
}

// resync brings c.targets in line with the members of tab. Called with c.mu.
func (c *Checker) resync(tab *Table, now time.Time) {
	c.gen = tab.Generation()
	seen := make(map[netip.AddrPort]bool, len(c.targets))
	passive := make(map[netip.AddrPort]passiveTarget)
	for i := range tab.NumPools() {
		p := tab.Pool(PoolID(i))
		cfg := c.cfgs[p.Name()]
		if cfg == nil {
			cfg = c.deflt
		}
		if cfg.Disabled {
			continue
		}
		for _, b := range p.Backends() {
			if b.ConfigState() == Disabled || seen[b.Addr] {
				continue
			}
			seen[b.Addr] = true
			t := c.targets[b.Addr]
			if t == nil {
				t = &healthTarget{addr: b.Addr, up: b.Healthy(), next: now, backoff: cfg.Interval}
				c.targets[b.Addr] = t
			}
			t.pool, t.transport, t.cfg = p.Name(), b.Transport, cfg
			if t.up != b.Healthy() {
				// Someone else (configuration, admin API) changed the mark:
				// follow it and count afresh.
				t.up = b.Healthy()
				c.resetCounts(t)
				t.backoff = cfg.Interval
			}
			if cfg.PassiveFailures > 0 {
				passive[b.Addr] = passiveTarget{t: t, limit: int32(min(cfg.PassiveFailures, 1<<30))}
			}
		}
	}
	for addr, t := range c.targets {
		if !seen[addr] {
			c.settle(t)
			delete(c.targets, addr)
		}
	}
	c.passive.Store(&passive)
}

// succeed records an answered probe of t. Called with c.mu.
func (c *Checker) succeed(t *healthTarget) {
	c.settle(t)
	t.fails = 0
	t.unanswer, t.got503, t.sendErr, t.refused = 0, 0, 0, 0
	t.hint = 0
	t.oks++
	t.backoff = t.cfg.Interval
	t.next = t.sentAt.Add(t.cfg.Interval)
	if t.up || t.oks < t.cfg.Rise {
		return
	}
	t.up = true
	t.run.Store(0)
	t.reason = probeCount(t.oks) + " answered"
	t.since = time.Now()
	c.bal.SetHealth(t.addr, true)
	c.log.Info("backend up", "pool", t.pool, "backend", t.addr, "reason", t.reason)
}

// fail records a failed probe of t that settled at the given time (the
// deadline for an unanswered one); the caller has counted its kind. Called
// with c.mu.
func (c *Checker) fail(t *healthTarget, at time.Time) {
	sent := t.sentAt
	if t.pending == 0 {
		sent = at
	}
	c.settle(t)
	t.oks = 0
	t.fails++
	if t.up {
		if t.fails >= t.cfg.Fall {
			c.markDown(t, at, failReason(t))
			t.next = sent.Add(t.backoff)
		} else if t.hint != 0 {
			t.next = sent.Add(t.cfg.Timeout) // quick re-probing (Unreachable)
		} else {
			t.next = sent.Add(t.cfg.Interval)
		}
		return
	}
	if t.backoff > t.cfg.MaxBackoff/2 {
		t.backoff = t.cfg.MaxBackoff
	} else {
		t.backoff *= 2
	}
	t.next = sent.Add(t.backoff)
}

// markDown marks t down now for reason and schedules its first re-probe one
// Interval later. Called with c.mu.
func (c *Checker) markDown(t *healthTarget, at time.Time, reason string) {
	t.up = false
	t.hint = 0
	t.reason = reason
	t.since = at
	t.backoff = t.cfg.Interval
	t.next = at.Add(t.backoff)
	c.bal.SetHealth(t.addr, false)
	c.log.Warn("backend down", "pool", t.pool, "backend", t.addr, "reason", reason)
}

// settle ends the probe in flight of t, if any; a reply to it that comes
// later is consumed without effect. Called with c.mu.
func (c *Checker) settle(t *healthTarget) {
	if t.pending != 0 {
		delete(c.pending, t.pending)
		t.pending = 0
	}
}

func (c *Checker) resetCounts(t *healthTarget) {
	t.fails, t.oks = 0, 0
	t.unanswer, t.got503, t.sendErr, t.refused = 0, 0, 0, 0
	t.hint = 0
	t.run.Store(0)
}

// failReason describes the run of failures that marked t down: "3 probes
// unanswered", "503 x3", "connect refused (3 probes)", or a mix; a run that
// followed an ICMP hint says so: "3 probes unanswered after ICMP port
// unreachable".
func failReason(t *healthTarget) string {
	var r string
	switch t.fails {
	case t.unanswer:
		r = probeCount(t.fails) + " unanswered"
	case t.got503:
		r = "503 x" + strconv.Itoa(t.fails)
	case t.sendErr:
		r = probeCount(t.fails) + " not sent"
	case t.refused:
		what := "connect failed"
		if t.hint == HintConnectRefused {
			what = "connect refused"
		}
		return what + " (" + probeCount(t.fails) + ")"
	default:
		r = probeCount(t.fails) + " failed (" + strconv.Itoa(t.unanswer) + " unanswered, " + strconv.Itoa(t.got503) +
			" 503, " + strconv.Itoa(t.sendErr) + " not sent, " + strconv.Itoa(t.refused) + " connect failed)"
	}
	if t.hint != 0 && !t.hint.connect() {
		r += " after " + t.hint.String()
	}
	return r
}

// probeCount returns "1 probe" or "n probes".
func probeCount(n int) string {
	if n == 1 {
		return "1 probe"
	}
	return strconv.Itoa(n) + " probes"
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
