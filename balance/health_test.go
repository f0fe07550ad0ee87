package balance

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siplb/siplb/parser"
)

const testBranchPrefix = "z9hG4bK1a2b3c4dff"

var testIdentity = ProbeIdentity{Transport: "UDP", SentBy: "127.0.0.1:5060", BranchPrefix: testBranchPrefix}

var errSend = errors.New("sendto: connection refused")

// answer is how a fake backend treats a probe.
type answer struct {
	status int           // reply status; 0: no reply
	delay  time.Duration // before the reply
	err    error         // SendProbe fails with it
	hint   Hint          // SendProbe reports it through Unreachable (a stream probe's failed connect)
}

// fakeFarm is a ProbeSender whose backends answer as the test sets: it
// parses every probe and replies through Checker.Response, at once or after
// a delay (in the synctest bubble).
type fakeFarm struct {
	c        *Checker
	done     <-chan struct{} // closed at the end of the test
	mu       sync.Mutex
	answer   map[netip.AddrPort]answer
	sent     map[netip.AddrPort][]time.Time
	branches [][]byte
	errs     []error
}

func (f *fakeFarm) SendProbe(to *Backend, msg []byte) error {
	var m parser.Message
	err := parser.Parse(&m, msg)
	f.mu.Lock()
	if err != nil {
		f.errs = append(f.errs, err)
		f.mu.Unlock()
		return nil
	}
	branch := bytes.Clone(m.TopVia().Branch)
	a := f.answer[to.Addr]
	f.sent[to.Addr] = append(f.sent[to.Addr], time.Now())
	f.branches = append(f.branches, branch)
	f.mu.Unlock()
	switch {
	case a.err != nil:
		return a.err
	case a.hint != 0:
		f.c.Unreachable(to.Addr, a.hint)
	case a.status == 0:
	case a.delay == 0:
		f.c.Response(branch, a.status)
	default:
		go func() {
			select {
			case <-time.After(a.delay):
				f.c.Response(branch, a.status)
			case <-f.done:
			}
		}()
	}
	return nil
}

func (f *fakeFarm) set(addr netip.AddrPort, a answer) {
	f.mu.Lock()
	f.answer[addr] = a
	f.mu.Unlock()
}

// probeTimes returns when addr was probed, relative to start.
func (f *fakeFarm) probeTimes(addr netip.AddrPort, start time.Time) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, at := range f.sent[addr] {
		out = append(out, at.Sub(start))
	}
	return out
}

// event is one health change the Checker logged.
type event struct {
	at      time.Time
	msg     string
	backend string
	reason  string
}

// recorder is a slog.Handler that keeps the Checker's "backend up/down" logs.
type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	if !strings.HasPrefix(rec.Message, "backend ") {
		return nil
	}
	ev := event{at: rec.Time, msg: rec.Message}
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "backend":
			ev.backend = a.Value.String()
		case "reason":
			ev.reason = a.Value.String()
		}
		return true
	})
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return nil
}

// find returns the first event msg ("backend down", "backend up") of addr.
func (r *recorder) find(msg string, addr netip.AddrPort) (event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.msg == msg && ev.backend == addr.String() {
			return ev, true
		}
	}
	return event{}, false
}

// harness is a running Checker over a Balancer and a fakeFarm, inside a
// synctest bubble.
type harness struct {
	bal   *Balancer
	c     *Checker
	farm  *fakeFarm
	rec   *recorder
	start time.Time
}

// startChecker starts a Checker over pools in the calling synctest bubble;
// every backend answers 200 until the test says otherwise. It returns once
// the first round of probes has been answered (or, with startCheckerWith,
// sent), at h.start.
func startChecker(t *testing.T, pools []PoolConfig, health map[string]HealthConfig) *harness {
	t.Helper()
	return startCheckerWith(t, pools, health, answer{status: 200})
}

// startCheckerWith is startChecker with every backend answering first as
// first says.
func startCheckerWith(t *testing.T, pools []PoolConfig, health map[string]HealthConfig, first answer) *harness {
	t.Helper()
	bal, err := New(pools)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{bal: bal, rec: &recorder{}, farm: &fakeFarm{
		answer: make(map[netip.AddrPort]answer),
		sent:   make(map[netip.AddrPort][]time.Time),
	}}
	for _, p := range pools {
		for _, bc := range p.Backends {
			h.farm.answer[bc.Addr] = first
		}
	}
	h.c = NewChecker(bal, health, testIdentity, h.farm, slog.New(h.rec))
	h.farm.c = h.c
	ctx, cancel := context.WithCancel(t.Context())
	h.farm.done = ctx.Done()
	t.Cleanup(func() {
		cancel()
		h.farm.mu.Lock()
		defer h.farm.mu.Unlock()
		for _, err := range h.farm.errs {
			t.Errorf("a probe does not parse: %v", err)
		}
	})
	h.start = time.Now()
	go h.c.Run(ctx)
	synctest.Wait()
	return h
}

func (h *harness) state(t *testing.T, addr netip.AddrPort) State {
	t.Helper()
	b, ok := h.bal.Table().Lookup(addr)
	if !ok {
		t.Fatalf("%v is not configured", addr)
	}
	return b.State
}

// TestHealthFall: an up backend that stops answering (or answers 503 with
// DownOn503, or cannot be sent to) is marked down after Fall failures, at
// (Fall-1)×Interval + Timeout after its first failed probe, with the reason.
func TestHealthFall(t *testing.T) {
	tests := []struct {
		name   string
		cfg    HealthConfig
		answer answer // from the second probe on
		// wantDown is the time from the last answered probe (t=0) to the
		// mark; 0: never marked down.
		wantDown   time.Duration
		wantReason string
	}{
		{name: "silent", answer: answer{}, wantDown: 17 * time.Second, wantReason: "3 probes unanswered"},
		{name: "replies after timeout", answer: answer{status: 200, delay: 3 * time.Second},
			wantDown: 17 * time.Second, wantReason: "3 probes unanswered"},
		{name: "503 down", cfg: HealthConfig{DownOn503: true}, answer: answer{status: 503},
			wantDown: 15 * time.Second, wantReason: "3 probes answered 503"},
		{name: "503 alive by default", answer: answer{status: 503}},
		{name: "404 alive", cfg: HealthConfig{DownOn503: true}, answer: answer{status: 404}},
		{name: "slow but in time", answer: answer{status: 200, delay: 1900 * time.Millisecond}},
		{name: "provisional only", answer: answer{status: 100}, wantDown: 17 * time.Second, wantReason: "3 probes unanswered"},
		{name: "send errors", answer: answer{err: errSend}, wantDown: 15 * time.Second, wantReason: "3 probes not sent: sendto: connection refused"},
		{name: "fall 1", cfg: HealthConfig{Interval: time.Second, Timeout: 300 * time.Millisecond, Fall: 1},
			answer: answer{}, wantDown: 1300 * time.Millisecond, wantReason: "1 probe unanswered"},
		{name: "fall 5", cfg: HealthConfig{Interval: 2 * time.Second, Timeout: time.Second, Fall: 5},
			answer: answer{}, wantDown: 11 * time.Second, wantReason: "5 probes unanswered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(2)}}, map[string]HealthConfig{"p": tc.cfg})
				h.farm.set(addr, tc.answer)
				time.Sleep(time.Minute)
				synctest.Wait()
				ev, down := h.rec.find("backend down", addr)
				if tc.wantDown == 0 {
					if down {
						t.Fatalf("marked down at %v (%s), want never", ev.at.Sub(h.start), ev.reason)
					}
					if s := h.state(t, addr); s != Up {
						t.Errorf("state %v, want up", s)
					}
					return
				}
				if !down {
					t.Fatalf("never marked down; probes at %v", h.farm.probeTimes(addr, h.start))
				}
				if got := ev.at.Sub(h.start); got != tc.wantDown || ev.reason != tc.wantReason {
					t.Errorf("marked down at %v (%q), want %v (%q)", got, ev.reason, tc.wantDown, tc.wantReason)
				}
				if s := h.state(t, addr); s != Down {
					t.Errorf("state %v after the mark, want down", s)
				}
				if s := h.state(t, backendAt(1)); s != Up {
					t.Errorf("the other backend is %v, want up", s)
				}
				t.Logf("down %v after the last answered probe", ev.at.Sub(h.start))
			})
		})
	}
}

// TestHealthRise: a down backend that answers again is marked up after Rise
// consecutive answers, DownInterval apart.
func TestHealthRise(t *testing.T) {
	tests := []struct {
		name   string
		cfg    HealthConfig
		wantUp time.Duration
	}{
		{name: "default rise 2", wantUp: time.Second},
		{name: "rise 1", cfg: HealthConfig{Rise: 1}, wantUp: 0},
		{name: "rise 4", cfg: HealthConfig{Rise: 4, Interval: time.Second, Timeout: 100 * time.Millisecond}, wantUp: 3 * time.Second},
		{name: "rise 3, down_interval 250ms", cfg: HealthConfig{Rise: 3, DownInterval: 250 * time.Millisecond}, wantUp: 500 * time.Millisecond},
		{name: "down_interval defaults to a shorter interval", cfg: HealthConfig{Interval: 200 * time.Millisecond, Timeout: 50 * time.Millisecond}, wantUp: 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				h := startChecker(t, []PoolConfig{{Name: "p", Backends: []BackendConfig{{Addr: addr, State: Down}}}},
					map[string]HealthConfig{"p": tc.cfg})
				time.Sleep(time.Minute)
				ev, ok := h.rec.find("backend up", addr)
				if !ok {
					t.Fatalf("never marked up; probes at %v", h.farm.probeTimes(addr, h.start))
				}
				if got := ev.at.Sub(h.start); got != tc.wantUp {
					t.Errorf("marked up at %v (%s), want %v", got, ev.reason, tc.wantUp)
				}
				if s := h.state(t, addr); s != Up {
					t.Errorf("state %v, want up", s)
				}
			})
		})
	}
}

// TestHealthFlapping: a failure in a run of answers restarts the count to
// Rise, and an answer in a run of failures restarts the count to Fall.
func TestHealthFlapping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		addr := backendAt(0)
		h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, nil)
		// Probes at 5, 10 unanswered, 15 answered, 20, 25, 30 unanswered:
		// down when the probe of 30 times out, at 32.
		for i, a := range []answer{{}, {}, {status: 200}, {}, {}, {}} {
			h.farm.set(addr, a)
			time.Sleep(5 * time.Second)
			synctest.Wait()
			if s := h.state(t, addr); s != Up {
				t.Fatalf("after probe %d: state %v", i+2, s)
			}
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		ev, _ := h.rec.find("backend down", addr)
		if got := ev.at.Sub(h.start); got != 32*time.Second {
			t.Errorf("down at %v, want 32s", got)
		}
	})
}

// TestHealthObserve: PassiveFailures consecutive 5xx mark an up backend
// down at once; any other final status breaks the run.
func TestHealthObserve(t *testing.T) {
	tests := []struct {
		name       string
		passive    int
		statuses   []int
		wantDown   bool
		wantReason string
	}{
		{name: "five 5xx", passive: 5, statuses: []int{500, 503, 502, 504, 500}, wantDown: true, wantReason: "5 consecutive 5xx responses"},
		{name: "four 5xx", passive: 5, statuses: []int{500, 503, 502, 504}},
		{name: "run broken by 200", passive: 3, statuses: []int{500, 500, 200, 500, 500}},
		{name: "run broken by 486", passive: 3, statuses: []int{500, 500, 486, 500, 500}},
		{name: "provisional does not break", passive: 3, statuses: []int{500, 100, 500, 183, 500}, wantDown: true, wantReason: "3 consecutive 5xx responses"},
		{name: "6xx is not 5xx", passive: 2, statuses: []int{500, 600, 500}},
		{name: "off", passive: 0, statuses: []int{500, 500, 500, 500, 500, 500, 500}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}},
					map[string]HealthConfig{"p": {PassiveFailures: tc.passive}})
				for _, st := range tc.statuses {
					h.c.Observe(addr, st)
				}
				if got := h.state(t, addr) == Down; got != tc.wantDown {
					t.Fatalf("down = %v, want %v", got, tc.wantDown)
				}
				if !tc.wantDown {
					return
				}
				if ev, _ := h.rec.find("backend down", addr); ev.reason != tc.wantReason {
					t.Errorf("reason %q, want %q", ev.reason, tc.wantReason)
				}
				// Re-probed after one Interval, up after Rise answers.
				time.Sleep(11 * time.Second)
				if s := h.state(t, addr); s != Up {
					t.Errorf("state %v after the backend answered probes again, want up", s)
				}
			})
		})
	}
}

// TestHealthReload: members a Reload adds are probed within a second,
// removed ones no longer; the operator's Disabled stops probing and
// Draining does not.
func TestHealthReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(2)}}, nil)
		time.Sleep(2500 * time.Millisecond)
		h.farm.set(backendAt(2), answer{status: 200})
		more := append(members(2), BackendConfig{Addr: backendAt(2)})
		if err := h.bal.Reload([]PoolConfig{{Name: "p", Backends: more[1:]}}); err != nil {
			t.Fatal(err)
		}
		reloaded := time.Since(h.start)
		if _, err := h.bal.SetState(backendAt(1), Draining); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		added := h.farm.probeTimes(backendAt(2), h.start)
		if len(added) == 0 || added[0]-reloaded > tableCheckEvery {
			t.Fatalf("added member probed at %v, reload at %v: want within %v", added, reloaded, tableCheckEvery)
		}
		t.Logf("added member first probed %v after the Reload", added[0]-reloaded)
		if len(added) < 6 {
			t.Errorf("added member probed at %v, want every 5s", added)
		}
		for _, at := range h.farm.probeTimes(backendAt(0), h.start) {
			if at > reloaded {
				t.Errorf("removed member probed at %v", at)
			}
		}
		if n := len(h.farm.probeTimes(backendAt(1), h.start)); n < 6 {
			t.Errorf("draining member probed %d times in 32.5s, want every 5s", n)
		}
		if _, err := h.bal.SetState(backendAt(1), Disabled); err != nil {
			t.Fatal(err)
		}
		disabled := time.Since(h.start)
		time.Sleep(30 * time.Second)
		for _, at := range h.farm.probeTimes(backendAt(1), h.start) {
			if at > disabled {
				t.Errorf("disabled member probed at %v (disabled at %v)", at, disabled)
			}
		}
		if len(h.c.Status()) != 1 {
			t.Errorf("Status lists %d backends, want 1: %+v", len(h.c.Status()), h.c.Status())
		}
	})
}

// TestHealthReconfigure: new HealthConfigs apply from the next round.
func TestHealthReconfigure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		addr := backendAt(0)
		h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, nil)
		h.c.Reconfigure(map[string]HealthConfig{"p": {Disabled: true}})
		time.Sleep(time.Minute)
		if n := len(h.farm.probeTimes(addr, h.start)); n != 1 {
			t.Errorf("%d probes while probing was disabled, want only the first", n)
		}
		h.c.Reconfigure(map[string]HealthConfig{"p": {Interval: time.Second, Timeout: 100 * time.Millisecond}})
		time.Sleep(10*time.Second - time.Millisecond)
		if n := len(h.farm.probeTimes(addr, h.start)); n != 11 {
			t.Errorf("%d probes in 10s with interval 1s, want 1+10: %v", n, h.farm.probeTimes(addr, h.start))
		}
	})
}

// TestHealthExternalMark: a mark set by someone else (the admin API) is
// followed, and probing then takes the backend back.
func TestHealthExternalMark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		addr := backendAt(0)
		h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, nil)
		h.bal.SetHealth(addr, false)
		time.Sleep(20 * time.Second)
		if s := h.state(t, addr); s != Up {
			t.Errorf("state %v, want up again after answered probes", s)
		}
	})
}

// TestHealthResponseConcurrent: event loops report replies concurrently;
// each probe is settled once, replies to other branches are not taken.
func TestHealthResponseConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(8)}}, nil)
		for i := range 8 {
			h.farm.set(backendAt(i), answer{})
		}
		time.Sleep(5 * time.Second) // a second round, unanswered so far
		synctest.Wait()
		h.farm.mu.Lock()
		branches := h.farm.branches
		h.farm.mu.Unlock()
		if len(branches) != 16 {
			t.Fatalf("%d probes, want 16", len(branches))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		notOurs := 0
		for range 8 {
			wg.Go(func() {
				foreign := []byte("z9hG4bK1a2b3c4d00" + strings.Repeat("0", 24))
				for _, b := range branches {
					if !h.c.Response(b, 200) || h.c.Response(foreign, 200) {
						mu.Lock()
						notOurs++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if notOurs != 0 {
			t.Errorf("%d wrong answers from Response", notOurs)
		}
		for _, st := range h.c.Status() {
			if !st.Up || st.Successes != 2 || st.Failures != 0 {
				t.Errorf("%v: up %v, %d successes, %d failures; want up, 2, 0", st.Addr, st.Up, st.Successes, st.Failures)
			}
		}
	})
}

// TestHealthForeignBranch: only branches this checker wrote, for probes it
// sent, are taken.
func TestHealthForeignBranch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, nil)
		h.farm.mu.Lock()
		ours := string(h.farm.branches[0])
		h.farm.mu.Unlock()
		id := ours[len(testBranchPrefix) : len(testBranchPrefix)+16]
		tests := []struct {
			name   string
			branch string
			want   bool
		}{
			{name: "answered probe", branch: ours, want: true},
			{name: "other leg", branch: "z9hG4bK1a2b3c4e0ff" + id + "00000000"},
			{name: "forwarded request", branch: "z9hG4bK1a2b3c4d00" + id + "0a0b0c0d"},
			{name: "upper-case hex", branch: testBranchPrefix + strings.ToUpper(id) + "00000000"},
			{name: "short", branch: testBranchPrefix + id},
			{name: "long", branch: ours + "0"},
			{name: "empty"},
			{name: "never issued", branch: testBranchPrefix + "0000000000000000" + "00000000"},
			{name: "non-hex", branch: testBranchPrefix + "zzzzzzzzzzzzzzzz" + "00000000"},
		}
		for _, tc := range tests {
			if got := h.c.Response([]byte(tc.branch), 200); got != tc.want {
				t.Errorf("%s: Response(%q) = %v, want %v", tc.name, tc.branch, got, tc.want)
			}
		}
	})
}

// TestProbeMessage: a probe is an OPTIONS request that the parser accepts,
// whose top Via carries the checker's sent-by, rport and a branch with its
// prefix.
func TestProbeMessage(t *testing.T) {
	tests := []struct {
		name      string
		id        ProbeIdentity
		addr      netip.AddrPort
		transport Transport
		wantRURI  string
		wantHost  string
	}{
		{name: "ipv4 udp", id: testIdentity, addr: backendAt(0), wantRURI: "sip:10.0.0.1:5060", wantHost: "127.0.0.1"},
		{name: "ipv6 tcp", id: ProbeIdentity{SentBy: "[2001:db8::1]:5070", BranchPrefix: "z9hG4bKdeadbeefff"},
			addr: netip.MustParseAddrPort("[2001:db8::5]:5080"), transport: TCP,
			wantRURI: "sip:[2001:db8::5]:5080;transport=tcp", wantHost: "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChecker(onePool(t, HashCallID, members(1)), nil, tc.id, nil, nil)
			tg := &healthTarget{addr: tc.addr, transport: tc.transport, cseq: 7}
			const id = 0x0123456789abcdef
			msg := c.appendProbe(nil, tg, id)
			var m parser.Message
			if err := parser.Parse(&m, msg); err != nil {
				t.Fatalf("Parse(%q): %v", msg, err)
			}
			if m.Method() != parser.OPTIONS || string(m.RequestURI()) != tc.wantRURI {
				t.Errorf("request line %s %s, want OPTIONS %s", m.MethodName(), m.RequestURI(), tc.wantRURI)
			}
			v := m.TopVia()
			if string(v.Transport) != "UDP" || string(v.Host) != tc.wantHost || !v.HasRPort {
				t.Errorf("Via %s %s rport %v", v.Transport, v.Host, v.HasRPort)
			}
			if !bytes.HasPrefix(v.Branch, []byte(tc.id.BranchPrefix)) {
				t.Errorf("branch %q lacks prefix %q", v.Branch, tc.id.BranchPrefix)
			}
			if got, ok := c.parseBranch(v.Branch); !ok || got != id {
				t.Errorf("parseBranch(%q) = %x, %v; want %x", v.Branch, got, ok, uint64(id))
			}
			if mf, ok := m.MaxForwards(); !ok || mf != 70 {
				t.Errorf("Max-Forwards %d, %v", mf, ok)
			}
			if n, meth := m.CSeq(); n != 7 || meth != parser.OPTIONS {
				t.Errorf("CSeq %d %v", n, meth)
			}
			if string(m.CallID()) != "0123456789abcdef@siplb" || len(m.FromTag()) != 8 {
				t.Errorf("Call-ID %q From tag %q", m.CallID(), m.FromTag())
			}
			if cl, ok := m.ContentLength(); !ok || cl != 0 {
				t.Errorf("Content-Length %d, %v", cl, ok)
			}
			if u, err := m.ToURI(); err != nil || "sip:"+string(u.Host) == "" {
				t.Errorf("To: %v", err)
			}
		})
	}
}

func TestHealthConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     HealthConfig
		wantErr string // substring; "" for valid
	}{
		{name: "zero is the defaults"},
		{name: "explicit", cfg: HealthConfig{Interval: time.Second, Timeout: 500 * time.Millisecond, Fall: 2, Rise: 1, MaxBackoff: time.Minute, PassiveFailures: 5}},
		{name: "disabled still checked", cfg: HealthConfig{Disabled: true, Fall: -1}, wantErr: "pools[1].health.fall: must not be negative"},
		{name: "timeout not below interval", cfg: HealthConfig{Interval: 2 * time.Second, Timeout: 2 * time.Second}, wantErr: "pools[1].health.timeout: must be less than interval (2s), got 2s"},
		{name: "default timeout above short interval", cfg: HealthConfig{Interval: time.Second}, wantErr: "pools[1].health.timeout"},
		{name: "long timeout, default interval", cfg: HealthConfig{Timeout: 6 * time.Second}, wantErr: "must be less than interval (5s)"},
		{name: "negative interval", cfg: HealthConfig{Interval: -time.Second}, wantErr: "pools[1].health.interval:"},
		{name: "negative rise", cfg: HealthConfig{Rise: -2}, wantErr: "pools[1].health.rise:"},
		{name: "negative passive", cfg: HealthConfig{PassiveFailures: -1}, wantErr: "pools[1].health.passive_failures:"},
		{name: "backoff below interval", cfg: HealthConfig{Interval: 10 * time.Second, MaxBackoff: 5 * time.Second}, wantErr: "pools[1].health.max_backoff: must be at least interval (10s)"},
		{name: "default backoff below long interval", cfg: HealthConfig{Interval: time.Minute}, wantErr: "max_backoff"},
		{name: "down_interval", cfg: HealthConfig{DownInterval: 300 * time.Millisecond}},
		{name: "negative down_interval", cfg: HealthConfig{DownInterval: -time.Second}, wantErr: "pools[1].health.down_interval: must not be negative"},
		{name: "down_interval above max_backoff", cfg: HealthConfig{DownInterval: time.Minute}, wantErr: "pools[1].health.down_interval: must be at most max_backoff (30s), got 1m0s"},
		{name: "reply codes", cfg: HealthConfig{ReplyCodes: []string{"200", "2xx", "404", "4XX", " 6xx", "699"}}},
		{name: "reply code not a status", cfg: HealthConfig{ReplyCodes: []string{"200", "ok"}}, wantErr: `pools[1].health.reply_codes[1]: want a final status (200-699) or a class (2xx-6xx), got "ok"`},
		{name: "reply code provisional", cfg: HealthConfig{ReplyCodes: []string{"2xx", "4xx", "180"}}, wantErr: `pools[1].health.reply_codes[2]:`},
		{name: "reply class 7xx", cfg: HealthConfig{ReplyCodes: []string{"7xx"}}, wantErr: `pools[1].health.reply_codes[0]:`},
		{name: "reply code empty", cfg: HealthConfig{ReplyCodes: []string{""}}, wantErr: `pools[1].health.reply_codes[0]:`},
		{name: "reply code 2x0", cfg: HealthConfig{ReplyCodes: []string{"2x0"}}, wantErr: `pools[1].health.reply_codes[0]:`},
		{name: "reply code 1000", cfg: HealthConfig{ReplyCodes: []string{"1000"}}, wantErr: `pools[1].health.reply_codes[0]:`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("pools[1].health")
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Validate(%+v) = %v, want nil", tc.cfg, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.wantErr)
			}
			// Whatever was configured, the effective values are usable.
			d := tc.cfg.WithDefaults()
			if err := d.Validate("x"); err != nil {
				t.Errorf("WithDefaults() = %+v fails Validate: %v", d, err)
			}
		})
	}
	if d := (HealthConfig{}).WithDefaults(); d.Interval != DefaultHealthInterval || d.Timeout != DefaultHealthTimeout ||
		d.Fall != DefaultHealthFall || d.Rise != DefaultHealthRise || d.MaxBackoff != DefaultHealthMaxBackoff ||
		d.DownInterval != DefaultHealthDownInterval || d.NoPassiveSuccess || len(d.ReplyCodes) != 0 {
		t.Errorf("defaults %+v", d)
	}
	if d := (HealthConfig{Interval: 300 * time.Millisecond, Timeout: 100 * time.Millisecond}).WithDefaults(); d.DownInterval != 300*time.Millisecond {
		t.Errorf("DownInterval with a 300ms interval = %v, want the interval", d.DownInterval)
	}
}

// seconds returns the durations of the given numbers of seconds.
func seconds(xs ...float64) []time.Duration {
	out := make([]time.Duration, len(xs))
	for i, x := range xs {
		out[i] = time.Duration(x * float64(time.Second))
	}
	return out
}

func durationsEqual(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// readyChecker returns a Checker over one pool of two members that has
// resynced with its Balancer, without running it.
func readyChecker(tb testing.TB, cfg HealthConfig) *Checker {
	tb.Helper()
	c := NewChecker(onePool(tb, HashCallID, members(2)), map[string]HealthConfig{"p": cfg}, testIdentity, nil, nil)
	c.mu.Lock()
	c.resync(c.bal.Table(), time.Now())
	c.mu.Unlock()
	return c
}

// inFlight registers a probe of addr as step does and returns its id.
func (c *Checker) inFlight(addr netip.AddrPort) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.targets[addr]
	id := c.nextID
	c.nextID++
	t.pending, t.sentAt, t.deadline = id, time.Now(), time.Now().Add(time.Hour)
	c.pending[id] = t
	return id
}
