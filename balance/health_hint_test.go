package balance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// Tests of Checker.Unreachable: a hint probes the backend at once and puts
// it in quick re-probing; only probes mark it down.

// TestHealthHint: a hint at 1.5 s (after the first round, answered at 0)
// probes the backend at once; a dead one is marked down Fall×Timeout after
// the hint with a reason naming it (then re-probed DownInterval after the
// mark and every DownInterval, or every Timeout while that is longer), a
// live one (a forged hint) never.
func TestHealthHint(t *testing.T) {
	const hintAt = 1500 * time.Millisecond
	tests := []struct {
		name      string
		cfg       HealthConfig
		transport Transport
		hint      Hint
		answer    answer // from the hint on
		// wantDown is the time from the hint to the mark (0: never), and
		// wantProbes the probes sent from the hint until 10 s after it.
		wantDown   time.Duration
		wantReason string
		wantProbes []time.Duration
	}{
		{name: "udp dead", hint: HintPortUnreachable, answer: answer{},
			wantDown: 6 * time.Second, wantReason: "3 probes unanswered after ICMP port unreachable",
			wantProbes: seconds(0, 2, 4, 7, 8, 9, 10)},
		{name: "udp host unreachable", hint: HintHostUnreachable, answer: answer{},
			wantDown: 6 * time.Second, wantReason: "3 probes unanswered after ICMP host unreachable",
			wantProbes: seconds(0, 2, 4, 7, 8, 9, 10)},
		{name: "udp alive (forged hint)", hint: HintPortUnreachable, answer: answer{status: 200},
			wantProbes: []time.Duration{0, 5 * time.Second, 10 * time.Second}},
		{name: "udp answers 503 with down_on_503", cfg: HealthConfig{DownOn503: true}, hint: HintPortUnreachable,
			answer: answer{status: 503}, wantDown: 4 * time.Second, wantReason: "3 probes answered 503 after ICMP port unreachable",
			wantProbes: seconds(0, 2, 4, 5, 6, 7, 8, 9, 10)},
		{name: "udp fall 1", cfg: HealthConfig{Interval: time.Second, Timeout: 300 * time.Millisecond, Fall: 1},
			hint: HintPortUnreachable, answer: answer{}, wantDown: 300 * time.Millisecond,
			wantReason: "1 probe unanswered after ICMP port unreachable",
			wantProbes: seconds(0, 1.3, 2.3, 3.3, 4.3, 5.3, 6.3, 7.3, 8.3, 9.3)},
		{name: "tcp refused", transport: TCP, hint: HintConnectRefused, answer: answer{hint: HintConnectRefused},
			wantDown: 4 * time.Second, wantReason: "connect refused (3 probes)",
			wantProbes: seconds(0, 2, 4, 5, 6, 7, 8, 9, 10)},
		{name: "tcp connect timed out", transport: TCP, hint: HintConnectTimeout, answer: answer{hint: HintConnectTimeout},
			wantDown: 4 * time.Second, wantReason: "connect timed out (3 probes)",
			wantProbes: seconds(0, 2, 4, 5, 6, 7, 8, 9, 10)},
		{name: "tls handshake failed", transport: TLS, hint: HintTLSHandshake, answer: answer{hint: HintTLSHandshake},
			wantDown: 4 * time.Second, wantReason: "TLS handshake failed (3 probes)",
			wantProbes: seconds(0, 2, 4, 5, 6, 7, 8, 9, 10)},
		{name: "tls connect failed", transport: TLS, hint: HintConnectFailed, answer: answer{hint: HintConnectFailed},
			wantDown: 4 * time.Second, wantReason: "connect failed (3 probes)",
			wantProbes: seconds(0, 2, 4, 5, 6, 7, 8, 9, 10)},
		{name: "tcp refused once, then accepts", transport: TCP, hint: HintConnectRefused, answer: answer{status: 200},
			wantProbes: []time.Duration{0, 5 * time.Second, 10 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				bcs := members(2)
				bcs[0].Transport, bcs[1].Transport = tc.transport, tc.transport
				h := startChecker(t, []PoolConfig{{Name: "p", Backends: bcs}}, map[string]HealthConfig{"p": tc.cfg})
				time.Sleep(hintAt)
				h.farm.set(addr, tc.answer)
				gen := h.bal.Table().Generation()
				h.c.Unreachable(netip.AddrPortFrom(netip.AddrFrom16(addr.Addr().As16()), addr.Port()), tc.hint) // mapped: as a v6 leg reports it
				if s := h.state(t, addr); s != Up || h.bal.Table().Generation() != gen {
					t.Fatalf("right after the hint: state %v, generation %d (was %d); want up, no new Table", s, h.bal.Table().Generation(), gen)
				}
				time.Sleep(10*time.Second + time.Millisecond)
				synctest.Wait()
				var probes []time.Duration
				for _, at := range h.farm.probeTimes(addr, h.start) {
					if at >= hintAt {
						probes = append(probes, at-hintAt)
					}
				}
				if !durationsEqual(probes, tc.wantProbes) {
					t.Errorf("probes at %v after the hint, want %v", probes, tc.wantProbes)
				}
				ev, down := h.rec.find("backend down", addr)
				switch {
				case tc.wantDown == 0 && down:
					t.Errorf("marked down %v after the hint (%s), want never", ev.at.Sub(h.start)-hintAt, ev.reason)
				case tc.wantDown == 0:
				case !down:
					t.Errorf("never marked down")
				case ev.at.Sub(h.start)-hintAt != tc.wantDown || ev.reason != tc.wantReason:
					t.Errorf("marked down %v after the hint (%q), want %v (%q)", ev.at.Sub(h.start)-hintAt, ev.reason, tc.wantDown, tc.wantReason)
				}
				if s := h.state(t, backendAt(1)); s != Up {
					t.Errorf("the other backend is %v", s)
				}
				// A stream probe's refused connect is a hint too.
				if st := h.c.HintStats(); st.Probed != 1 || st.Ignored != 0 || st.Limited != 0 || tc.transport == UDP && st.Received != 1 {
					t.Errorf("HintStats %+v, want 1 probed", st)
				}
			})
		})
	}
}

// TestHealthHintStartup: siplb starts before its backend; the first probe
// fails (unanswered, or its connect refused) and the data path draws ICMP
// port unreachable or refused connects every 100 ms. A backend that answers
// within (Fall-1)×Timeout is never marked down; one that never does is down
// Fall×Timeout after the start (UDP: the third probe's timeout) or
// (Fall-1)×Timeout (TCP: the third probe is refused at once), since hints do
// not hasten quick re-probing.
func TestHealthHintStartup(t *testing.T) {
	tests := []struct {
		name      string
		transport Transport
		upAfter   time.Duration // 0: never
		wantDown  time.Duration // 0: never
	}{
		{name: "udp up after 300ms", upAfter: 300 * time.Millisecond},
		{name: "udp up after 3.9s", upAfter: 3900 * time.Millisecond},
		{name: "udp never up", wantDown: 6 * time.Second},
		{name: "tcp up after 300ms", transport: TCP, upAfter: 300 * time.Millisecond},
		{name: "tcp up after 3.9s", transport: TCP, upAfter: 3900 * time.Millisecond},
		{name: "tcp never up", transport: TCP, wantDown: 4 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				hint, first := HintPortUnreachable, answer{}
				if tc.transport != UDP {
					hint, first = HintConnectRefused, answer{hint: HintConnectRefused}
				}
				h := startCheckerWith(t, []PoolConfig{{Name: "p", Backends: []BackendConfig{{Addr: addr, Transport: tc.transport}}}}, nil, first)
				for i := 0; i < 60; i++ {
					if tc.upAfter != 0 && time.Since(h.start) >= tc.upAfter {
						h.farm.set(addr, answer{status: 200})
					} else {
						h.c.Unreachable(addr, hint)
					}
					time.Sleep(100 * time.Millisecond)
				}
				synctest.Wait()
				ev, down := h.rec.find("backend down", addr)
				switch {
				case tc.wantDown == 0 && down:
					t.Errorf("marked down at %v (%s); want never (probes at %v)", ev.at.Sub(h.start), ev.reason, h.farm.probeTimes(addr, h.start))
				case tc.wantDown == 0 && h.state(t, addr) != Up:
					t.Errorf("state %v, want up", h.state(t, addr))
				case tc.wantDown != 0 && (!down || ev.at.Sub(h.start) != tc.wantDown):
					t.Errorf("down %v at %v (%s), want at %v (probes at %v)", down, ev.at.Sub(h.start), ev.reason, tc.wantDown, h.farm.probeTimes(addr, h.start))
				}
			})
		})
	}
}

// TestHealthHintFlood: a hint every millisecond for 10 s, at a backend that
// answers (forged ICMP with its address), costs at most one extra probe per
// gap (the larger of MinHintProbeGap and the Timeout) and never marks it
// down; at a dead one it changes nothing once the backend is down.
func TestHealthHintFlood(t *testing.T) {
	tests := []struct {
		name      string
		cfg       HealthConfig
		dead      bool
		maxProbes int
	}{
		{name: "timeout 2s", maxProbes: 1 + 10/2 + 1},
		{name: "timeout 100ms", cfg: HealthConfig{Interval: time.Second, Timeout: 100 * time.Millisecond},
			maxProbes: 1 + 10*2 + 1},
		// Dead: the hinted probe and two quick re-probes (down at 6 s),
		// then re-probes DownInterval apart: at 7, 8 and 9 s.
		{name: "dead", dead: true, maxProbes: 1 + 3 + 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				addr := backendAt(0)
				h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, map[string]HealthConfig{"p": tc.cfg})
				if tc.dead {
					h.farm.set(addr, answer{})
				}
				const n = 10000
				for range n {
					time.Sleep(time.Millisecond)
					h.c.Unreachable(addr, HintPortUnreachable)
				}
				synctest.Wait()
				probes := h.farm.probeTimes(addr, h.start)
				if len(probes) > tc.maxProbes {
					t.Errorf("%d probes in 10 s of hints, want at most %d: %v", len(probes), tc.maxProbes, probes)
				}
				_, down := h.rec.find("backend down", addr)
				if down != tc.dead {
					t.Errorf("down %v, want %v", down, tc.dead)
				}
				st := h.c.HintStats()
				if st.Received != n || st.Probed+st.Limited > n || int(st.Probed) >= len(probes) {
					t.Errorf("HintStats %+v for %d hints and %d probes", st, n, len(probes))
				}
				t.Logf("%d hints: %d probes %v; %+v", n, len(probes), probes, st)
			})
		})
	}
}

// TestHealthHintReprobeEnds: an answered probe ends quick re-probing, so a
// later death without a hint is found by the usual rule and its reason
// names no hint.
func TestHealthHintReprobeEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		addr := backendAt(0)
		h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, nil)
		time.Sleep(1500 * time.Millisecond)
		h.c.Unreachable(addr, HintPortUnreachable) // probed at 1.5 s, answered
		time.Sleep(time.Second)
		h.farm.set(addr, answer{}) // dies at 2.5 s; probes at 6.5, 11.5, 16.5
		time.Sleep(time.Minute)
		ev, down := h.rec.find("backend down", addr)
		if !down || ev.at.Sub(h.start) != 18500*time.Millisecond || ev.reason != "3 probes unanswered" {
			t.Errorf("down %v at %v (%q), want at 18.5s (%q)", down, ev.at.Sub(h.start), ev.reason, "3 probes unanswered")
		}
	})
}

// TestHealthHintIgnored: hints for addresses that nothing would probe back
// up (a Disabled member, a pool whose probing is Disabled, an address in no
// pool) are ignored and counted; so are runs of 5xx from them.
func TestHealthHintIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bcs := members(3)
		bcs[1].State = Disabled
		h := startChecker(t, []PoolConfig{
			{Name: "p", Backends: bcs[:2]},
			{Name: "noprobe", Backends: bcs[2:]},
		}, map[string]HealthConfig{"noprobe": {Disabled: true}})
		gen := h.bal.Table().Generation()
		for _, addr := range []netip.AddrPort{backendAt(1), backendAt(2), backendAt(9)} {
			h.c.Unreachable(addr, HintPortUnreachable)
			h.c.Observe(addr, 500)
		}
		time.Sleep(time.Second)
		if got := h.bal.Table().Generation(); got != gen {
			t.Errorf("generation %d -> %d: an unprobed address was marked", gen, got)
		}
		if n := len(h.farm.probeTimes(backendAt(1), h.start)) + len(h.farm.probeTimes(backendAt(2), h.start)); n != 0 {
			t.Errorf("%d probes to a Disabled member or a pool with probing disabled", n)
		}
		if st := h.c.HintStats(); st != (HintStats{Received: 3, Ignored: 3}) {
			t.Errorf("HintStats %+v, want 3 received, 3 ignored", st)
		}
	})
}

// TestHealthHintWhileDown: a hint for a backend already down (its probes
// draw ICMP too) neither probes it nor changes its re-probes, which come as
// they do without hints (TestHealthDownBackoff), and it comes back after
// Rise answers.
func TestHealthHintWhileDown(t *testing.T) {
	reprobes := func(t *testing.T, hints bool) []time.Duration {
		var gaps []time.Duration
		synctest.Test(t, func(t *testing.T) {
			addr := backendAt(0)
			h := startChecker(t, []PoolConfig{{Name: "p", Backends: members(1)}}, nil)
			h.farm.set(addr, answer{})
			time.Sleep(17 * time.Second) // down at 17 s by the usual rule
			synctest.Wait()
			if h.state(t, addr) != Down {
				t.Fatal("not down")
			}
			marked := len(h.farm.probeTimes(addr, h.start))
			for range 100 {
				if hints {
					h.c.Unreachable(addr, HintPortUnreachable)
				}
				time.Sleep(time.Second)
			}
			synctest.Wait()
			all := h.farm.probeTimes(addr, h.start)
			for i := marked; i < len(all); i++ {
				gaps = append(gaps, all[i]-all[i-1])
			}
			h.farm.set(addr, answer{status: 200})
			time.Sleep(time.Minute)
			if ev, ok := h.rec.find("backend up", addr); !ok || ev.reason != "2 probes answered" || h.state(t, addr) != Up {
				t.Errorf("up %v (%q), state %v; want up after 2 probes answered", ok, ev.reason, h.state(t, addr))
			}
			if st := h.c.HintStats(); st.Probed != 0 {
				t.Errorf("HintStats %+v: a hint probed a down backend", st)
			}
		})
		return gaps
	}
	with, without := reprobes(t, true), reprobes(t, false)
	if !durationsEqual(with, without) || len(with) < 10 {
		t.Errorf("re-probe gaps with hints %v, without %v; want the same", with, without)
	}
}

func TestConnectHint(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want Hint
	}{
		{name: "refused", err: refused, want: HintConnectRefused},
		{name: "refused, wrapped", err: fmt.Errorf("tls dial: %w", refused), want: HintConnectRefused},
		{name: "connect timeout", err: &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, want: HintConnectTimeout},
		{name: "connect unreachable", err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, want: HintConnectFailed},
		{name: "bare unreachable", err: syscall.EHOSTUNREACH, want: HintConnectFailed},
		{name: "handshake text", err: errors.New("tls: handshake failure"), want: HintTLSHandshake},
		{name: "handshake timeout", err: fmt.Errorf("tls handshake with x: %w", context.DeadlineExceeded), want: HintTLSHandshake},
		{name: "alert received", err: &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, want: HintTLSHandshake},
		{name: "reset in handshake", err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, want: HintTLSHandshake},
		{name: "other", err: errors.New("gnet: engine is shutting down"), want: HintConnectFailed},
	}
	for _, tc := range tests {
		if got := ConnectHint(tc.err); got != tc.want {
			t.Errorf("%s: ConnectHint(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	for h := Hint(0); h <= numHints; h++ {
		if s := h.String(); s == "" || (h >= HintPortUnreachable && h < numHints) == (s == "unknown hint") {
			t.Errorf("Hint(%d).String() = %q", h, s)
		}
		if h.Connect() != (h >= HintConnectRefused && h < numHints) {
			t.Errorf("Hint(%d) (%v).Connect() = %v", h, h, h.Connect())
		}
	}
}
