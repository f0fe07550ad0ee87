package balance

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tableCheckEvery bounds how long Run sleeps without looking at the
// Balancer's Table, so a Reload that adds members gets them probed soon even
// when no probe is due.
const tableCheckEvery = time.Second

// maxErrText bounds the text of a send error kept for a reason.
const maxErrText = 80

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
// Observe: runs of 5xx, and responses that show a backend alive), and marks
// backends down and up through Balancer.SetHealth, so the change is in the
// next Table the data path loads. Each change is logged with its reason.
//
// A backend starts in rotation, as the Balancer has it (Up unless configured
// otherwise), and is probed at once; it leaves only when probes or passive
// detection say so: Fall failed probes in a row, or a run of
// PassiveFailures 5xx. Unanswered probes are not failures while the backend
// answers traffic (PassiveSuccess, see HealthConfig.NoPassiveSuccess). A
// down backend is re-probed DownInterval after the mark, then at gaps that
// grow with its outage (a tenth of it, within [DownInterval, MaxBackoff]),
// and is up again after Rise answered probes DownInterval apart: one that
// comes back after an outage of D is up within about max(DownInterval,
// D/10) + (Rise-1)×DownInterval.
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
	deflt   *probeConfig // for pools missing from cfgs
	fromTag uint32
	idBase  uint64 // first probe id this checker issues

	// passive is the set of targets with PassiveFailures > 0 or passive
	// success on, rebuilt by resync and read lock-free by Observe. The map
	// is never modified after it is stored.
	passive atomic.Pointer[map[netip.AddrPort]passiveTarget]

	mu      sync.Mutex              // guards everything below and every target's fields except run and seen
	cfgs    map[string]*probeConfig // effective, by pool name
	gen     uint64                  // Generation of the Table last resynced (0: resync now)
	targets map[netip.AddrPort]*healthTarget
	pending map[uint64]*healthTarget // probe id → its target, while unanswered
	nextID  uint64

	wake chan struct{} // a Reconfigure or a hint asks Run for a round now

	// Set by SetCluster before Run (health_cluster.go): owner says whether
	// this instance probes an address; onVerdict hears each mark it makes.
	owner     func(netip.AddrPort) bool
	onVerdict func(Verdict)

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
	cfg       *probeConfig

	up    bool
	fails int // consecutive failed probes (any kind)
	oks   int // consecutive answered probes
	// The kinds of the fails, for the reason.
	unanswer  int           // timeouts
	got503    int           // 503 replies with DownOn503
	badReply  int           // replies outside ReplyCodes
	badStatus int           // the last of them
	badMixed  bool          // not all of them had badStatus
	sendErr   int           // SendProbe errors
	lastErr   string        // the last of them, at most maxErrText bytes
	conn      [numHints]int // the probe's connection failed, by kind (stream backends)
	excused   int           // unanswered probes not counted since the last answered one (passive success)
	next      time.Time     // next probe is due (when pending == 0)
	pending   uint64        // id of the probe in flight, 0 if none
	sentAt    time.Time     // of the last probe
	deadline  time.Time     // of the probe in flight
	cseq      uint32        // of the last probe
	reason    string        // of the last mark
	since     time.Time     // of the last mark
	downAt    time.Time     // when the outage began (marked or found down), for the backoff
	lastRTT   time.Duration // of the last answered probe
	lastReply int           // status of the last final response to a probe
	rtt       rttStats      // every answered probe's round trip
	lost      uint8         // the last 8 settled probes, a 1 for each unanswered (latency.go)

	hint      Hint      // the hint that put t in quick re-probing; 0 if none
	hintProbe time.Time // when a hint last started a probe

	run atomic.Int32 // consecutive 5xx reported by Observe

	// remote: another cluster member probes t (SetCluster's owner said so
	// at the last round); its verdicts come through ApplyVerdict.
	remote bool

	// seen is 1 when Observe reported a final non-5xx response since the
	// first probe of the current run of failures was sent (or, with no
	// failure, since the last probe was sent).
	seen atomic.Uint32
}

// passiveTarget is an entry of Checker.passive: a target and its passive
// settings, copied so that Observe reads nothing resync writes.
type passiveTarget struct {
	t       *healthTarget
	limit   int32 // PassiveFailures; 0: off
	success bool  // passive success on
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
	c := &Checker{
		bal:     bal,
		id:      id,
		send:    send,
		log:     log,
		cfgs:    probeConfigs(health),
		deflt:   newProbeConfig(HealthConfig{}),
		fromTag: rand.Uint32(),
		// A random start keeps the probe ids (and so the Call-IDs) of two
		// instances, or of one instance across restarts, apart.
		idBase:  rand.Uint64()>>1 | 1,
		targets: make(map[netip.AddrPort]*healthTarget),
		pending: make(map[uint64]*healthTarget),
		wake:    make(chan struct{}, 1),
	}
	c.nextID = c.idBase
	return c
}

func probeConfigs(health map[string]HealthConfig) map[string]*probeConfig {
	cfgs := make(map[string]*probeConfig, len(health))
	for name, h := range health {
		cfgs[name] = newProbeConfig(h)
	}
	return cfgs
}

// Reconfigure replaces the HealthConfigs by pool name, as NewChecker takes
// them, for a configuration reload; Run applies them at once.
// Backends keep their marks and counts.
func (c *Checker) Reconfigure(health map[string]HealthConfig) {
	cfgs := probeConfigs(health)
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

// step resyncs with the Table, settles the probes past their deadline and
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
		if c.skipRemote(t, now) {
			continue
		}
		if t.pending != 0 && !now.Before(t.deadline) {
			c.unanswered(t)
		}
		if t.pending == 0 && !now.Before(t.next) {
			id := c.nextID
			c.nextID++
			t.pending = id
			t.sentAt = now
			timeout := t.cfg.Timeout
			if !t.up {
				// Re-probes of a down backend come downGap apart, which
				// may be shorter than Timeout: each must be answered
				// before the next is due.
				timeout = min(timeout, downGap(t, now))
			}
			t.deadline = now.Add(timeout)
			t.cseq = t.cseq%(1<<31-1) + 1 // RFC 3261 §8.1.1.5: below 2**31
			if t.fails == 0 && t.seen.Load() != 0 {
				// A run of failures would begin with this probe: only
				// responses from now on show the backend alive during it.
				t.seen.Store(0)
			}
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
					p.t.lastErr = clip(err.Error(), maxErrText)
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
// forwarded). The final answer to a probe in flight counts as a success if
// its status means alive (any, unless the pool has ReplyCodes or DownOn503),
// else as a failure; a reply that comes after the Timeout is an unanswered
// probe; provisional (1xx) replies and late duplicates are consumed without
// effect. branch is not retained. Safe for concurrent use; it does not
// allocate unless it marks the backend down or up.
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
		c.unanswered(t)
	case !t.cfg.alive(status):
		t.lastRTT = now.Sub(t.sentAt)
		t.rtt.observe(t.lastRTT)
		c.noteLatency(t, false)
		if status == 503 && t.cfg.DownOn503 {
			t.got503++
		} else {
			t.badMixed = t.badMixed || t.badReply > 0 && status != t.badStatus
			t.badReply++
			t.badStatus = status
		}
		c.fail(t, now)
	default:
		t.lastRTT = now.Sub(t.sentAt)
		t.rtt.observe(t.lastRTT)
		c.noteLatency(t, false)
		c.succeed(t)
	}
	return true
}

// Observe is passive detection: the engine reports the status of each final
// response that backend addr sends to traffic it forwarded. With
// PassiveFailures N in the HealthConfig of its pool, N consecutive 5xx mark
// an up backend down at once (its first re-probe is an Interval later, so a
// stack that answers calls with 5xx but probes with 200 is kept out that
// long); any other final status ends the run. Unless NoPassiveSuccess, a
// final non-5xx response also shows the backend alive: a run of unanswered
// probes of an up backend that sent one since the run's first probe was
// sent is cancelled, rather than counted towards Fall (the backend ignores
// OPTIONS). So a backend that never answers probes stays up while it
// answers traffic at least once every (Fall-1)×Interval+Timeout (12 s by
// default) and is marked down when it does not; refused connects, replies
// outside ReplyCodes and 503 with DownOn503 are failures all the same.
// Observe does not make a down backend up. Provisional statuses and
// unprobed addresses are ignored.
//
// Observe is on the data path, called for every final response: it takes
// no lock, does not allocate unless it marks the backend down, and in
// steady state only reads shared memory (an atomic load of each of two
// flags already set).
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
		if pt.success && t.seen.Load() == 0 {
			t.seen.Store(1)
		}
		return
	}
	if pt.limit == 0 {
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
	now := time.Now()
	c.settle(t)
	c.clearFails(t)
	t.oks = 0
	c.markDown(t, now, strconv.Itoa(int(n))+" consecutive 5xx responses")
	t.next = now.Add(t.cfg.Interval)
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
	// Failing says what the current run of failed probes is, as Reason
	// would when it marks the backend down ("2 probes unanswered",
	// "connect refused (1 probe)", "TLS handshake failed (2 probes)");
	// empty when the last probe did not fail.
	Failing string
	// Excused counts the unanswered probes since the last answered one
	// that were not failures because the backend answered traffic
	// meanwhile (passive success): a backend that ignores OPTIONS.
	Excused   int
	LastRTT   time.Duration
	LastReply int // status of the last final reply to a probe, 0 if none
	// RTT is every answered probe's round trip: an EWMA and a histogram
	// (RTTBuckets' upper bounds).
	RTT RTTStats
	// Remote: another cluster member probes this backend; Up, Reason and
	// Since are its last verdict (SetCluster).
	Remote bool
}

// Status returns the health of every probed backend, in no particular order.
// It allocates; for the admin API and tests.
func (c *Checker) Status() []BackendHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]BackendHealth, 0, len(c.targets))
	for _, t := range c.targets {
		var failing string
		if t.fails > 0 {
			failing = failReason(t)
		}
		out = append(out, BackendHealth{
			Addr: t.addr, Pool: t.pool, Up: t.up, Reason: t.reason, Since: t.since,
			Failures: t.fails, Successes: t.oks, Failing: failing, Excused: t.excused,
			LastRTT: t.lastRTT, LastReply: t.lastReply, RTT: t.rtt.RTTStats, Remote: t.remote,
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
				// In rotation as the Table has it, and probed at once.
				t = &healthTarget{addr: b.Addr, up: b.Healthy(), next: now, downAt: now}
				c.targets[b.Addr] = t
			}
			t.pool, t.transport, t.cfg = p.Name(), b.Transport, cfg
			if t.up != b.Healthy() {
				// Someone else (configuration, admin API) changed the mark:
				// follow it and count afresh.
				t.up = b.Healthy()
				c.resetCounts(t)
				if !t.up {
					t.downAt = now
				}
			}
			if cfg.PassiveFailures > 0 || !cfg.NoPassiveSuccess {
				passive[b.Addr] = passiveTarget{t: t, limit: int32(min(cfg.PassiveFailures, 1<<30)), success: !cfg.NoPassiveSuccess}
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

// succeed records an answered probe of t: the next one is an Interval after
// it, or DownInterval while t is down and not yet up by Rise. Called with
// c.mu.
func (c *Checker) succeed(t *healthTarget) {
	c.settle(t)
	c.clearFails(t)
	t.excused = 0
	t.oks++
	if !t.up && t.oks < t.cfg.Rise {
		t.next = t.sentAt.Add(t.cfg.DownInterval)
		return
	}
	t.next = t.sentAt.Add(t.cfg.Interval)
	if t.up {
		return
	}
	t.up = true
	t.run.Store(0)
	t.reason = probeCount(t.oks) + " answered"
	t.since = time.Now()
	c.bal.SetHealth(t.addr, true)
	c.log.Info("backend up", "pool", t.pool, "backend", t.addr, "reason", t.reason)
	c.verdict(t)
}

// unanswered records that the probe in flight of t went unanswered by its
// deadline. With passive success, a run of nothing but unanswered probes of
// an up backend that answered traffic since the run's first probe was sent
// is cancelled instead (Observe). Called with c.mu.
func (c *Checker) unanswered(t *healthTarget) {
	if t.up && !t.cfg.NoPassiveSuccess && t.fails == t.unanswer && t.seen.Load() != 0 {
		sent := t.sentAt
		c.settle(t)
		c.noteLatency(t, true)
		t.fails, t.unanswer, t.hint = 0, 0, 0
		t.excused++
		t.next = sent.Add(t.cfg.Interval)
		if t.excused == 1 {
			c.log.Info("backend kept up by traffic", "pool", t.pool, "backend", t.addr,
				"reason", "probe unanswered, responses to traffic meanwhile")
		}
		return
	}
	t.unanswer++
	c.noteLatency(t, true)
	c.fail(t, t.deadline)
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
	switch {
	case !t.up:
		t.next = sent.Add(downGap(t, at))
	case t.fails >= t.cfg.Fall:
		c.markDown(t, at, failReason(t))
	case t.hint != 0:
		t.next = sent.Add(t.cfg.Timeout) // quick re-probing (Unreachable)
	default:
		t.next = sent.Add(t.cfg.Interval)
	}
}

// downGap returns the gap between a failed re-probe of down backend t and
// the next one, at the given time: a tenth of its outage so far, within
// [DownInterval, MaxBackoff]. It grows with the outage, so a backend back
// after a short one is found soon and a long-dead one costs little.
func downGap(t *healthTarget, at time.Time) time.Duration {
	return min(max(at.Sub(t.downAt)/downBackoffShare, t.cfg.DownInterval), t.cfg.MaxBackoff)
}

// markDown marks t down at the given time for reason and schedules its
// first re-probe DownInterval later. Called with c.mu.
func (c *Checker) markDown(t *healthTarget, at time.Time, reason string) {
	t.up = false
	t.hint = 0
	t.reason = reason
	t.since = at
	t.downAt = at
	t.next = at.Add(t.cfg.DownInterval)
	c.bal.SetHealth(t.addr, false)
	c.log.Warn("backend down", "pool", t.pool, "backend", t.addr, "reason", reason)
	c.verdict(t)
}

// settle ends the probe in flight of t, if any; a reply to it that comes
// later is consumed without effect. Called with c.mu.
func (c *Checker) settle(t *healthTarget) {
	if t.pending != 0 {
		delete(c.pending, t.pending)
		t.pending = 0
	}
}

// clearFails ends t's run of failed probes, if any. Called with c.mu.
func (c *Checker) clearFails(t *healthTarget) {
	t.fails = 0
	t.unanswer, t.got503, t.badReply, t.badStatus, t.badMixed, t.sendErr = 0, 0, 0, 0, false, 0
	t.conn = [numHints]int{}
	t.hint = 0
}

func (c *Checker) resetCounts(t *healthTarget) {
	c.clearFails(t)
	t.oks, t.excused = 0, 0
	t.run.Store(0)
}

// failReason describes the run of failed probes of t, from what it saw:
// "3 probes unanswered", "3 probes answered 503", "3 probes answered 404,
// not in reply_codes", "3 probes not sent: <error>", "connect refused (3
// probes)", "connect timed out (3 probes)", "TLS handshake failed (3
// probes)", or a mix: "3 probes failed: 1 unanswered, 2 connect refused". A
// run that followed an ICMP hint says so: "3 probes unanswered after ICMP
// port unreachable".
func failReason(t *healthTarget) string {
	var parts []string
	single := ""
	add := func(n int, part, alone string) {
		if n == 0 {
			return
		}
		parts = append(parts, strconv.Itoa(n)+" "+part)
		single = alone
	}
	add(t.unanswer, "unanswered", probeCount(t.unanswer)+" unanswered")
	add(t.got503, "answered 503", probeCount(t.got503)+" answered 503")
	bad := "outside reply_codes (last " + strconv.Itoa(t.badStatus) + ")"
	if !t.badMixed {
		bad = strconv.Itoa(t.badStatus) + ", not in reply_codes"
	}
	add(t.badReply, "answered "+bad, probeCount(t.badReply)+" answered "+bad)
	add(t.sendErr, "not sent", probeCount(t.sendErr)+" not sent: "+t.lastErr)
	for h := Hint(1); h < numHints; h++ {
		add(t.conn[h], h.String(), h.String()+" ("+probeCount(t.conn[h])+")")
	}
	r := single
	if len(parts) > 1 {
		r = probeCount(t.fails) + " failed: " + strings.Join(parts, ", ")
	}
	if t.hint != 0 && !t.hint.Connect() {
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

// clip returns s cut to at most n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
