package main

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
)

// End-to-end tests of backend failover, draining and reload: real UDP
// sockets on loopback, siplb in-process (failover, where timing matters and
// the process is the test's) or as the built binary (draining and reload,
// which go through SIGHUP). Every loop is bounded in count and time.

// Health settings of the failover test: a dead backend is marked down
// within Interval + (Fall-1)×Interval + Timeout of its death (the first
// probe after it, Fall probes in all, the last one's timeout), and a
// recovered one up within MaxBackoff + (Rise-1)×Interval plus a round trip.
const (
	foInterval   = 200 * time.Millisecond
	foTimeout    = 100 * time.Millisecond
	foFall       = 2
	foRise       = 2
	foMaxBackoff = foInterval // so that recovery is seen within one interval of the restart
	foRate       = 200        // calls per second of the steady load
)

// predictor computes the backend siplb's hash-callid pool picks for a
// Call-ID, from a Balancer with the same members (rendezvous hashing is a
// function of the Call-ID and the member addresses alone), with the given
// members marked down.
func predictor(t *testing.T, members []*backend, down ...*backend) func(callID string) netip.AddrPort {
	t.Helper()
	pc := balance.PoolConfig{Name: "farm", Algorithm: balance.HashCallID}
	for _, m := range members {
		pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: m.addr, Transport: balance.UDP})
	}
	bal, err := balance.New([]balance.PoolConfig{pc})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range down {
		bal.SetHealth(d.addr, false)
	}
	return func(callID string) netip.AddrPort {
		b, ok := bal.Pick(0, []byte(callID))
		if !ok {
			t.Fatalf("predictor: no backend for %q", callID)
		}
		return b.Addr
	}
}

// callRecord is one call of a load run.
type callRecord struct {
	id     string
	sent   time.Time // when its INVITE was sent
	target string    // backend that answered the INVITE, "" if none
	err    error
}

// load runs calls at a steady rate through one client until stop, each in
// its own goroutine, and collects their records.
type load struct {
	c      *client
	prefix string
	r      retry

	stopc chan struct{}
	once  sync.Once
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	calls []callRecord
}

// startLoad starts calls named prefix-N at rate per second, at most limit
// of them; it is stopped when the test ends if not before.
func startLoad(t *testing.T, c *client, prefix string, rate, limit int, r retry) *load {
	l := &load{c: c, prefix: prefix, r: r, stopc: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { l.stop() })
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := range limit {
			select {
			case <-l.stopc:
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("%s-%d", prefix, i)
			l.wg.Go(func() {
				rec := callRecord{id: id, sent: time.Now()}
				rec.target, rec.err = c.call(id, r)
				l.mu.Lock()
				l.calls = append(l.calls, rec)
				l.mu.Unlock()
			})
		}
	}()
	return l
}

// stop ends the load and waits for the calls in flight; it returns the
// calls in the order they were sent.
func (l *load) stop() []callRecord {
	l.once.Do(func() { close(l.stopc) })
	<-l.done
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortFunc(l.calls, func(a, b callRecord) int { return a.sent.Compare(b.sent) })
	return l.calls
}

// Failover under load: three backends behind siplb, 200 calls/s, one of
// them killed. Only calls hashed to the dead backend fail, and only until it
// is marked down; then every new call completes on the other two, and
// Call-IDs that lived there stay where they were (rendezvous hashing). When
// the backend comes back on its port it takes its calls again after Rise
// answered probes. The batched UDP path also learns of the death from ICMP
// port unreachable (IP_RECVERR), a hint that probes B at once and re-probes
// it a Timeout apart, so B is down Fall×Timeout after the first call that
// reaches it dead (before, the ICMP marked it down at once); gnet's UDP path
// has only the regular probes, so it shows what probing alone achieves.
// Both fit the window below.
func TestFailoverUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		udpIO string
	}{
		{name: "batch", udpIO: "batch"},
		{name: "gnet_probes_only", udpIO: "gnet"},
	} {
		t.Run(tc.name, func(t *testing.T) { testFailover(t, tc.udpIO) })
	}
}

func testFailover(t *testing.T, udpIO string) {
	a, b, c := startBackend(t, "A"), startBackend(t, "B"), startBackend(t, "C")
	all := []*backend{a, b, c}
	lbAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := yamlConfig{
		listen: lbAddr, admin: adminAddr, udpIO: udpIO,
		health: fmt.Sprintf("{interval: %v, timeout: %v, fall: %d, rise: %d, max_backoff: %v}",
			foInterval, foTimeout, foFall, foRise, foMaxBackoff),
	}
	for _, be := range all {
		cfg.backends = append(cfg.backends, "{address: "+be.url()+"}")
	}
	logs := startServe(t, cfg.bytes())
	cl := newClient(t, lbAddr)
	waitServing(t, cl)
	for _, be := range all { // the checker runs: every backend has answered a probe
		deadline := time.Now().Add(3 * time.Second)
		for be.answered() == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if be.answered() == 0 {
			t.Fatalf("backend %s was never probed", be.name)
		}
	}
	full := predictor(t, all)
	withoutB := predictor(t, all, b)
	once := retry{tries: 1, wait: 2 * time.Second} // no retransmission: a failure is a call lost to B

	// A fixed set of Call-IDs and where they live with all three up.
	const sticky = 60
	before := make(map[string]string, sticky)
	for i := range sticky {
		id := fmt.Sprintf("sticky-%d", i)
		target, err := cl.call(id, once)
		if err != nil {
			t.Fatalf("before the failure: %v", err)
		}
		if want := full(id).String(); target != want {
			t.Fatalf("%s answered by %s, want %s (the rendezvous pick)", id, target, want)
		}
		before[id] = target
	}

	// Steady load; B dies in the middle of it.
	ld := startLoad(t, cl, "load", foRate, 10*foRate, once)
	time.Sleep(time.Second)
	died := time.Now()
	b.stop()
	detect := waitBackends(t, adminAddr, 5*time.Second, "B down", func(bs []backendsJSON) bool {
		e, ok := entry(bs, b.addr)
		return ok && e.State == "down"
	})
	window := foInterval*(foFall+1) + foTimeout // the worst case of detection, and one interval of slack
	time.Sleep(window + time.Second - time.Since(died))
	calls := ld.stop()

	var failed, afterWindow, toB int
	var lastToB time.Duration
	for _, r := range calls {
		since := r.sent.Sub(died)
		if r.err != nil {
			failed++
			if p := full(r.id); p != b.addr {
				t.Errorf("%s (sent %v after the failure) failed but hashes to %s, not the dead B: %v", r.id, since.Round(time.Millisecond), p, r.err)
			}
			lastToB = max(lastToB, since)
			continue
		}
		if r.target == b.addr.String() {
			toB++
			if since > 0 {
				t.Errorf("%s completed on B %v after B died", r.id, since.Round(time.Millisecond))
			}
		}
		if since > window {
			afterWindow++
			if want := withoutB(r.id).String(); r.target != want {
				t.Errorf("%s, sent %v after the failure, answered by %s, want %s", r.id, since.Round(time.Millisecond), r.target, want)
			}
		}
	}
	for _, r := range calls {
		if since := r.sent.Sub(died); since > window && r.err != nil {
			t.Errorf("%s, sent %v after the failure (window %v), failed: %v", r.id, since.Round(time.Millisecond), window, r.err)
		}
	}
	if lastToB > window {
		t.Errorf("last call lost to B was sent %v after it died, want at most %v", lastToB, window)
	}
	if afterWindow < foRate/2 {
		t.Errorf("only %d calls after the window; the load did not run", afterWindow)
	}
	if toB == 0 {
		t.Errorf("no call of the load reached B before it died")
	}
	t.Logf("failover (udp_io %s): %d calls at %d/s; health interval %v, timeout %v, fall %d", udpIO, len(calls), foRate, foInterval, foTimeout, foFall)
	t.Logf("failover: B marked down %v after it died (seen on /backends); last call lost to B sent %v after; %d calls lost, all hashed to B",
		detect.Round(time.Millisecond), lastToB.Round(time.Millisecond), failed)
	t.Logf("failover: %d calls sent more than %v after the death, all completed on A and C", afterWindow, window)

	// The fixed Call-IDs: those of A and C stay, those of B move.
	moved := 0
	for i := range sticky {
		id := fmt.Sprintf("sticky-%d", i)
		target, err := cl.call(id, once)
		if err != nil {
			t.Errorf("with B down: %v", err)
			continue
		}
		switch {
		case before[id] != b.addr.String() && target != before[id]:
			t.Errorf("%s moved from %s to %s although its backend is up", id, before[id], target)
		case before[id] == b.addr.String():
			moved++
			if want := withoutB(id).String(); target != want {
				t.Errorf("%s (on B) moved to %s, want %s", id, target, want)
			}
		}
	}
	if moved == 0 || moved == sticky {
		t.Errorf("%d of %d fixed Call-IDs were on B; the hash does not spread", moved, sticky)
	}

	// B comes back on its port, under load.
	ld = startLoad(t, cl, "back", foRate, 10*foRate, retry{tries: 1, wait: 2 * time.Second})
	time.Sleep(300 * time.Millisecond)
	if err := b.restart(); err != nil {
		ld.stop()
		t.Fatalf("restart B on %s: %v", b.addr, err)
	}
	restarted, first := b.firstInviteSinceStart()
	deadline := restarted.Add(5 * time.Second)
	for first.IsZero() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		_, first = b.firstInviteSinceStart()
	}
	time.Sleep(300 * time.Millisecond)
	calls = ld.stop()
	if first.IsZero() {
		t.Fatalf("no new call reached B within 5s of its restart\n%s", logs.String())
	}
	back := first.Sub(restarted)
	limit := foMaxBackoff + foRise*foInterval + foInterval // first probe, Rise answered ones, one interval of slack
	if back > limit {
		t.Errorf("B took its first new call %v after its restart, want at most %v", back, limit)
	}
	for _, r := range calls {
		if r.err != nil {
			t.Errorf("%s failed while B came back: %v", r.id, r.err)
		}
	}
	t.Logf("recovery: B took its first new call %v after its restart (rise %d, max_backoff %v); %d calls, none lost",
		back.Round(time.Millisecond), foRise, foMaxBackoff, len(calls))
	for id, was := range before {
		if was != b.addr.String() {
			continue
		}
		if target, err := cl.call(id, once); err != nil || target != was {
			t.Errorf("%s: back on %q (err %v), want B %s again", id, target, err, was)
		}
	}
}

// Draining: a dialog set up on B before B is set draining by a reload keeps
// reaching B (its BYE, Request-URI B's Contact, routed by the Record-Route);
// new calls never do.
func TestDrainingKeepsDialogs(t *testing.T) {
	bin := buildSiplb(t)
	a, b, c := startBackend(t, "A"), startBackend(t, "B"), startBackend(t, "C")
	all := []*backend{a, b, c}
	lbAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := yamlConfig{listen: lbAddr, admin: adminAddr, health: "{interval: 1s, timeout: 400ms}"}
	for _, be := range all {
		cfg.backends = append(cfg.backends, "{address: "+be.url()+"}")
	}
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	writeFileAtomic(t, path, cfg.bytes())
	var out syncBuffer
	proc := startProc(t, &out, bin, "--config", path, "--loops", "2")
	cl := newClient(t, lbAddr)
	waitServing(t, cl)
	r := retry{tries: 4, wait: 500 * time.Millisecond}
	full := predictor(t, all)

	// Dialogs on B, established while B is up.
	var onB []*dialog
	for i := 0; len(onB) < 5 && i < 200; i++ {
		id := fmt.Sprintf("drain-%d", i)
		if full(id) != b.addr {
			continue
		}
		d, err := cl.invite(id, r)
		if err != nil {
			t.Fatal(err)
		}
		if d.target != b.addr.String() {
			t.Fatalf("%s: INVITE answered by %s, want B %s", id, d.target, b.addr)
		}
		onB = append(onB, d)
	}
	if len(onB) < 5 {
		t.Fatalf("found %d Call-IDs hashed to B, want 5", len(onB))
	}

	cfg.backends[1] = "{address: " + b.url() + ", state: draining}"
	writeFileAtomic(t, path, cfg.bytes())
	if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitBackends(t, adminAddr, 5*time.Second, "B draining", func(bs []backendsJSON) bool {
		e, ok := entry(bs, b.addr)
		return ok && e.State == "draining"
	})

	for _, d := range onB {
		if err := d.ackBye(r); err != nil {
			t.Errorf("dialog on draining B: %v", err)
			continue
		}
		if got := strings.Join(b.methods(d.callID), ","); got != "INVITE,ACK,BYE" {
			t.Errorf("%s: B saw %s, want INVITE,ACK,BYE", d.callID, got)
		}
		for _, o := range []*backend{a, c} {
			if ms := o.methods(d.callID); len(ms) > 0 {
				t.Errorf("%s: %s saw %v of a dialog on B", d.callID, o.name, ms)
			}
		}
	}

	const fresh = 150
	hashedToB := 0
	for i := range fresh {
		id := fmt.Sprintf("after-drain-%d", i)
		if full(id) == b.addr {
			hashedToB++
		}
		target, err := cl.call(id, r)
		if err != nil {
			t.Errorf("new call with B draining: %v", err)
			continue
		}
		if target == b.addr.String() || b.invited(id) {
			t.Errorf("%s: new call reached draining B", id)
		}
	}
	if hashedToB == 0 {
		t.Fatalf("none of %d new Call-IDs hashes to B; the test proves nothing", fresh)
	}
	if t.Failed() {
		t.Logf("siplb output:\n%s", tail([]byte(out.String()), 3000))
		return
	}
	t.Logf("draining: %d dialogs on B ended on B after the drain; %d new calls (%d hashed to B) all went to A and C",
		len(onB), fresh, hashedToB)
}

// Reload under load: SIGHUP several times, alternating two configurations
// (one adds a backend and changes a weight), while OPTIONS and calls stream
// through siplb. With a client that retransmits (every 500 ms, 3 times)
// nothing is lost, and the last configuration is the one in force.
func TestReloadUnderLoad(t *testing.T) {
	bin := buildSiplb(t)
	a, b, c := startBackend(t, "A"), startBackend(t, "B"), startBackend(t, "C")
	lbAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	v1 := yamlConfig{listen: lbAddr, admin: adminAddr, health: "{interval: 1s, timeout: 400ms}",
		backends: []string{"{address: " + a.url() + "}", "{address: " + b.url() + "}"}}
	v2 := v1
	v2.backends = []string{"{address: " + a.url() + ", weight: 3}", "{address: " + b.url() + "}", "{address: " + c.url() + "}"}
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	writeFileAtomic(t, path, v1.bytes())
	var out syncBuffer
	proc := startProc(t, &out, bin, "--config", path, "--loops", "2")
	cl := newClient(t, lbAddr)
	waitServing(t, cl)

	const (
		ticks   = 500 // one OPTIONS per tick, a call every other tick
		every   = 5 * time.Millisecond
		reloads = 5
	)
	r := retry{tries: 4, wait: 500 * time.Millisecond} // resent after 500 ms up to 3 times
	var (
		wg                       sync.WaitGroup
		sent, lost, resent, done atomic.Int64
		errMu                    sync.Mutex
		errs                     []error
	)
	fail := func(err error) {
		lost.Add(1)
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	hups := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		for i := range reloads {
			v := v2
			if i%2 == 1 {
				v = v1
			}
			writeFileAtomic(t, path, v.bytes())
			if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
				hups <- err
				return
			}
			time.Sleep(400 * time.Millisecond)
		}
		hups <- nil
	}()
	tick := time.NewTicker(every)
	for i := range ticks {
		<-tick.C
		sent.Add(1)
		wg.Go(func() {
			tries, err := cl.options(fmt.Sprintf("reload-opt-%d", i), r)
			resent.Add(int64(tries - 1))
			if err != nil {
				fail(err)
				return
			}
			done.Add(1)
		})
		if i%2 == 0 {
			sent.Add(1)
			wg.Go(func() {
				if _, err := cl.call(fmt.Sprintf("reload-call-%d", i), r); err != nil {
					fail(err)
					return
				}
				done.Add(1)
			})
		}
	}
	tick.Stop()
	wg.Wait()
	if err := <-hups; err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	for i, err := range errs {
		if i == 5 {
			break
		}
		t.Error(err)
	}
	if lost.Load() != 0 || done.Load() != sent.Load() {
		t.Errorf("reload under load: %d transactions sent, %d answered, %d lost; want none lost", sent.Load(), done.Load(), lost.Load())
	}
	t.Logf("reload: %d SIGHUPs during %d OPTIONS and %d calls (%d transactions); %d answered, %d lost, %d retransmissions",
		reloads, ticks, ticks/2, sent.Load(), done.Load(), lost.Load(), resent.Load())

	// Every SIGHUP was a reload, and the last configuration (v2) is in force.
	deadline := time.Now().Add(3 * time.Second)
	for out.count("configuration reloaded") < reloads && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := out.count("configuration reloaded"); n != reloads {
		t.Errorf("%d reloads logged, want %d\n%s", n, reloads, out.String())
	}
	if n := out.count("reload failed"); n != 0 {
		t.Errorf("%d reloads failed\n%s", n, out.String())
	}
	bs, err := adminBackends(adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := entry(bs, a.addr); !ok || e.Weight != 3 {
		t.Errorf("/backends: A = %+v (present %v), want weight 3", e, ok)
	}
	if e, ok := entry(bs, c.addr); !ok || e.State != "up" {
		t.Errorf("/backends: C = %+v (present %v), want up", e, ok)
	}
	// C takes new calls in the last configuration.
	tookC := 0
	for i := range 60 {
		target, err := cl.call(fmt.Sprintf("reload-final-%d", i), r)
		if err != nil {
			t.Errorf("after the reloads: %v", err)
		}
		if target == c.addr.String() {
			tookC++
		}
	}
	if tookC == 0 {
		t.Errorf("C, added by the reload, took none of 60 new calls")
	}
	if t.Failed() {
		t.Logf("siplb output:\n%s", tail([]byte(out.String()), 3000))
	}
}
