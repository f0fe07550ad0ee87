package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
)

// End-to-end tests of the health checks with real processes: siplb built
// and run as a process, Debian's sipp as the backends and the load. What
// they measure:
//
//   - siplb started 0.3 s before its backends serves calls within 1.5 s of
//     its start, with the default health settings, whether the backends
//     answer OPTIONS (sipp -aa) or not (sipp's uas without -aa);
//   - a sipp uas without -aa, which ignores OPTIONS, keeps taking calls
//     through siplb: with interval 200ms, timeout 100ms, fall 3 a run of
//     probes that would mark it down lasts 0.5 s, and the test runs 6 s of
//     calls, 30 probe rounds. The defaults (interval 5s, fall 3) mark a
//     silent backend down 12 s after its first unanswered probe, and 60 s
//     are 12 probe rounds: the 30 rounds here are 2.5 times the "60 s" of
//     the defaults, in 6 s. `go test -tags long` also runs the real 60 s with
//     the default settings (health_long_test.go).

// TestHealthConfigKeys: the health keys decode (reply_codes from YAML
// integers and strings), default as documented and reach balance's
// HealthConfig; bad values name their key, index and line.
func TestHealthConfigKeys(t *testing.T) {
	const head = "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n"
	tests := []struct {
		name    string
		health  string // the pool's health mapping, indented by 6
		want    balance.HealthConfig
		wantErr string
	}{
		{name: "defaults", want: balance.HealthConfig{}},
		{name: "all keys", health: "      reply_codes: [200, \"2xx\", 404, 4XX]\n      down_interval: 250ms\n" +
			"      max_backoff: 10s\n      passive_success: false\n      passive_failures: 5\n      down_on_503: true\n",
			want: balance.HealthConfig{ReplyCodes: []string{"200", "2xx", "404", "4XX"}, DownInterval: 250 * time.Millisecond,
				MaxBackoff: 10 * time.Second, NoPassiveSuccess: true, PassiveFailures: 5, DownOn503: true}},
		{name: "passive success on", health: "      passive_success: true\n", want: balance.HealthConfig{}},
		{name: "bad reply code", health: "      reply_codes:\n        - 200\n        - 1xx\n",
			wantErr: `line 10: pools[0].health.reply_codes[1]: want a final status (200-699) or a class (2xx-6xx), got "1xx"`},
		{name: "negative down_interval", health: "      down_interval: -1s\n", wantErr: "line 8: pools[0].health.down_interval: must not be negative"},
		{name: "down_interval above max_backoff", health: "      down_interval: 1m\n",
			wantErr: "line 8: pools[0].health.down_interval: must be at most max_backoff (30s), got 1m0s"},
		{name: "passive_success not a bool", health: "      passive_success: often\n", wantErr: "line 8:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := head
			if tc.health != "" {
				in += "    health:\n" + tc.health
			}
			cfg, err := parseConfig([]byte(in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("parseConfig: %v, want an error containing %q\n%s", err, tc.wantErr, in)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v\n%s", err, in)
			}
			got := cfg.health()["a"]
			if !slices.Equal(got.ReplyCodes, tc.want.ReplyCodes) || got.DownInterval != tc.want.DownInterval ||
				got.MaxBackoff != tc.want.MaxBackoff || got.NoPassiveSuccess != tc.want.NoPassiveSuccess ||
				got.PassiveFailures != tc.want.PassiveFailures || got.DownOn503 != tc.want.DownOn503 {
				t.Errorf("health() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// sippPath returns the sipp binary; `make test` installs it, so the tests
// never skip for want of it.
func sippPath(t *testing.T) string {
	t.Helper()
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp not found: run `make test` (it installs Debian's sip-tester) or apt-get install sip-tester")
	}
	return sipp
}

// writeConfig writes a siplb configuration with one UDP listener at lbPort
// and one pool of UDP backends on ports, with the given health mapping
// (flow style; "" for the defaults), and returns its path.
func writeConfig(t *testing.T, lbPort int, health string, ports ...int) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "listen:\n  - address: udp://127.0.0.1:%d\npools:\n  - name: farm\n", lbPort)
	if health != "" {
		fmt.Fprintf(&b, "    health: %s\n", health)
	}
	b.WriteString("    backends:\n")
	for _, p := range ports {
		fmt.Fprintf(&b, "      - address: udp://127.0.0.1:%d\n", p)
	}
	b.WriteString("engine:\n  loops: 2\nlog:\n  level: info\n")
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startUAS starts a sipp uas on 127.0.0.1:port, answering OPTIONS (-aa) or
// not (sipp's own uas scenario, which ignores them), for at most limit.
func startUAS(t *testing.T, sipp string, port int, answerOptions bool, limit time.Duration, out *syncBuffer) {
	t.Helper()
	args := []string{"-sn", "uas", "-i", "127.0.0.1", "-p", fmt.Sprint(port), "-nostdin", "-timeout", sippDuration(limit)}
	if answerOptions {
		args = append(args, "-aa")
	}
	startProc(t, out, sipp, args...)
}

// TestHealthLateBackends: siplb starts 0.3 s before its two backends, with
// the default health settings; a UDP client calls from the start,
// retransmitting every 100 ms. The first probes and calls draw ICMP port
// unreachable, but the backends are in rotation from the start, so the
// first call is served as soon as a backend listens, well within 1.5 s of
// siplb's start; and no backend is ever marked down, also when it ignores
// OPTIONS (then it is kept up by its answers to the calls: without them it
// would be down 6 s after the start, fall × timeout after the ICMP hint).
func TestHealthLateBackends(t *testing.T) {
	sipp := sippPath(t)
	bin := buildSiplb(t)
	const late = 300 * time.Millisecond
	const runFor = 8 * time.Second // beyond the 6 s at which a silent backend would fall
	for _, tc := range []struct {
		name          string
		answerOptions bool
	}{
		{name: "backends answer OPTIONS", answerOptions: true},
		{name: "backends ignore OPTIONS", answerOptions: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uasPorts := []int{freeUDPPort(t), freeUDPPort(t)}
			lbPort := freeUDPPort(t)
			cfg := writeConfig(t, lbPort, "", uasPorts...)
			var lbOut, uasOut syncBuffer
			start := time.Now()
			startProc(t, &lbOut, bin, "--config", cfg)

			type result struct {
				first         time.Duration // since start; 0: none served
				calls, failed int           // after the first served
				errs          []string
				servingAfter  time.Duration
				pingedServing bool
			}
			res := make(chan result, 1)
			lb := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", lbPort))
			c := newClient(t, lb)
			go func() {
				var r result
				for i := 0; time.Since(start) < 5*time.Second; i++ {
					if c.ping(fmt.Sprintf("up-%d", i)) == nil {
						r.pingedServing, r.servingAfter = true, time.Since(start)
						break
					}
				}
				for i := 0; r.pingedServing && time.Since(start) < runFor; i++ {
					// Every 100 ms until a call is served (how soon that
					// is, is the point); then T1 (RFC 3261's 500 ms): on a
					// loaded machine an INVITE sent again before its 180
					// arrived makes sipp's uas abort the call, which has
					// its 200 already (seen as a lost BYE).
					rt := retry{tries: 10, wait: 100 * time.Millisecond}
					if r.first != 0 {
						rt = retry{tries: 10, wait: 500 * time.Millisecond}
					}
					err := sippCall(c, fmt.Sprintf("late-%d", i), rt)
					switch {
					case err == nil && r.first == 0:
						r.first = time.Since(start)
					case r.first == 0:
						if len(r.errs) < 5 {
							r.errs = append(r.errs, err.Error())
						}
					case err != nil:
						r.failed++
						if len(r.errs) < 5 {
							r.errs = append(r.errs, err.Error())
						}
						r.calls++
					default:
						r.calls++
					}
					time.Sleep(10 * time.Millisecond) // about 100 calls a second, on a shared machine
				}
				res <- r
			}()
			time.Sleep(time.Until(start.Add(late)))
			for _, p := range uasPorts {
				startUAS(t, sipp, p, tc.answerOptions, 30*time.Second, &uasOut)
			}
			r := <-res
			switch {
			case !r.pingedServing:
				t.Fatalf("siplb did not answer its own OPTIONS within 5s\n%s", lbOut.String())
			case r.first == 0:
				t.Fatalf("no call served within %v of siplb's start (%s)\nsiplb:\n%s\nsipp:\n%s", runFor, strings.Join(r.errs, "; "), lbOut.String(), tail([]byte(uasOut.String()), 2000))
			case r.first > 1500*time.Millisecond:
				t.Errorf("first call served %v after siplb's start (backends %v late), want within 1.5s", r.first.Round(time.Millisecond), late)
			}
			if r.failed > 0 || r.calls < 10 {
				t.Errorf("after the first call: %d calls, %d failed (%s)\nsiplb:\n%s\nsipp:\n%s", r.calls, r.failed, strings.Join(r.errs, "; "),
					tail([]byte(lbOut.String()), 3000), tail([]byte(uasOut.String()), 3000))
			}
			logs := lbOut.String()
			if n := strings.Count(logs, "backend down"); n > 0 {
				t.Errorf("siplb marked a backend down %d times:\n%s", n, logs)
			}
			// Backends that answer OPTIONS may be kept up by traffic too: the
			// probes sent before they started went unanswered.
			if !tc.answerOptions && !strings.Contains(logs, "backend kept up by traffic") {
				t.Errorf("siplb did not log that traffic kept a backend up:\n%s", logs)
			}
			t.Logf("siplb serving %v after its start; backends started %v after it; first call served %v after siplb's start; then %d calls in %v, none failed",
				r.servingAfter.Round(time.Millisecond), late, r.first.Round(time.Millisecond), r.calls, (runFor - r.first).Round(100*time.Millisecond))
		})
	}
}

// sippCall runs INVITE, 200, ACK, BYE, 200 through siplb to a sipp uas.
// sipp's 200 copies no Record-Route, so the client has no route set; it
// sends ACK and BYE to siplb all the same (its only peer), with the uas's
// Contact as Request-URI, which siplb forwards to that member.
func sippCall(c *client, callID string, r retry) error {
	req := sipMsg("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.self+";branch=z9hG4bK-"+callID+"-inv;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a-"+callID, "To: <sip:bob@example.com>",
		"Call-ID: "+callID, "CSeq: 1 INVITE", "Contact: <sip:alice@"+c.self+">", "Content-Length: 0")
	resp, _, err := c.transact(req, callID, "INVITE", r.tries, r.wait)
	if err != nil {
		return fmt.Errorf("INVITE %s: %w", callID, err)
	}
	var m parser.Message
	if err := parser.Parse(&m, resp); err != nil {
		return fmt.Errorf("INVITE %s: response: %w", callID, err)
	}
	if m.StatusCode() != 200 {
		return fmt.Errorf("INVITE %s: answered %d", callID, m.StatusCode())
	}
	contact, err := m.Contact(0)
	if err != nil {
		return fmt.Errorf("INVITE %s: Contact: %w", callID, err)
	}
	d := &dialog{c: c, callID: callID, toTag: string(m.ToTag()),
		target: netip.AddrPortFrom(netip.MustParseAddr(string(contact.Host)), contact.Port).String()}
	return d.ackBye(r)
}

// TestHealthIgnoresOptions: sipp uac → siplb → a sipp uas without -aa,
// which never answers siplb's OPTIONS probes, with a fast health
// configuration (interval 200ms, timeout 100ms, fall 3: the probes mark a
// silent backend down 0.5 s after its first unanswered one). With passive
// success (the default) every call of 6 s of load (30 probe rounds; see the
// top of the file for the equivalence with 60 s at the defaults) completes
// and the backend is never marked down; with passive_success: false it is
// marked down within the first second and calls fail (503), as they did
// for every user before passive success.
func TestHealthIgnoresOptions(t *testing.T) {
	sipp := sippPath(t)
	bin := buildSiplb(t)
	for _, tc := range []struct {
		name     string
		health   string
		rate     int
		calls    int
		wantDown bool
	}{
		{name: "passive success", health: "{interval: 200ms, timeout: 100ms, fall: 3}", rate: 20, calls: 120},
		{name: "passive success off", health: "{interval: 200ms, timeout: 100ms, fall: 3, passive_success: false}", rate: 20, calls: 120, wantDown: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runIgnoresOptions(t, sipp, bin, tc.health, tc.rate, tc.calls, tc.wantDown)
		})
	}
}

func runIgnoresOptions(t *testing.T, sipp, bin, health string, rate, calls int, wantDown bool) {
	t.Helper()
	uasPort, lbPort := freeUDPPort(t), freeUDPPort(t)
	limit := time.Duration(calls/rate)*time.Second + 30*time.Second
	var uasOut, lbOut syncBuffer
	startUAS(t, sipp, uasPort, false, limit, &uasOut)
	waitListening(t, "udp", uasPort, &uasOut)
	startProc(t, &lbOut, bin, "--config", writeConfig(t, lbPort, health, uasPort))
	c := newClient(t, netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", lbPort)))
	waitServing(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	dir := t.TempDir()
	uac := exec.CommandContext(ctx, sipp, "-sn", "uac", fmt.Sprintf("127.0.0.1:%d", lbPort),
		"-i", "127.0.0.1", "-p", fmt.Sprint(freeUDPPort(t)), "-m", fmt.Sprint(calls), "-r", fmt.Sprint(rate), "-l", "50",
		"-nostdin", "-timeout", sippDuration(limit), "-timeout_error", "-recv_timeout", "5s",
		"-trace_stat", "-stf", filepath.Join(dir, "uac.csv"))
	uac.Dir = dir
	began := time.Now()
	out, runErr := uac.CombinedOutput()
	took := time.Since(began)
	stats, err := os.ReadFile(filepath.Join(dir, "uac.csv"))
	if err != nil {
		t.Fatalf("sipp stats: %v (sipp: %v)\n%s", err, runErr, tail(out, 3000))
	}
	ok, failed := sippCounts(t, stats)
	logs := lbOut.String()
	down := strings.Count(logs, "backend down")
	if wantDown {
		if down == 0 || failed == 0 {
			t.Errorf("passive success off: %d marks down, %d of %d calls failed; want the backend down and calls failing\n%s", down, failed, calls, logs)
		}
		t.Logf("passive success off: backend marked down (%d times), %d of %d calls failed, %d completed", down, failed, calls, ok)
		return
	}
	if runErr != nil || ok != calls || failed != 0 {
		t.Errorf("sipp uac: %v; %d successful, %d failed calls; want %d and 0\n%s\nsiplb:\n%s", runErr, ok, failed, calls, tail(out, 3000), tail([]byte(logs), 3000))
	}
	if down != 0 {
		t.Errorf("the backend that ignores OPTIONS was marked down %d times:\n%s", down, logs)
	}
	if !strings.Contains(logs, "backend kept up by traffic") {
		t.Errorf("siplb did not log that traffic kept the backend up:\n%s", logs)
	}
	t.Logf("%d calls at %d/s over %v to a uas that ignores OPTIONS: %d completed, %d failed; backend never marked down (health %q)",
		calls, rate, took.Round(100*time.Millisecond), ok, failed, health)
}

// sippDuration writes d as sipp's options take it: whole seconds ("95s";
// sipp does not read "1m35s").
func sippDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
