package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
)

// Tests of the control API on its own: a Balancer and a control behind the
// admin handler on a loopback httptest server, without a data path.

var (
	apiA = netip.MustParseAddrPort("127.0.0.1:5070")
	apiB = netip.MustParseAddrPort("127.0.0.1:5071")
	apiC = netip.MustParseAddrPort("127.0.0.1:5072")
)

// testAdmin is an admin handler over bal on 127.0.0.1.
type testAdmin struct {
	url string
	bal *balance.Balancer
	ctl *control
}

func startTestAdmin(t *testing.T, pools []balance.PoolConfig, token string, reload func() error) *testAdmin {
	t.Helper()
	bal, err := balance.New(pools)
	if err != nil {
		t.Fatal(err)
	}
	if reload == nil {
		reload = func() error { return errNothingToReload }
	}
	ctl := newControl(bal, reload)
	a := &adminServer{bal: bal, stats: func() engine.Snapshot { return engine.Snapshot{} }, ctl: ctl, token: token,
		health: func() []balance.BackendHealth {
			return []balance.BackendHealth{{Addr: apiA, Pool: "farm", Up: true, Reason: "2 probes answered", Since: time.Unix(1700000000, 0), Successes: 4, LastRTT: 2 * time.Millisecond, LastReply: 200}}
		}}
	srv := httptest.NewServer(a.handler()) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return &testAdmin{url: srv.URL, bal: bal, ctl: ctl}
}

// do sends a request and decodes the JSON answer into out (unless nil); it
// returns the status.
func (ta *testAdmin) do(t *testing.T, method, path, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, ta.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %s: %v\n%s", method, path, resp.Status, err, body)
		}
	}
	return resp.StatusCode
}

func farmPools() []balance.PoolConfig {
	return []balance.PoolConfig{
		{Name: "farm", Backends: []balance.BackendConfig{{Addr: apiA}, {Addr: apiB}, {Addr: apiC}}},
		{Name: "rr", Algorithm: balance.RoundRobin, Backends: []balance.BackendConfig{{Addr: apiC}}},
		{Name: "users", Algorithm: balance.HashFromUser, Backends: []balance.BackendConfig{{Addr: apiA}, {Addr: apiB}}},
	}
}

func TestAPIToken(t *testing.T) {
	const token = "s3cret-token_1.~+/=="
	ta := startTestAdmin(t, farmPools(), token, nil)
	tests := []struct {
		name   string
		method string
		path   string
		auth   string
		want   int
	}{
		{name: "pools without token", method: "GET", path: "/api/v1/pools", want: 401},
		{name: "pools wrong token", method: "GET", path: "/api/v1/pools", auth: "Bearer nope", want: 401},
		{name: "pools token prefix", method: "GET", path: "/api/v1/pools", auth: "Bearer s3cret", want: 401},
		{name: "pools basic scheme", method: "GET", path: "/api/v1/pools", auth: "Basic " + token, want: 401},
		{name: "pools right token", method: "GET", path: "/api/v1/pools", auth: "Bearer " + token, want: 200},
		{name: "scheme case-insensitive", method: "GET", path: "/api/v1/pools", auth: "bearer " + token, want: 200},
		{name: "drain without token", method: "POST", path: "/api/v1/backends/farm/127.0.0.1:5070/drain", want: 401},
		{name: "reload without token", method: "POST", path: "/api/v1/reload", want: 401},
		{name: "route without token", method: "GET", path: "/api/v1/route?pool=farm&callid=x", want: 401},
		{name: "unknown api path without token", method: "GET", path: "/api/v1/nothing", want: 401},
		{name: "pprof without token", method: "GET", path: "/debug/pprof/", want: 401},
		{name: "pprof with token", method: "GET", path: "/debug/pprof/", auth: "Bearer " + token, want: 200},
		{name: "metrics open", method: "GET", path: "/metrics", want: 200},
		{name: "healthz open", method: "GET", path: "/healthz", want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ta.do(t, tc.method, tc.path, tc.auth, nil); got != tc.want {
				t.Errorf("%s %s (Authorization %q) = %d, want %d", tc.method, tc.path, tc.auth, got, tc.want)
			}
		})
	}
	if b, _ := ta.bal.Table().Lookup(apiA); b.State != balance.Up {
		t.Errorf("a drain without the token changed the state: %v", b.State)
	}
}

func TestAPIStateChanges(t *testing.T) {
	ta := startTestAdmin(t, farmPools(), "", nil)
	steps := []struct {
		name       string
		path       string
		wantStatus int
		want       map[netip.AddrPort]balance.State // states after the step
		wantError  string
	}{
		{name: "drain A", path: "/api/v1/backends/farm/127.0.0.1:5070/drain", wantStatus: 200,
			want: map[netip.AddrPort]balance.State{apiA: balance.Draining, apiB: balance.Up, apiC: balance.Up}},
		{name: "disable B", path: "/api/v1/backends/farm/127.0.0.1:5071/disable", wantStatus: 200,
			want: map[netip.AddrPort]balance.State{apiA: balance.Draining, apiB: balance.Disabled, apiC: balance.Up}},
		{name: "undrain A", path: "/api/v1/backends/farm/127.0.0.1:5070/undrain", wantStatus: 200,
			want: map[netip.AddrPort]balance.State{apiA: balance.Up, apiB: balance.Disabled}},
		{name: "drain pool", path: "/api/v1/pools/farm/drain", wantStatus: 200,
			want: map[netip.AddrPort]balance.State{apiA: balance.Draining, apiB: balance.Draining, apiC: balance.Draining}},
		{name: "enable pool", path: "/api/v1/pools/farm/enable", wantStatus: 200,
			want: map[netip.AddrPort]balance.State{apiA: balance.Up, apiB: balance.Up, apiC: balance.Up}},
		{name: "escaped IPv4 address", path: "/api/v1/backends/farm/127.0.0.1%3A5072/disable", wantStatus: 200,
			want: map[netip.AddrPort]balance.State{apiC: balance.Disabled}},
		{name: "unknown pool", path: "/api/v1/pools/nope/drain", wantStatus: 404, wantError: `pool "nope" is not configured`},
		{name: "not a member", path: "/api/v1/backends/users/127.0.0.1:5072/drain", wantStatus: 404, wantError: "not a member of pool \"users\""},
		{name: "bad address", path: "/api/v1/backends/farm/example.com:5060/drain", wantStatus: 400, wantError: "want IP:PORT"},
		{name: "unknown action", path: "/api/v1/backends/farm/127.0.0.1:5070/reboot", wantStatus: 404, wantError: "want drain, undrain, disable or enable"},
	}
	for _, st := range steps {
		var body struct {
			Error    string         `json:"error"`
			Backends []actionMember `json:"backends"`
		}
		if got := ta.do(t, "POST", st.path, "", &body); got != st.wantStatus {
			t.Errorf("%s: POST %s = %d (%s), want %d", st.name, st.path, got, body.Error, st.wantStatus)
		}
		if st.wantError != "" && !strings.Contains(body.Error, st.wantError) {
			t.Errorf("%s: error %q, want it to contain %q", st.name, body.Error, st.wantError)
		}
		for addr, want := range st.want {
			if b, _ := ta.bal.Table().Lookup(addr); b.State != want {
				t.Errorf("%s: %v is %v, want %v", st.name, addr, b.State, want)
			}
		}
		for _, m := range body.Backends {
			ap := netip.MustParseAddrPort(m.Address)
			if b, _ := ta.bal.Table().Lookup(ap); m.State != b.State.String() {
				t.Errorf("%s: answer says %s is %s, the Table %v", st.name, m.Address, m.State, b.State)
			}
		}
	}
	// GET reflects the runtime state, the override and the checker's view.
	var pools []poolInfo
	if got := ta.do(t, "GET", "/api/v1/pools", "", &pools); got != 200 || len(pools) != 3 {
		t.Fatalf("GET /api/v1/pools = %d, %d pools", got, len(pools))
	}
	c := pools[0].Backends[2]
	if c.Address != apiC.String() || c.State != "disabled" || c.OperatorState != "disabled" || !c.RuntimeOverride {
		t.Errorf("farm's C = %+v, want disabled by a runtime override", c)
	}
	a := pools[0].Backends[0]
	if !a.Probed || a.Health != "2 probes answered" || a.LastRTTSeconds != 0.002 || a.LastReply != 200 || a.ProbeSuccesses != 4 || a.Since == "" || a.RuntimeOverride {
		t.Errorf("farm's A = %+v, want the checker's view and no override", a)
	}
	if pools[0].Up != 2 {
		t.Errorf("farm up = %d, want 2", pools[0].Up)
	}
	var one poolInfo
	if got := ta.do(t, "GET", "/api/v1/pools/users", "", &one); got != 200 || one.Name != "users" || one.Algorithm != "hash-from-user" {
		t.Errorf("GET /api/v1/pools/users = %d %+v", got, one)
	}
	var flat []backendInfo
	if got := ta.do(t, "GET", "/api/v1/backends", "", &flat); got != 200 || len(flat) != 6 {
		t.Errorf("GET /api/v1/backends = %d, %d entries, want 6", got, len(flat))
	}
	if got := ta.do(t, "GET", "/api/v1/backends/farm/127.0.0.1:5070/drain", "", nil); got != http.StatusMethodNotAllowed {
		t.Errorf("GET on an action = %d, want 405", got)
	}
}

// Route lookups use the data path's Pick over the key of the pool's
// algorithm, and follow state changes.
func TestAPIRoute(t *testing.T) {
	ta := startTestAdmin(t, farmPools(), "", nil)
	pick := func(pool, key string) string {
		id, _ := ta.bal.Table().PoolByName(pool)
		b, ok := ta.bal.Table().Pick(id, []byte(key))
		if !ok {
			return ""
		}
		return b.Addr.String()
	}
	route := func(query string) (int, routeInfo, string) {
		var body struct {
			routeInfo
			Error string `json:"error"`
		}
		code := ta.do(t, "GET", "/api/v1/route?"+query, "", &body)
		return code, body.routeInfo, body.Error
	}
	for i := range 40 {
		id := fmt.Sprintf("call-%d@example.com", i)
		code, ri, msg := route("pool=farm&callid=" + id)
		if code != 200 || ri.Backend != pick("farm", id) || ri.KeyParam != "callid" {
			t.Fatalf("route %s = %d %+v %s; want %s", id, code, ri, msg, pick("farm", id))
		}
		code, ri, _ = route("pool=farm&key=" + id)
		if code != 200 || ri.Backend != pick("farm", id) || ri.KeyParam != "key" {
			t.Fatalf("route key=%s = %d %+v; want %s", id, code, ri, pick("farm", id))
		}
		user := fmt.Sprintf("user%d", i)
		if code, ri, _ = route("pool=users&callid=ignored&from_user=" + user); code != 200 || ri.Backend != pick("users", user) {
			t.Fatalf("route from_user=%s = %d %+v; want %s", user, code, ri, pick("users", user))
		}
	}
	// After draining where a key goes, it goes elsewhere.
	const key = "moving-call"
	before := pick("farm", key)
	ta.do(t, "POST", "/api/v1/backends/farm/"+before+"/drain", "", nil)
	if _, ri, _ := route("pool=farm&callid=" + key); ri.Backend == before || ri.Backend != pick("farm", key) {
		t.Errorf("after draining %s: route = %s, want %s", before, ri.Backend, pick("farm", key))
	}
	ta.do(t, "POST", "/api/v1/pools/users/disable", "", nil)
	tests := []struct {
		name      string
		query     string
		wantCode  int
		wantError string
	}{
		{name: "no pool", query: "callid=x", wantCode: 400, wantError: "pool: the query parameter is required"},
		{name: "unknown pool", query: "pool=nope&callid=x", wantCode: 404, wantError: `pool "nope" is not configured`},
		{name: "round robin", query: "pool=rr&callid=x", wantCode: 400, wantError: "uses round-robin"},
		{name: "missing key", query: "pool=farm&from_user=x", wantCode: 400, wantError: "callid: required by pool \"farm\""},
		{name: "nobody up", query: "pool=users&from_user=x", wantCode: 503, wantError: "has no backend up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, msg := route(tc.query)
			if code != tc.wantCode || !strings.Contains(msg, tc.wantError) {
				t.Errorf("route?%s = %d %q, want %d %q", tc.query, code, msg, tc.wantCode, tc.wantError)
			}
		})
	}
}

// POST /api/v1/reload runs serve's reload (here: the real reload() over a
// file) and answers the changes, or 422 with each error's line and key.
func TestAPIReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "siplb.yaml")
	head := "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: farm\n    backends:\n"
	write := func(body string) {
		if err := os.WriteFile(path, []byte(head+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("      - address: udp://127.0.0.1:5070\n      - address: udp://127.0.0.1:5071\n")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	pools, _ := cfg.pools()
	bal, err := balance.New(pools)
	if err != nil {
		t.Fatal(err)
	}
	checker := balance.NewChecker(bal, cfg.health(), balance.ProbeIdentity{}, nil, slog.New(slog.DiscardHandler))
	rl := &reloader{path: path, bal: bal, checker: checker, log: slog.New(slog.DiscardHandler)}
	rl.running.Store(cfg)
	ctl := newControl(bal, rl.reload)
	a := &adminServer{bal: bal, stats: func() engine.Snapshot { return engine.Snapshot{} }, ctl: ctl}
	srv := httptest.NewServer(a.handler())
	t.Cleanup(srv.Close)
	ta := &testAdmin{url: srv.URL, bal: bal, ctl: ctl}

	tests := []struct {
		name        string
		body        string
		wantCode    int
		wantChanges []poolChange
		wantIssues  []configIssue
	}{
		{name: "unchanged", body: "      - address: udp://127.0.0.1:5070\n      - address: udp://127.0.0.1:5071\n",
			wantCode: 200, wantChanges: []poolChange{}},
		{name: "weight, state, member added and removed",
			body:     "      - address: udp://127.0.0.1:5070\n        weight: 3\n        state: draining\n      - address: udp://127.0.0.1:5072\n",
			wantCode: 200, wantChanges: []poolChange{
				{Pool: "farm", Backend: "127.0.0.1:5070", Change: "changed", Detail: "weight 1 -> 3, state up -> draining"},
				{Pool: "farm", Backend: "127.0.0.1:5072", Change: "added"},
				{Pool: "farm", Backend: "127.0.0.1:5071", Change: "removed"},
			}},
		{name: "bad value", body: "      - address: udp://127.0.0.1:5070\n        weight: 5000\n",
			wantCode: 422, wantIssues: []configIssue{{Line: 7, Key: "pools[0].backends[0].weight", Message: "must be between 1 and 1000, got 5000"}}},
		{name: "two unknown keys", body: "      - address: udp://127.0.0.1:5070\n        wieght: 2\n        prio: 1\n",
			wantCode: 422, wantIssues: []configIssue{
				{Line: 7, Message: "field wieght not found in type main.BackendConfig"},
				{Line: 8, Message: "field prio not found in type main.BackendConfig"},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.body)
			var body struct {
				reloadResult
				apiError
			}
			code := ta.do(t, "POST", "/api/v1/reload", "", &body)
			if code != tc.wantCode {
				t.Fatalf("POST /api/v1/reload = %d %+v, want %d", code, body, tc.wantCode)
			}
			if tc.wantCode == 200 {
				if !body.Reloaded || fmt.Sprint(body.Changes) != fmt.Sprint(tc.wantChanges) {
					t.Errorf("changes = %+v, want %+v", body.Changes, tc.wantChanges)
				}
				return
			}
			if fmt.Sprint(body.Errors) != fmt.Sprint(tc.wantIssues) || !strings.Contains(body.apiError.Error, "running configuration is kept") {
				t.Errorf("error %q, issues %+v; want %+v", body.apiError.Error, body.Errors, tc.wantIssues)
			}
		})
	}
	// The refused reloads kept the last good configuration, and were counted.
	if b, ok := bal.Table().Lookup(netip.MustParseAddrPort("127.0.0.1:5070")); !ok || b.Weight != 3 {
		t.Errorf("after refused reloads: A = %+v, want weight 3 from the last good one", b)
	}
	ok, failed, _, lastGood := ctl.reloads.snapshot()
	if ok != 2 || failed != 2 || lastGood {
		t.Errorf("reload stats: %d ok, %d failed, last good %v; want 2, 2, false", ok, failed, lastGood)
	}

	// Without a file there is nothing to reload: 409, not counted.
	ta2 := startTestAdmin(t, farmPools(), "", nil)
	var e apiError
	if code := ta2.do(t, "POST", "/api/v1/reload", "", &e); code != http.StatusConflict || !strings.Contains(e.Error, "without --config") {
		t.Errorf("reload without a file = %d %q, want 409", code, e.Error)
	}
	if ok, failed, _, _ := ta2.ctl.reloads.snapshot(); ok+failed != 0 {
		t.Errorf("a reload without a file was counted")
	}
}

func TestConfigIssues(t *testing.T) {
	tests := []struct {
		name string
		err  string
		want []configIssue
	}{
		{name: "validation", err: `/etc/siplb.yaml: line 9: pools[0].backends[1].address: want IP:PORT, got "x"`,
			want: []configIssue{{Line: 9, Key: "pools[0].backends[1].address", Message: `want IP:PORT, got "x"`}}},
		{name: "yaml syntax", err: "/etc/siplb.yaml: line 4: did not find expected key",
			want: []configIssue{{Line: 4, Message: "did not find expected key"}}},
		{name: "no line", err: "open /etc/siplb.yaml: no such file or directory",
			want: []configIssue{{Message: "open /etc/siplb.yaml: no such file or directory"}}},
		{name: "key without line", err: "/etc/siplb.yaml: admin.listen: want IP:PORT",
			want: []configIssue{{Key: "admin.listen", Message: "want IP:PORT"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := configIssues(fmt.Errorf("%s", tc.err)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("configIssues(%q) = %+v, want %+v", tc.err, got, tc.want)
			}
		})
	}
}

func TestReadiness(t *testing.T) {
	settled := []balance.BackendHealth{{Addr: apiA, Successes: 1}, {Addr: apiB, Failures: 1}}
	pending := []balance.BackendHealth{{Addr: apiA, Successes: 1}, {Addr: apiB}}
	now := time.Now()
	tests := []struct {
		name    string
		setup   func(c *control)
		health  []balance.BackendHealth
		at      time.Time
		want    bool
		wantWhy string
	}{
		{name: "starting", setup: func(*control) {}, health: settled, at: now, wantWhy: "starting"},
		{name: "first round pending", setup: func(c *control) { c.SetReady(true) }, health: pending, at: now,
			wantWhy: "waiting for the first health round: 1 of 2 backends probed"},
		{name: "first round done", setup: func(c *control) { c.SetReady(true) }, health: settled, at: now, want: true, wantWhy: "ready"},
		{name: "checker not started", setup: func(c *control) { c.SetReady(true) }, at: now, wantWhy: "waiting for the health checker to start"},
		{name: "nothing probed", setup: func(c *control) { c.SetReady(true) }, at: now.Add(2 * time.Second), want: true, wantWhy: "ready"},
		{name: "latched after the first round", setup: func(c *control) {
			c.SetReady(true)
			c.readiness(settled, now)
		}, health: pending, at: now, want: true, wantWhy: "ready"},
		{name: "draining", setup: func(c *control) {
			c.SetReady(true)
			c.SetReady(false)
		}, health: settled, at: now, wantWhy: "draining"},
		{name: "stopping", setup: func(c *control) {
			c.SetReady(true)
			c.stopping.Store(true)
		}, health: settled, at: now, wantWhy: "stopping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newControl(nil, nil)
			tc.setup(c)
			ok, why := c.readiness(tc.health, tc.at)
			if ok != tc.want || why != tc.wantWhy {
				t.Errorf("readiness = %v %q, want %v %q", ok, why, tc.want, tc.wantWhy)
			}
		})
	}
}

// Admin configuration: the token's syntax, its file, and the refusal of a
// listener off loopback without one.
func TestAdminConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	os.WriteFile(good, []byte("from-a-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	base := "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: p\n    backends:\n      - address: udp://127.0.0.1:5070\nadmin:\n"
	tests := []struct {
		name    string
		admin   string
		wantErr string // "" for valid
	}{
		{name: "loopback without token", admin: "  listen: 127.0.0.1:9060\n"},
		{name: "IPv6 loopback without token", admin: "  listen: \"[::1]:9060\"\n"},
		{name: "any address without token", admin: "  listen: 0.0.0.0:9060\n", wantErr: "line 8: admin.listen: 0.0.0.0:9060 is not a loopback address"},
		{name: "other address without token", admin: "  listen: 192.0.2.1:9060\n", wantErr: "admin.listen: 192.0.2.1:9060 is not a loopback address"},
		{name: "any address with token", admin: "  listen: 0.0.0.0:9060\n  token: abc123\n"},
		{name: "any address with token file", admin: "  listen: 0.0.0.0:9060\n  token_file: " + good + "\n"},
		{name: "both", admin: "  listen: 127.0.0.1:9060\n  token: abc\n  token_file: " + good + "\n", wantErr: "admin.token_file: set admin.token or admin.token_file, not both"},
		{name: "token with space", admin: "  listen: 127.0.0.1:9060\n  token: \"a b\"\n", wantErr: "admin.token: want letters, digits"},
		{name: "missing token file", admin: "  listen: 127.0.0.1:9060\n  token_file: " + filepath.Join(dir, "nope") + "\n", wantErr: "admin.token_file: open"},
		{name: "empty token file", admin: "  listen: 0.0.0.0:9060\n  token_file: " + empty + "\n", wantErr: "admin.token_file: " + empty + " holds no token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(base + tc.admin))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("parseConfig: %v, want valid", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("parseConfig: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	// --admin on the command line meets the same rule, before anything binds.
	var out strings.Builder
	code := run([]string{"--check", "--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070", "--admin", "0.0.0.0:9060"}, &out, &out)
	if code != 1 || !strings.Contains(out.String(), "admin.listen") {
		t.Errorf("--admin 0.0.0.0:9060 without a token: exit %d, %q; want 1 naming admin.listen", code, out.String())
	}
	if tok, err := (AdminConfig{TokenFile: good}).token(); err != nil || tok != "from-a-file" {
		t.Errorf("token from file = %q, %v", tok, err)
	}
}

func TestB64Token(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true}, {"abc", true}, {"A-._~+/9", true}, {"abc==", true},
		{"=", false}, {"a=b", false}, {"a b", false}, {"a\tb", false}, {"ä", false}, {"a\"b", false},
	} {
		if got := b64token(tc.in); got != tc.want {
			t.Errorf("b64token(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A page on another site cannot drive the API through the operator's
// browser: a cross-origin POST is refused even without a token; the same
// request from the admin listener's own origin (the status page) or from a
// client that sends no Origin (siplb ctl, curl) works.
func TestAPICrossOriginRefused(t *testing.T) {
	ta := startTestAdmin(t, farmPools(), "", nil)
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, 403},
		{"foreign origin", map[string]string{"Origin": "http://evil.example"}, 403},
		{"same origin", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"no origin (ctl, curl)", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", ta.url+"/api/v1/backends/farm/127.0.0.1:5070/undrain", nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
