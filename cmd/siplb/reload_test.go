package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reloadBase is a configuration the reload tests vary line by line.
const reloadBase = `listen:
  - address: udp://127.0.0.1:5060
  - address: tcp://127.0.0.1:5060
pools:
  - name: a
    backends:
      - address: udp://127.0.0.1:5070
  - name: b
    backends:
      - address: udp://127.0.0.1:5080
engine:
  loops: 2
log:
  level: info
`

// Every key either applies live or refuses the reload, named with its
// line; nothing is silently ignored.
func TestNeedsRestart(t *testing.T) {
	running, err := parseConfig([]byte(reloadBase))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edits []string // pairs: text of reloadBase, what replaces it
		add   string   // appended
		want  []string
	}{
		{name: "unchanged"},
		{name: "listen address", edits: []string{"udp://127.0.0.1:5060", "udp://127.0.0.1:5062"}, want: []string{"line 2: listen[0].address: needs a restart"}},
		{name: "second listener", edits: []string{"tcp://127.0.0.1:5060", "tcp://127.0.0.1:5061"}, want: []string{"line 3: listen[1].address: needs a restart"}},
		{name: "listener added", edits: []string{"pools:\n", "  - address: udp://127.0.0.1:5064\npools:\n"}, want: []string{"line 4: listen[2]: needs a restart (added)"}},
		{name: "listener option", edits: []string{"  - address: tcp://127.0.0.1:5060\n", "  - address: tcp://127.0.0.1:5060\n    deny: [10.0.0.0/8]\n"},
			want: []string{"line 4: listen[1].deny: needs a restart"}},
		{name: "engine loops and streams", edits: []string{"loops: 2", "loops: 3"}, add: "streams:\n  idle_min: 20s\n",
			want: []string{"line 12: engine.loops: needs a restart", "line 16: streams.idle_min: needs a restart"}},
		{name: "a default written out is no change", add: "streams:\n  idle_min: 15s\nsecurity:\n  replies:\n    per_source_rate: 20\n"},
		{name: "security", add: "security:\n  trusted: [10.0.0.1]\n", want: []string{"line 16: security.trusted: needs a restart"}},
		{name: "log format", edits: []string{"  level: info\n", "  level: info\n  format: json\n"}, want: []string{"line 15: log.format: needs a restart"}},
		{name: "live: pools, log level, secrets, token, shutdown",
			edits: []string{"      - address: udp://127.0.0.1:5070\n", "      - address: udp://127.0.0.1:5070\n        weight: 5\n      - address: udp://127.0.0.1:5071\n",
				"  level: info\n", "  level: debug\n"},
			add: "shutdown:\n  drain_timeout: 5s\nadmin:\n  token: abc\n"},
		{name: "live: a pool added", edits: []string{"engine:\n", "  - name: c\n    backends:\n      - address: udp://127.0.0.1:5090\nengine:\n"}},
		{name: "the first pool moved away from the listeners",
			edits: []string{"  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n  - name: b\n    backends:\n      - address: udp://127.0.0.1:5080\n",
				"  - name: b\n    backends:\n      - address: udp://127.0.0.1:5080\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n"},
			want: []string{`line 5: pools[0].name: needs a restart (listen[0] takes its requests to pool "a", which must stay pools[0])`}},
		{name: "dns discovery", edits: []string{"  - name: b\n    backends:\n", "  - name: b\n    discovery:\n      - host: farm.example.\n    backends:\n"},
			want: []string{"line 9: pools[1].discovery: needs a restart (DNS sources are looked up by what the start made of them)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := reloadBase
			for i := 0; i+1 < len(tc.edits); i += 2 {
				if !strings.Contains(src, tc.edits[i]) {
					t.Fatalf("%q not in the base", tc.edits[i])
				}
				src = strings.Replace(src, tc.edits[i], tc.edits[i+1], 1)
			}
			src += tc.add
			next, doc, err := parseConfigDoc([]byte(src))
			if err != nil {
				t.Fatalf("%v\n%s", err, src)
			}
			err = needsRestart(running, next, doc)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("needsRestart:\n got %q\nwant %q\n%s", got, tc.want, src)
			}
		})
	}
}

// startServeWith runs serveWith in-process on the configuration file path,
// with a settable level, until the test ends; it returns the level.
func startServeWith(t *testing.T, path string, o serveOptions) *slog.LevelVar {
	t.Helper()
	cfg, doc, err := loadConfigDoc(path)
	if err != nil {
		t.Fatal(err)
	}
	if o.level == nil {
		o.level = new(slog.LevelVar)
		o.level.Set(parseLevel(cfg.Log.Level))
	}
	if o.log == nil {
		o.log = newLogger(&syncBuffer{}, "text", o.level)
	}
	o.configPath, o.source, o.doc = path, path, doc
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serveWith(ctx, cfg, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop within 10s")
		}
	})
	return o.level
}

// postReload asks the admin API at addr to reload; it returns the status
// and the answer.
func postReload(t *testing.T, addr string) (int, string) {
	t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Post("http://"+addr+"/api/v1/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// A running siplb: a reload that changes listen[0].address is refused
// naming it (and changes nothing else it carried); one that changes
// log.level applies it; one that changes the pools applies them.
func TestReloadLiveOrRefused(t *testing.T) {
	be := startBackend(t, "A")
	be2 := startBackend(t, "B")
	lb := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfgText := func(listen, level, backends string) []byte {
		return fmt.Appendf(nil, "listen:\n  - address: udp://%s\npools:\n  - name: farm\n    health: {disabled: true}\n    backends:\n%sadmin:\n  listen: %s\nlog:\n  level: %s\n",
			listen, backends, admin, level)
	}
	one := "      - address: " + be.url() + "\n"
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	writeFileAtomic(t, path, cfgText(lb, "info", one))
	level := startServeWith(t, path, serveOptions{})
	waitBackends(t, admin, 5*time.Second, "served", func(bs []backendsJSON) bool { return len(bs) == 1 })

	// listen[0].address and a weight: refused as a whole.
	other := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	writeFileAtomic(t, path, cfgText(other, "debug", "      - address: "+be.url()+"\n        weight: 7\n"))
	code, body := postReload(t, admin)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `"key": "listen[0].address"`) || !strings.Contains(body, `"line": 2`) ||
		!strings.Contains(body, "needs a restart") {
		t.Errorf("reload changing listen[0].address = %d %s; want 422 naming listen[0].address, line 2", code, body)
	}
	if level.Level() != slog.LevelInfo {
		t.Errorf("a refused reload changed the level to %v", level.Level())
	}
	if bs, err := adminBackends(admin); err != nil || len(bs) != 1 || bs[0].Weight != 1 {
		t.Errorf("a refused reload changed the pools: %+v (%v)", bs, err)
	}

	// log.level: applied.
	writeFileAtomic(t, path, cfgText(lb, "debug", one))
	if code, body := postReload(t, admin); code != http.StatusOK {
		t.Fatalf("reload changing log.level = %d %s, want 200", code, body)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("level after the reload = %v, want debug", level.Level())
	}

	// The pools: applied.
	writeFileAtomic(t, path, cfgText(lb, "debug", "      - address: "+be.url()+"\n        weight: 3\n      - address: "+be2.url()+"\n"))
	code, body = postReload(t, admin)
	if code != http.StatusOK || !strings.Contains(body, "weight 1 -") || !strings.Contains(body, `"change": "added"`) {
		t.Fatalf("reload changing the pools = %d %s, want 200 with the changes", code, body)
	}
	waitBackends(t, admin, 2*time.Second, "reloaded", func(bs []backendsJSON) bool {
		a, ok := entry(bs, be.addr)
		_, ok2 := entry(bs, be2.addr)
		return ok && ok2 && a.Weight == 3
	})
}

// The admin token applies at the next request after a reload.
func TestReloadAdminToken(t *testing.T) {
	be := startBackend(t, "A")
	lb := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("first-token\n"), 0o600)
	path := filepath.Join(dir, "siplb.yaml")
	writeFileAtomic(t, path, fmt.Appendf(nil, "listen:\n  - address: udp://%s\npools:\n  - name: farm\n    health: {disabled: true}\n    backends:\n      - address: %s\nadmin:\n  listen: %s\n  token_file: %s\n",
		lb, be.url(), admin, tokenFile))
	startServeWith(t, path, serveOptions{})
	get := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+admin+"/api/v1/pools", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitBackends(t, admin, 5*time.Second, "served", func(bs []backendsJSON) bool { return len(bs) == 1 })
	if c := get("first-token"); c != 200 {
		t.Fatalf("first token: %d", c)
	}
	os.WriteFile(tokenFile, []byte("second-token\n"), 0o600)
	req, _ := http.NewRequest("POST", "http://"+admin+"/api/v1/reload", nil)
	req.Header.Set("Authorization", "Bearer first-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	if c1, c2 := get("first-token"), get("second-token"); c1 != http.StatusUnauthorized || c2 != 200 {
		t.Errorf("after the reload: old token %d, new token %d; want 401 and 200", c1, c2)
	}
}

// The command line's overrides apply at each reload too; a key the file
// sets to another value is named for a warning, one it leaves out is not.
func TestOverridesApply(t *testing.T) {
	cfg, doc, err := parseConfigDoc([]byte(reloadBase))
	if err != nil {
		t.Fatal(err)
	}
	o := overrides{loops: 4, logLevel: "warn", admin: "127.0.0.1:9061", udpIO: "gnet"}
	replaced, err := o.apply(cfg, doc)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(replaced) != "[engine.loops log.level]" {
		t.Errorf("replaced %v, want the keys the file sets: [engine.loops log.level]", replaced)
	}
	if cfg.Engine.Loops != 4 || cfg.Log.Level != "warn" || cfg.Admin.Listen != "127.0.0.1:9061" || cfg.Engine.UDPIO != "gnet" {
		t.Errorf("overrides not applied: %+v %+v %+v", cfg.Engine, cfg.Log, cfg.Admin)
	}
	if _, err := (overrides{logLevel: "loud"}).apply(cfg, doc); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("a bad override: %v, want an error naming log.level", err)
	}
}
