package balance

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestHealthClusterSplit: a Checker probes only the backends its owner
// function gives it, tells its marks to onVerdict, takes the others' marks
// through ApplyVerdict, and probes a backend at once when it comes to own
// it.
func TestHealthClusterSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mine, theirs := backendAt(0), backendAt(1)
		bal, err := New([]PoolConfig{{Name: "p", Backends: members(2)}})
		if err != nil {
			t.Fatal(err)
		}
		farm := &fakeFarm{answer: map[netip.AddrPort]answer{mine: {status: 200}, theirs: {status: 200}}, sent: map[netip.AddrPort][]time.Time{}}
		c := NewChecker(bal, map[string]HealthConfig{"p": {Interval: time.Second, Timeout: 300 * time.Millisecond, Fall: 1}}, testIdentity, farm, slog.New(&recorder{}))
		farm.c = c
		var ownsTheirs atomic.Bool
		var mu sync.Mutex
		var verdicts []Verdict
		c.SetCluster(func(a netip.AddrPort) bool { return a == mine || ownsTheirs.Load() }, func(v Verdict) {
			mu.Lock()
			verdicts = append(verdicts, v)
			mu.Unlock()
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		farm.done = ctx.Done()
		start := time.Now()
		go c.Run(ctx)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := len(farm.probeTimes(theirs, start)); n != 0 {
			t.Errorf("%d probes of a backend another member owns, want 0", n)
		}
		if n := len(farm.probeTimes(mine, start)); n < 9 {
			t.Errorf("%d probes of its own backend in 10s at 1s, want 10", n)
		}
		// Its own backend dies: the mark is told.
		farm.set(mine, answer{})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		mu.Lock()
		got := append([]Verdict(nil), verdicts...)
		mu.Unlock()
		if len(got) != 1 || got[0].Addr != mine || got[0].Up || got[0].Reason != "1 probe unanswered" {
			t.Errorf("verdicts = %+v, want one: %v down, 1 probe unanswered", got, mine)
		}
		// The owner of the other says it is down: it is down here too.
		if !c.ApplyVerdict(Verdict{Addr: theirs, Up: false, Reason: "3 probes unanswered"}) {
			t.Error("ApplyVerdict of a change reported no change")
		}
		if b, _ := bal.Table().Lookup(theirs); b.State != Down {
			t.Errorf("after a remote down verdict: %v, want down", b.State)
		}
		for _, h := range c.Status() {
			if h.Addr == theirs && (!h.Remote || h.Up || h.Reason != "3 probes unanswered") {
				t.Errorf("Status of the remote backend = %+v", h)
			}
		}
		// Its owner leaves: this one probes it at once and finds it up.
		ownsTheirs.Store(true)
		c.Reown()
		moved := time.Now()
		synctest.Wait()
		if p := farm.probeTimes(theirs, moved); len(p) != 1 || p[0] != 0 {
			t.Errorf("probes after taking it over at %v, want one at once", p)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if b, _ := bal.Table().Lookup(theirs); b.State != Up {
			t.Errorf("taken-over backend that answers: %v, want up", b.State)
		}
		mu.Lock()
		last := verdicts[len(verdicts)-1]
		mu.Unlock()
		if last.Addr != theirs || !last.Up {
			t.Errorf("last verdict %+v, want %v up", last, theirs)
		}
		if len(c.Status()) != 2 {
			t.Errorf("Status has %d backends", len(c.Status()))
		}
		cancel()
		synctest.Wait()
	})
}
