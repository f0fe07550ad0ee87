package balance

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Tests of what keeps a backend in rotation or brings it back: it starts
// up and is probed at once, a down one is re-probed fast and returns soon,
// ReplyCodes choose which answers mean alive, and responses to traffic
// (Observe) keep up a backend that ignores OPTIONS.

// TestHealthStartsInRotation: before any probe is answered, every member is
// in rotation (Pick returns it) and has been probed at once; a silent one
// leaves only when Fall probes fail: (Fall-1)×Interval+Timeout after the
// start, or Fall×Timeout with an ICMP hint.
func TestHealthStartsInRotation(t *testing.T) {
	tests := []struct {
		name     string
		hint     Hint // from the data path right after the first probe; 0: none
		wantDown time.Duration
	}{
		{name: "silent", wantDown: 12 * time.Second},
		{name: "ICMP port unreachable", hint: HintPortUnreachable, wantDown: 6 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				h := startCheckerWith(t, []PoolConfig{{Name: "p", Backends: members(1)}}, nil, answer{})
				if tc.hint != 0 {
					h.c.Unreachable(addr, tc.hint)
				}
				if got := h.farm.probeTimes(addr, h.start); !durationsEqual(got, seconds(0)) {
					t.Errorf("probed at %v, want at once", got)
				}
				p := h.bal.Table().Pool(0)
				if b, ok := p.Pick([]byte("call-1@x")); !ok || b.Addr != addr {
					t.Errorf("Pick before any answer = %v, %v; want %v", b, ok, addr)
				}
				time.Sleep(tc.wantDown - time.Millisecond)
				if s := h.state(t, addr); s != Up {
					t.Fatalf("state %v at %v, want up until %v", s, time.Since(h.start), tc.wantDown)
				}
				time.Sleep(time.Millisecond)
				synctest.Wait()
				if s := h.state(t, addr); s != Down {
					t.Errorf("state %v at %v, want down", s, time.Since(h.start))
				}
			})
		})
	}
}

// TestHealthDownBackoff: a dead backend is re-probed DownInterval after it
// is marked down, every DownInterval (or Timeout, while that is longer)
// while its outage is under 10×DownInterval, then at a tenth of the outage,
// up to MaxBackoff.
func TestHealthDownBackoff(t *testing.T) {
	tests := []struct {
		name string
		cfg  HealthConfig
	}{
		{name: "defaults"},
		{name: "timeout below down_interval", cfg: HealthConfig{Timeout: 500 * time.Millisecond}},
		{name: "down_interval 200ms, max_backoff 10s", cfg: HealthConfig{Interval: time.Second, Timeout: 100 * time.Millisecond,
			DownInterval: 200 * time.Millisecond, MaxBackoff: 10 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := tc.cfg.WithDefaults()
				addr := backendAt(0)
				h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, map[string]HealthConfig{"p": tc.cfg})
				h.farm.set(addr, answer{})
				time.Sleep(time.Hour)
				ev, ok := h.rec.find("backend down", addr)
				if !ok {
					t.Fatal("never marked down")
				}
				downAt := ev.at.Sub(h.start)
				var re []time.Duration // re-probes, from the mark
				for _, at := range h.farm.probeTimes(addr, h.start) {
					if at > downAt {
						re = append(re, at-downAt)
					}
				}
				if len(re) < 2 || re[0] != cfg.DownInterval {
					t.Fatalf("re-probes at %v after the mark, want the first DownInterval (%v) after", re, cfg.DownInterval)
				}
				step := max(cfg.DownInterval, cfg.Timeout)
				for i := 1; i < len(re); i++ {
					gap, outage := re[i]-re[i-1], re[i-1]
					lo := max(cfg.DownInterval, min(cfg.MaxBackoff, outage/downBackoffShare))
					hi := max(step, min(cfg.MaxBackoff, (outage+step)/downBackoffShare))
					if gap < lo || gap > hi {
						t.Errorf("gap %v after the re-probe at %v, want within [%v, %v]", gap, outage, lo, hi)
					}
				}
				if last := re[len(re)-1] - re[len(re)-2]; last != cfg.MaxBackoff {
					t.Errorf("after an hour the gap is %v, want MaxBackoff %v", last, cfg.MaxBackoff)
				}
				var first10s int
				for _, at := range re {
					if at <= 10*cfg.DownInterval {
						first10s++
					}
				}
				t.Logf("%d re-probes in an hour; %d in the first %v; gaps from %v to %v", len(re), first10s, 10*cfg.DownInterval, re[1]-re[0], cfg.MaxBackoff)
			})
		})
	}
}

// TestHealthComesBack: a backend that comes back D after it was marked down
// is up within max(DownInterval, D/10) + (Rise-1)×DownInterval of its
// return: about a second for a short outage, such as a backend that starts
// after siplb.
func TestHealthComesBack(t *testing.T) {
	for _, outage := range []time.Duration{500 * time.Millisecond, 3 * time.Second, 9500 * time.Millisecond,
		30 * time.Second, 2 * time.Minute, 10 * time.Minute} {
		for _, rise := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("outage %v rise %d", outage, rise), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					addr := backendAt(0)
					h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, map[string]HealthConfig{"p": {Rise: rise}})
					h.farm.set(addr, answer{})
					time.Sleep(17 * time.Second)
					synctest.Wait()
					down, ok := h.rec.find("backend down", addr)
					if !ok {
						t.Fatal("never marked down")
					}
					time.Sleep(time.Until(down.at.Add(outage)))
					h.farm.set(addr, answer{status: 200})
					back := time.Now()
					time.Sleep(time.Minute)
					up, ok := h.rec.find("backend up", addr)
					if !ok {
						t.Fatal("never marked up")
					}
					// The gap follows the outage at the last failed
					// probe's deadline, up to a Timeout past the return.
					limit := min(DefaultHealthMaxBackoff, max(DefaultHealthDownInterval, (outage+DefaultHealthTimeout)/downBackoffShare)) +
						time.Duration(rise-1)*DefaultHealthDownInterval
					if got := up.at.Sub(back); got > limit {
						t.Errorf("up %v after it came back, want within %v", got, limit)
					} else {
						t.Logf("up %v after it came back (bound %v)", got, limit)
					}
				})
			})
		}
	}
}

// TestHealthReplyCodes: with ReplyCodes only the listed codes and classes
// mean alive; any other final reply is a failed probe with a reason naming
// it. Without them any final reply means alive, 503 too unless DownOn503,
// which wins over a listed 503.
func TestHealthReplyCodes(t *testing.T) {
	tests := []struct {
		name       string
		cfg        HealthConfig
		statuses   []int // the replies to successive probes, from the second on (the last repeats)
		wantReason string
	}{
		{name: "default: 404 alive", statuses: []int{404}},
		{name: "default: 603 alive", statuses: []int{603}},
		{name: "default: 503 alive", statuses: []int{503}},
		{name: "default, down_on_503", cfg: HealthConfig{DownOn503: true}, statuses: []int{503}, wantReason: "3 probes answered 503"},
		{name: "2xx only: 200", cfg: HealthConfig{ReplyCodes: []string{"2xx"}}, statuses: []int{200}},
		{name: "2xx only: 202", cfg: HealthConfig{ReplyCodes: []string{"2xx"}}, statuses: []int{202}},
		{name: "2xx only: 404", cfg: HealthConfig{ReplyCodes: []string{"2xx"}}, statuses: []int{404},
			wantReason: "3 probes answered 404, not in reply_codes"},
		{name: "2xx only: mixed", cfg: HealthConfig{ReplyCodes: []string{"2xx"}}, statuses: []int{404, 480, 500},
			wantReason: "3 probes answered outside reply_codes (last 500)"},
		{name: "200 and 4xx: 404", cfg: HealthConfig{ReplyCodes: []string{"200", "4xx"}}, statuses: []int{404}},
		{name: "200 and 4xx: 483", cfg: HealthConfig{ReplyCodes: []string{"200", "4xx"}}, statuses: []int{483}},
		{name: "200 and 4xx: 202", cfg: HealthConfig{ReplyCodes: []string{"200", "4xx"}}, statuses: []int{202},
			wantReason: "3 probes answered 202, not in reply_codes"},
		{name: "listed 503 with down_on_503", cfg: HealthConfig{ReplyCodes: []string{"2xx", "5xx"}, DownOn503: true}, statuses: []int{503},
			wantReason: "3 probes answered 503"},
		{name: "listed 503", cfg: HealthConfig{ReplyCodes: []string{"503"}}, statuses: []int{503}},
		{name: "mixed with a timeout", cfg: HealthConfig{ReplyCodes: []string{"200"}}, statuses: []int{404, 0, 404},
			wantReason: "3 probes failed: 1 unanswered, 2 answered 404, not in reply_codes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, map[string]HealthConfig{"p": tc.cfg})
				time.Sleep(2500 * time.Millisecond) // between probes, which come at 5, 10, 15 s
				for _, st := range tc.statuses {
					h.farm.set(addr, answer{status: st})
					time.Sleep(5 * time.Second)
				}
				time.Sleep(30 * time.Second)
				synctest.Wait()
				ev, down := h.rec.find("backend down", addr)
				switch {
				case tc.wantReason == "" && down:
					t.Errorf("marked down (%q), want up", ev.reason)
				case tc.wantReason != "" && (!down || ev.reason != tc.wantReason):
					t.Errorf("down %v (%q), want down (%q)", down, ev.reason, tc.wantReason)
				}
			})
		})
	}
}

// TestHealthFailing: Status says what the current run of failed probes is
// before it marks the backend down.
func TestHealthFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		addr := backendAt(0)
		bcs := members(1)
		bcs[0].Transport = TCP
		h := startChecker(t, []PoolConfig{{Name: "p", Backends: bcs}}, nil)
		h.farm.set(addr, answer{})
		time.Sleep(7 * time.Second) // the probe of 5 s timed out
		h.farm.set(addr, answer{hint: HintConnectRefused})
		time.Sleep(4 * time.Second) // the probe of 10 s refused; the next is due at 12 s
		synctest.Wait()
		st := h.c.Status()
		if len(st) != 1 || st[0].Failing != "2 probes failed: 1 unanswered, 1 connect refused" || !st[0].Up || st[0].Failures != 2 {
			t.Errorf("Status %+v, want up, 2 failures, failing %q", st, "2 probes failed: 1 unanswered, 1 connect refused")
		}
		h.farm.set(addr, answer{status: 200})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st := h.c.Status(); st[0].Failing != "" || st[0].Failures != 0 {
			t.Errorf("after an answer: Status %+v, want no failing", st)
		}
	})
}

// TestHealthPassiveSuccess: a backend that ignores OPTIONS but answers
// traffic stays up as long as it answers something within every run of Fall
// probes; only unanswered probes are excused; 5xx are no sign of life; a
// down backend is not made up by traffic; and a backend that answers
// probes is marked down as fast with traffic as without when it dies.
func TestHealthPassiveSuccess(t *testing.T) {
	tests := []struct {
		name      string
		cfg       HealthConfig
		transport Transport
		probes    answer // how probes are treated, from the start
		// traffic is the status of the responses to traffic the backend
		// sends every every, until trafficFor; 0: none.
		traffic    int
		every      time.Duration
		trafficFor time.Duration
		dieAt      time.Duration // the backend stops answering anything then (0: never)
		wantDown   time.Duration // from the start; 0: never within 2 minutes
		wantReason string
	}{
		{name: "deaf, calls every 100ms", traffic: 200, every: 100 * time.Millisecond, trafficFor: 2 * time.Minute},
		{name: "deaf, a call every 10s", traffic: 200, every: 10 * time.Second, trafficFor: 2 * time.Minute},
		{name: "deaf, 486 busy counts", traffic: 486, every: time.Second, trafficFor: 2 * time.Minute},
		{name: "deaf, 603 decline counts", traffic: 603, every: time.Second, trafficFor: 2 * time.Minute},
		// Traffic until 29 s: the run of probes from 30 s (the first with no
		// response after it was sent) fails at 30+5+5+2.
		{name: "deaf, traffic stops", traffic: 200, every: time.Second, trafficFor: 30 * time.Second,
			wantDown: 42 * time.Second, wantReason: "3 probes unanswered"},
		{name: "deaf, 5xx is no sign of life", traffic: 500, every: 100 * time.Millisecond, trafficFor: 2 * time.Minute,
			wantDown: 12 * time.Second, wantReason: "3 probes unanswered"},
		{name: "deaf, passive success off", cfg: HealthConfig{NoPassiveSuccess: true}, traffic: 200, every: 100 * time.Millisecond,
			trafficFor: 2 * time.Minute, wantDown: 12 * time.Second, wantReason: "3 probes unanswered"},
		{name: "deaf, no traffic", wantDown: 12 * time.Second, wantReason: "3 probes unanswered"},
		{name: "refused connects are not excused", transport: TCP, probes: answer{hint: HintConnectRefused}, traffic: 200,
			every: 100 * time.Millisecond, trafficFor: 2 * time.Minute, wantDown: 4 * time.Second, wantReason: "connect refused (3 probes)"},
		{name: "bad replies are not excused", cfg: HealthConfig{ReplyCodes: []string{"200"}}, probes: answer{status: 404},
			traffic: 200, every: 100 * time.Millisecond, trafficFor: 2 * time.Minute,
			wantDown: 10 * time.Second, wantReason: "3 probes answered 404, not in reply_codes"},
		// Dies at 21 s, between the probes of 20 and 25 s: down when the
		// probe of 35 s times out, as without traffic.
		{name: "answers probes, dies under traffic", probes: answer{status: 200}, traffic: 200, every: 10 * time.Millisecond,
			trafficFor: 2 * time.Minute, dieAt: 21 * time.Second, wantDown: 37 * time.Second, wantReason: "3 probes unanswered"},
		{name: "answers probes, dies without traffic", probes: answer{status: 200}, dieAt: 21 * time.Second,
			wantDown: 37 * time.Second, wantReason: "3 probes unanswered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				bcs := members(1)
				bcs[0].Transport = tc.transport
				h := startCheckerWith(t, []PoolConfig{{Name: "p", Backends: bcs}}, map[string]HealthConfig{"p": tc.cfg}, tc.probes)
				if tc.traffic != 0 {
					go func() {
						for time.Since(h.start) < tc.trafficFor && (tc.dieAt == 0 || time.Since(h.start) < tc.dieAt) {
							h.c.Observe(addr, tc.traffic)
							time.Sleep(tc.every)
						}
					}()
				}
				if tc.dieAt != 0 {
					time.Sleep(tc.dieAt)
					h.farm.set(addr, answer{})
				}
				time.Sleep(2*time.Minute - time.Since(h.start))
				synctest.Wait()
				ev, down := h.rec.find("backend down", addr)
				switch {
				case tc.wantDown == 0 && down:
					t.Errorf("marked down at %v (%q), want never; probes at %v", ev.at.Sub(h.start), ev.reason, h.farm.probeTimes(addr, h.start))
				case tc.wantDown != 0 && (!down || ev.at.Sub(h.start) != tc.wantDown || ev.reason != tc.wantReason):
					t.Errorf("down %v at %v (%q), want at %v (%q)", down, ev.at.Sub(h.start), ev.reason, tc.wantDown, tc.wantReason)
				}
				st := h.c.Status()[0]
				if tc.wantDown == 0 {
					kept, _ := h.rec.find("backend kept up by traffic", addr)
					if tc.probes.status == 0 && (st.Excused < 10 || kept.at.IsZero()) {
						t.Errorf("Status %+v, log %+v: want many probes excused, and it said once", st, kept)
					}
					t.Logf("up after 2 minutes, %d probes excused", st.Excused)
				}
			})
		})
	}
}

// TestHealthPassiveSuccessDown: responses to traffic that arrive while a
// backend is down (transactions it had before) neither make it up nor
// excuse its re-probes.
func TestHealthPassiveSuccessDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		addr := backendAt(0)
		h := startCheckerWith(t, []PoolConfig{{Name: "p", Backends: members(1)}},
			map[string]HealthConfig{"p": {PassiveFailures: 3}}, answer{})
		for range 3 {
			h.c.Observe(addr, 500)
		}
		if s := h.state(t, addr); s != Down {
			t.Fatalf("state %v after 3 5xx, want down", s)
		}
		for range 600 {
			h.c.Observe(addr, 200)
			time.Sleep(100 * time.Millisecond)
		}
		if s := h.state(t, addr); s != Down {
			t.Errorf("state %v, want still down", s)
		}
		if _, up := h.rec.find("backend up", addr); up {
			t.Error("marked up by traffic")
		}
		ev, _ := h.rec.find("backend down", addr)
		if ev.reason != "3 consecutive 5xx responses" {
			t.Errorf("reason %q", ev.reason)
		}
		// Its first re-probe came an Interval after the mark.
		if probes := h.farm.probeTimes(addr, h.start); len(probes) < 2 || probes[1] != DefaultHealthInterval {
			t.Errorf("probes at %v, want the first re-probe at %v", probes, DefaultHealthInterval)
		}
		if st := h.c.Status()[0]; st.Excused != 0 || !strings.Contains(st.Failing, "unanswered") {
			t.Errorf("Status %+v: want no probe excused", st)
		}
	})
}
