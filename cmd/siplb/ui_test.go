package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
)

// Tests of the status page (/ui): its files and headers over HTTP, and the
// page itself in a real headless Chromium driven with chromedp, against an
// admin handler on 127.0.0.1 whose counters and health views tick.

var updateScreenshot = flag.Bool("update-screenshot", false, "write docs/status-page.png from TestUIBrowser")

// uiAdmin is an admin handler over a Balancer of three backends in two
// pools, with engine counters that grow at about uiRate per second and a
// health view in which C has failed its probes.
type uiAdmin struct {
	url   string
	bal   *balance.Balancer
	polls atomic.Int64 // health views served
}

const uiRate = 1200 // requests forwarded per second, on average

var uiStart = time.Now()

func startUIAdmin(t *testing.T, token string) *uiAdmin {
	t.Helper()
	bal, err := balance.New([]balance.PoolConfig{
		{Name: "farm", Backends: []balance.BackendConfig{{Addr: apiA}, {Addr: apiB}, {Addr: apiC, Weight: 2}}},
		{Name: "users", Algorithm: balance.HashFromUser, Backends: []balance.BackendConfig{{Addr: apiA}, {Addr: apiB, Priority: 2}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	bal.SetHealth(apiC, false)
	// Backend A is forwarded up to 200 new dialogs and 200 in-dialog
	// requests a second (its address's counters: a ticker, slower on a
	// loaded machine), so its row has a rate to show.
	beA, _ := bal.Table().Lookup(apiA)
	tick := time.NewTicker(10 * time.Millisecond)
	stop := make(chan struct{})
	t.Cleanup(func() { tick.Stop(); close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				beA.Stats.Forwarded(0, true)
				beA.Stats.Forwarded(0, false)
			}
		}
	}()
	ua := &uiAdmin{bal: bal}
	changed := time.Now().Add(-95 * time.Second)
	a := &adminServer{bal: bal, ctl: newControl(bal, func() error { return errNothingToReload }), token: token,
		stats: uiStats,
		health: func() []balance.BackendHealth {
			n := float64(ua.polls.Add(1))
			rtt := func(base float64) time.Duration { // ms, wobbling
				return time.Duration((base + 0.6*math.Sin(n/3)) * float64(time.Millisecond))
			}
			return []balance.BackendHealth{
				{Addr: apiA, Pool: "farm", Up: true, Reason: "2 probes answered", Since: changed, Successes: 12, LastRTT: rtt(1.8), LastReply: 200},
				{Addr: apiB, Pool: "farm", Up: true, Reason: "2 probes answered", Since: changed, Successes: 12, LastRTT: rtt(2.6), LastReply: 200},
				{Addr: apiC, Pool: "farm", Up: false, Reason: "3 probes unanswered", Since: changed.Add(40 * time.Second), Failures: 5},
			}
		}}
	srv := httptest.NewServer(a.handler()) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	ua.url = srv.URL
	return ua
}

// uiStats is a Snapshot of counters since uiStart: requests and responses
// forwarded at uiRate/s on average, replies at 40/s and drops at 15/s, each
// rate swinging around its mean, so that the charts have a shape.
func uiStats() engine.Snapshot {
	sec := time.Since(uiStart).Seconds()
	fwd := swing(uiRate, 0.25, 6, sec)
	s := engine.Snapshot{RequestsIn: fwd + uint64(sec*8), ResponsesIn: fwd, RequestsOut: fwd, ResponsesOut: fwd,
		Replies: map[int]uint64{503: swing(30, 0.4, 9, sec), 400: uint64(sec * 10), 0: 3}, Conns: 42}
	s.Drops[engine.DropMalformedRequest] = swing(15, 0.5, 4, sec)
	s.Drops[engine.DropNoBackend] = 7
	return s
}

// swing is how many events a rate of mean × (1 + amp sin(2πt/period)) per
// second has counted after sec seconds: its integral.
func swing(mean, amp, period, sec float64) uint64 {
	return uint64(mean*sec + mean*amp*period/(2*math.Pi)*(1-math.Cos(2*math.Pi*sec/period)))
}

func TestUIServed(t *testing.T) {
	const token = "ui-test-token"
	ua := startUIAdmin(t, token)
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name     string
		path     string
		want     int
		wantType string
		wantBody string // a part of the body
	}{
		{name: "redirect", path: "/ui", want: http.StatusMovedPermanently},
		{name: "page", path: "/ui/", want: 200, wantType: "text/html", wantBody: `<script src="app.js" defer></script>`},
		{name: "script", path: "/ui/app.js", want: 200, wantType: "text/javascript", wantBody: `const API = "../api/v1/"`},
		{name: "style", path: "/ui/style.css", want: 200, wantType: "text/css", wantBody: ".state-draining"},
		{name: "missing file", path: "/ui/nothing.js", want: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := noRedirect.Get(ua.url + tc.path) // no token: the page holds no data
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s = %s, want %d", tc.path, resp.Status, tc.want)
			}
			if tc.want == http.StatusMovedPermanently {
				if loc := resp.Header.Get("Location"); loc != "/ui/" {
					t.Errorf("GET %s: Location %q, want /ui/", tc.path, loc)
				}
				return
			}
			if tc.want != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.wantType)
			}
			for h, want := range map[string]string{"Content-Security-Policy": uiCSP, "X-Frame-Options": "DENY",
				"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("GET %s: %s %q, want %q", tc.path, h, got, want)
				}
			}
			if !strings.Contains(body.String(), tc.wantBody) {
				t.Errorf("GET %s: body lacks %q", tc.path, tc.wantBody)
			}
			if b := strings.ReplaceAll(body.String(), "http://www.w3.org/2000/svg", ""); strings.Contains(b, "http://") || strings.Contains(b, "https://") {
				t.Errorf("GET %s: names another origin; the page must work offline", tc.path)
			}
		})
	}
}

func TestAPIStats(t *testing.T) {
	const token = "stats-token"
	snap := engine.Snapshot{RequestsIn: 10, ResponsesIn: 9, RequestsOut: 8, ResponsesOut: 7,
		Replies: map[int]uint64{503: 4, 400: 2, 0: 1}, Conns: 3}
	snap.Drops[engine.DropNoBackend] = 5
	snap.Drops[engine.DropFlood] = 6
	bal, err := balance.New(farmPools())
	if err != nil {
		t.Fatal(err)
	}
	a := &adminServer{bal: bal, ctl: newControl(bal, func() error { return errNothingToReload }), token: token,
		stats: func() engine.Snapshot { return snap }}
	srv := httptest.NewServer(a.handler())
	t.Cleanup(srv.Close)
	ta := &testAdmin{url: srv.URL}

	if got := ta.do(t, "GET", "/api/v1/stats", "", nil); got != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/stats without the token = %d, want 401", got)
	}
	before := time.Now().Add(-time.Second)
	var st statsInfo
	if got := ta.do(t, "GET", "/api/v1/stats", "Bearer "+token, &st); got != 200 {
		t.Fatalf("GET /api/v1/stats = %d, want 200", got)
	}
	at, err := time.Parse(time.RFC3339Nano, st.Time)
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("time %q: %v, want about now", st.Time, err)
	}
	want := statsInfo{Time: st.Time, RequestsReceived: 10, ResponsesReceived: 9, RequestsForwarded: 8, ResponsesForwarded: 7,
		Replies: 7, RepliesByStatus: map[string]uint64{"503": 4, "400": 2, "other": 1}, Drops: 11, Connections: 3}
	if fmt.Sprint(st.RepliesByStatus) != fmt.Sprint(want.RepliesByStatus) {
		t.Errorf("replies_by_status = %v, want %v", st.RepliesByStatus, want.RepliesByStatus)
	}
	if st.DropsByReason["no_backend"] != 5 || st.DropsByReason["flood_blocked"] != 6 || len(st.DropsByReason) != len(engine.Drops()) {
		t.Errorf("drops_by_reason = %v, want no_backend 5, flood_blocked 6 and every other reason 0", st.DropsByReason)
	}
	st.RepliesByStatus, st.DropsByReason, want.RepliesByStatus = nil, nil, nil
	if fmt.Sprintf("%+v", st) != fmt.Sprintf("%+v", want) {
		t.Errorf("GET /api/v1/stats = %+v, want %+v", st, want)
	}
}

// browserPath finds Debian's chromium. Without it the test fails, saying
// how to install it.
func browserPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): the status page's browser test needs Debian's chromium. "+
			"Install it with `apt-get install chromium` (make test does, through scripts/deps.sh)", err)
	}
	return path
}

// browser is a headless Chromium for one test.
type browser struct {
	ctx context.Context // has the browser; each tab is a child
}

// startBrowser starts Chromium with a fresh profile; it stops when the test
// ends.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := browserPath(t)
	// Both are removed after the browser stops (cleanups run last first).
	// Chromium leaves its singleton socket's folder in TMPDIR.
	profile, tmp := t.TempDir(), t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.Env("TMPDIR="+tmp),
		chromedp.WindowSize(1100, 760))
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	firstRun(t, ctx, "start chromium")
	return &browser{ctx: ctx}
}

// firstRun runs the first action of a chromedp context, which binds the
// browser or tab to that context and so must not have a deadline of its own:
// the wait is bounded here instead.
func firstRun(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx, steps...) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(30 * time.Second):
		chromedp.Cancel(ctx)
		t.Fatalf("%s: no answer within 30s", what)
	}
}

// tab is one page of the browser, with the page's script errors and
// console errors collected.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

// open opens a tab on url; it closes when the test ends, failing it if the
// page threw an exception or logged an error other than a refused request.
func (b *browser) open(t *testing.T, url string) *tab {
	t.Helper()
	tb := &tab{t: t}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(tb.listen))
	tb.ctx = ctx
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.errors {
			t.Errorf("page %s: %s", url, e)
		}
		cancel()
	})
	firstRun(t, ctx, "open "+url, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}) // CSP violations come as log entries
		return err
	}), chromedp.Navigate(url))
	return tb
}

func (tb *tab) listen(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		// A refused API call (401, 404) is logged by the network; that is
		// the page at work. Anything else at error level is a defect.
		if e.Entry.Level != cdplog.EntryLevelError || e.Entry.Source == cdplog.EntrySourceNetwork {
			return
		}
		msg = fmt.Sprintf("%s error: %s (%s:%d)", e.Entry.Source, e.Entry.Text, e.Entry.URL, e.Entry.LineNumber)
	default:
		return
	}
	tb.mu.Lock()
	tb.errors = append(tb.errors, msg)
	tb.mu.Unlock()
}

// do runs steps within 20 s.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page within 20 s.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits up to 10 s for a JavaScript expression to be true.
func (tb *tab) waitFor(what, expr string) {
	tb.t.Helper()
	tb.waitWithin(10*time.Second, what, expr)
}

// waitWithin waits up to limit (at most 25 s) for a JavaScript expression to
// be true.
func (tb *tab) waitWithin(limit time.Duration, what, expr string) {
	tb.t.Helper()
	limit = min(limit, 25*time.Second)
	ctx, cancel := context.WithTimeout(tb.ctx, limit+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(limit)))
	if err != nil {
		rows := eval[[]string](tb, `[...document.querySelectorAll("tr.backend")].map(r => r.innerText.replace(/\s+/g, " "))`)
		tb.t.Fatalf("page: not %s within %v (%v); rows now:\n%s\nmessage: %q", what, limit, err, strings.Join(rows, "\n"),
			eval[string](tb, `document.getElementById("message").textContent + " / " + document.getElementById("conn").textContent`))
	}
}

// row is the CSS selector of the row of addr in pool.
func row(pool string, addr netip.AddrPort) string {
	return fmt.Sprintf(`tr.backend[data-pool=%q][data-address=%q]`, pool, addr.String())
}

// apiState is the state /api/v1/backends reports for addr in pool.
func (ua *uiAdmin) apiState(t *testing.T, token, pool string, addr netip.AddrPort) string {
	t.Helper()
	var bs []backendInfo
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	if got := (&testAdmin{url: ua.url}).do(t, "GET", "/api/v1/backends", auth, &bs); got != 200 {
		t.Fatalf("GET /api/v1/backends = %d", got)
	}
	for _, b := range bs {
		if b.Pool == pool && b.Address == addr.String() {
			return b.State
		}
	}
	t.Fatalf("GET /api/v1/backends: no %s in pool %s: %+v", addr, pool, bs)
	return ""
}

// waitAPIState waits up to 5 s for /api/v1/backends to report want.
func (ua *uiAdmin) waitAPIState(t *testing.T, token, pool string, addr netip.AddrPort, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = ua.apiState(t, token, pool, addr); got == want {
			return
		}
	}
	t.Fatalf("GET /api/v1/backends: %s in %s is %s, want %s", addr, pool, got, want)
}

// click clicks the button of action in the row of addr in pool.
func (tb *tab) click(pool string, addr netip.AddrPort, action string) {
	tb.t.Helper()
	tb.do(action+" "+addr.String(), chromedp.Click(chromedp.CSS(row(pool, addr)+fmt.Sprintf(` button[data-action=%q]`, action))))
}

func TestUIBrowser(t *testing.T) {
	b := startBrowser(t)

	t.Run("drain and disable", func(t *testing.T) {
		ua := startUIAdmin(t, "")
		tb := b.open(t, ua.url+"/ui/?refresh=0.2")
		tb.waitFor("listing the backends", `document.querySelectorAll("tr.backend").length === 5`)
		rows := eval[[]string](tb, `[...document.querySelectorAll("tr.backend")].map(r => r.dataset.pool + " " + r.dataset.address + " " + r.dataset.state)`)
		want := []string{"farm 127.0.0.1:5070 up", "farm 127.0.0.1:5071 up", "farm 127.0.0.1:5072 down",
			"users 127.0.0.1:5070 up", "users 127.0.0.1:5071 up"}
		if strings.Join(rows, "\n") != strings.Join(want, "\n") {
			t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
		}
		if got := eval[string](tb, `document.querySelector('`+row("farm", apiC)+` td.health').textContent`); got != "3 probes unanswered" {
			t.Errorf("health of C = %q, want the checker's reason", got)
		}
		// style.css applied under the page's CSP
		if got := eval[string](tb, `getComputedStyle(document.querySelector('`+row("farm", apiA)+` .state')).backgroundColor`); got != "rgb(27, 127, 59)" {
			t.Errorf("state badge of an up backend: background %q, want the stylesheet's green", got)
		}

		tb.click("farm", apiB, "drain")
		ua.waitAPIState(t, "", "farm", apiB, "draining")
		tb.waitFor("showing B draining", `document.querySelector('`+row("farm", apiB)+`').dataset.state === "draining" &&
			document.querySelector('`+row("users", apiB)+`').dataset.state === "draining" &&
			document.querySelector('`+row("farm", apiB)+` .state').textContent === "draining"`)
		tb.click("farm", apiB, "undrain")
		ua.waitAPIState(t, "", "farm", apiB, "up")
		tb.waitFor("showing B up again", `document.querySelector('`+row("farm", apiB)+`').dataset.state === "up"`)

		// disable takes a second click
		tb.click("users", apiA, "disable")
		tb.waitFor("asking to confirm", `document.querySelector('`+row("users", apiA)+` button[data-action="disable"]').textContent === "confirm disable"`)
		if got := ua.apiState(t, "", "farm", apiA); got != "up" {
			t.Errorf("after one click on disable: A is %s, want up until confirmed", got)
		}
		tb.click("users", apiA, "disable")
		ua.waitAPIState(t, "", "farm", apiA, "disabled")
		tb.waitFor("showing A disabled", `document.querySelector('`+row("farm", apiA)+`').dataset.state === "disabled" &&
			document.querySelector('`+row("farm", apiA)+` button[data-action="enable"]') !== null`)

		tb.waitFor("showing rates", `document.querySelectorAll(".rate .line[points]").length >= 4`)
		fwd := eval[string](tb, `document.querySelector('.rate[data-metric="requests_forwarded"] .value').textContent`)
		var rate float64
		if _, err := fmt.Sscan(strings.ReplaceAll(fwd, ",", ""), &rate); err != nil || rate < uiRate*0.5 || rate > uiRate*1.5 {
			t.Errorf("requests forwarded/s shows %q, want about %d", fwd, uiRate)
		}
		if got := eval[string](tb, `document.querySelector('.rate[data-metric="connections"] .value').textContent`); got != "42" {
			t.Errorf("connections shows %q, want 42", got)
		}
		// Per backend: A is forwarded up to 400/s, B nothing.
		tb.waitFor("showing A's rate", `document.querySelector('`+row("farm", apiA)+` .be-rate').textContent !== ""`)
		var aRate, bRate float64
		fmt.Sscan(strings.ReplaceAll(eval[string](tb, `document.querySelector('`+row("farm", apiA)+` .be-rate').textContent`), ",", ""), &aRate)
		fmt.Sscan(eval[string](tb, `document.querySelector('`+row("farm", apiB)+` .be-rate').textContent`), &bRate)
		if aRate < 50 || aRate > 800 || bRate != 0 {
			t.Errorf("per-backend requests/s: A %v, B %v; want up to 400 (at least 50) and 0", aRate, bRate)
		}
	})

	t.Run("token", func(t *testing.T) {
		const token = "ui-s3cret.token"
		ua := startUIAdmin(t, token)
		tb := b.open(t, ua.url+"/ui/?refresh=0.2")
		tb.waitFor("asking for the token", `!document.getElementById("token-form").hidden`)
		if n := eval[int](tb, `document.querySelectorAll("tr.backend").length`); n != 0 {
			t.Errorf("without the token the page lists %d backends", n)
		}
		tb.do("wrong token", chromedp.SendKeys(chromedp.ID("token"), "nope"), chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
		tb.waitFor("refusing the wrong token", `!document.getElementById("token-form").hidden && !document.getElementById("token-error").hidden`)
		tb.do("right token", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
		tb.waitFor("listing the backends", `document.querySelectorAll("tr.backend").length === 5 && document.getElementById("token-form").hidden`)
		if got := eval[string](tb, `sessionStorage.getItem("siplb.admin-token")`); got != token {
			t.Errorf("sessionStorage holds %q, want the token", got)
		}
		tb.click("farm", apiA, "drain")
		ua.waitAPIState(t, token, "farm", apiA, "draining")
		tb.waitFor("showing A draining", `document.querySelector('`+row("farm", apiA)+`').dataset.state === "draining"`)

		// A reload of the tab keeps the token: no prompt.
		tb.do("reload", chromedp.Reload())
		tb.waitFor("listing the backends after a reload", `document.querySelectorAll("tr.backend").length === 5`)
		if !eval[bool](tb, `document.getElementById("token-form").hidden`) {
			t.Error("after a reload the page asks for the token again")
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		ua := startUIAdmin(t, "")
		ua.bal.SetState(apiB, balance.Draining)
		tb := b.open(t, ua.url+"/ui/?refresh=0.2")
		samples := 4
		if *updateScreenshot {
			samples = 60 // full charts
		}
		tb.waitWithin(20*time.Second, "drawing the charts", fmt.Sprintf(`document.querySelectorAll(".rate .line[points]").length >= 4 &&
			document.querySelector(".rate .line").getAttribute("points").split(" ").length >= %d`, samples))
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		defer cancel()
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(img))
		if err != nil || cfg.Width < 800 || cfg.Height < 400 {
			t.Fatalf("screenshot: %dx%d, %v", cfg.Width, cfg.Height, err)
		}
		if *updateScreenshot {
			path := filepath.Join("..", "..", "docs", "status-page.png")
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s: %dx%d, %d bytes", path, cfg.Width, cfg.Height, len(img))
		}
	})
}
