package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closedAdmin returns a loopback address where nothing listens.
func closedAdmin(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
}

func TestCtlExitCodes(t *testing.T) {
	open := startTestAdmin(t, farmPools(), "", nil)
	const token = "ctl-token"
	locked := startTestAdmin(t, farmPools(), token, nil)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	id, _ := open.bal.Table().PoolByName("farm")
	b, _ := open.bal.Table().Pick(id, []byte("call-1"))
	t.Setenv("SIPLB_ADMIN_TOKEN", "")

	tests := []struct {
		name     string
		args     []string // after "ctl"
		env      string   // SIPLB_ADMIN_TOKEN
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{name: "list", args: []string{"--admin", open.url, "list"}, wantCode: ctlOK, wantOut: "127.0.0.1:5070"},
		{name: "list header", args: []string{"--admin", strings.TrimPrefix(open.url, "http://"), "list"}, wantCode: ctlOK, wantOut: "POOL"},
		{name: "route", args: []string{"--admin", open.url, "route", "farm", "call-1"}, wantCode: ctlOK, wantOut: b.Addr.String()},
		{name: "drain one", args: []string{"--admin", open.url, "drain", "users", "127.0.0.1:5071"}, wantCode: ctlOK, wantOut: "users 127.0.0.1:5071: draining (drained)"},
		{name: "drain again", args: []string{"--admin", open.url, "drain", "users", "127.0.0.1:5071"}, wantCode: ctlOK, wantOut: "(unchanged)"},
		{name: "disable pool", args: []string{"--admin", open.url, "disable", "rr"}, wantCode: ctlOK, wantOut: "rr 127.0.0.1:5072: disabled (disabled)"},
		{name: "unknown pool", args: []string{"--admin", open.url, "drain", "nope"}, wantCode: ctlRefused, wantErr: `pool "nope" is not configured`},
		{name: "not a member", args: []string{"--admin", open.url, "enable", "users", "127.0.0.1:5072"}, wantCode: ctlRefused, wantErr: "not a member"},
		{name: "route round robin", args: []string{"--admin", open.url, "route", "rr", "x"}, wantCode: ctlRefused, wantErr: "uses round-robin"},
		{name: "reload without file", args: []string{"--admin", open.url, "reload"}, wantCode: ctlRefused, wantErr: "without --config"},
		{name: "no token", args: []string{"--admin", locked.url, "list"}, wantCode: ctlRefused, wantErr: "admin token is required"},
		{name: "wrong token", args: []string{"--admin", locked.url, "--token", "nope", "list"}, wantCode: ctlRefused, wantErr: "admin token is required"},
		{name: "token flag", args: []string{"--admin", locked.url, "--token", token, "list"}, wantCode: ctlOK, wantOut: "127.0.0.1:5070"},
		{name: "token env", args: []string{"--admin", locked.url, "list"}, env: token, wantCode: ctlOK, wantOut: "127.0.0.1:5070"},
		{name: "token file", args: []string{"--admin", locked.url, "--token-file", tokenFile, "list"}, wantCode: ctlOK, wantOut: "127.0.0.1:5070"},
		{name: "unreachable", args: []string{"--admin", closedAdmin(t), "list"}, wantCode: ctlUnreachable, wantErr: "cannot reach the admin listener"},
		{name: "unreachable drain", args: []string{"--admin", closedAdmin(t), "drain", "farm"}, wantCode: ctlUnreachable},
		{name: "no command", args: nil, wantCode: ctlUsage, wantErr: "usage: siplb ctl"},
		{name: "unknown command", args: []string{"--admin", open.url, "reboot"}, wantCode: ctlUsage, wantErr: `unknown command "reboot"`},
		{name: "drain without pool", args: []string{"--admin", open.url, "drain"}, wantCode: ctlUsage, wantErr: "drain takes POOL [ADDR]"},
		{name: "route one operand", args: []string{"--admin", open.url, "route", "farm"}, wantCode: ctlUsage, wantErr: "route takes POOL KEY"},
		{name: "list operand", args: []string{"--admin", open.url, "list", "farm"}, wantCode: ctlUsage},
		{name: "bad flag", args: []string{"--colour", "list"}, wantCode: ctlUsage},
		{name: "token and file", args: []string{"--token", "a", "--token-file", tokenFile, "list"}, wantCode: ctlUsage, wantErr: "exclude each other"},
		{name: "missing token file", args: []string{"--token-file", filepath.Join(t.TempDir(), "nope"), "list"}, wantCode: ctlUsage, wantErr: "--token-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SIPLB_ADMIN_TOKEN", tc.env)
			var stdout, stderr strings.Builder
			code := run(append([]string{"ctl"}, tc.args...), &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stdout.String(), tc.wantOut) || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("siplb ctl %q = %d\nstdout %q\nstderr %q\nwant %d, stdout containing %q, stderr containing %q",
					tc.args, code, stdout.String(), stderr.String(), tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}

// apiRoute asks the admin API at addr where a new call with callID goes.
func apiRoute(t *testing.T, addr, callID string) string {
	t.Helper()
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + addr + "/api/v1/route?pool=farm&callid=" + callID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ri routeInfo
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ri) != nil {
		t.Fatalf("route %s: %s", callID, resp.Status)
	}
	return ri.Backend
}

// ctl runs `siplb ctl --admin addr args...` and fails the test unless it
// exits 0; it returns its output.
func ctl(t *testing.T, addr string, args ...string) string {
	t.Helper()
	var out strings.Builder
	if code := run(append([]string{"ctl", "--admin", addr}, args...), &out, &out); code != 0 {
		t.Fatalf("siplb ctl %q = %d: %s", args, code, out.String())
	}
	return out.String()
}

// The control API reaches the data path: siplb in-process, three UDP
// backends. After `siplb ctl drain farm B` no new call reaches B while the
// dialogs B already has still get their ACK and BYE to it; route lookups
// agree with where every call really goes; the drain outlives a reload of an
// unchanged file, is cleared by undrain, and a reload that changes B's line
// drops it.
func TestCtlDrainReachesDataPath(t *testing.T) {
	a, b, c := startBackend(t, "A"), startBackend(t, "B"), startBackend(t, "C")
	all := []*backend{a, b, c}
	lbAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := yamlConfig{listen: lbAddr, admin: adminAddr, health: "{interval: 200ms, timeout: 100ms}"}
	for _, be := range all {
		cfg.backends = append(cfg.backends, "{address: "+be.url()+"}")
	}
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	writeFileAtomic(t, path, cfg.bytes())
	cfgv, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	ctx := t.Context()
	go func() { errc <- serve(ctx, cfgv, path, path, newLogger(&syncBuffer{}, "text", new(slog.LevelVar))) }()
	t.Cleanup(func() {
		select {
		case <-errc:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop within 10s")
		}
	})
	cl := newClient(t, lbAddr)
	waitServing(t, cl)
	waitReady(t, adminAddr)
	r := retry{tries: 4, wait: 500 * time.Millisecond}

	// Where calls go agrees with the route lookups; three dialogs on B.
	var onB []*dialog
	for i := 0; len(onB) < 3 && i < 200; i++ {
		id := fmt.Sprintf("ctl-%d", i)
		want := apiRoute(t, adminAddr, id)
		if want != b.addr.String() {
			continue
		}
		d, err := cl.invite(id, r)
		if err != nil {
			t.Fatal(err)
		}
		if d.target != want {
			t.Fatalf("%s: INVITE answered by %s, route said %s", id, d.target, want)
		}
		onB = append(onB, d)
	}
	if len(onB) < 3 {
		t.Fatalf("found %d Call-IDs routed to B, want 3", len(onB))
	}

	if out := ctl(t, adminAddr, "drain", "farm", b.addr.String()); !strings.Contains(out, "draining") {
		t.Errorf("drain printed %q", out)
	}
	for _, d := range onB {
		if err := d.ackBye(r); err != nil {
			t.Errorf("dialog on draining B: %v", err)
		} else if got := strings.Join(b.methods(d.callID), ","); got != "INVITE,ACK,BYE" {
			t.Errorf("%s: B saw %s, want INVITE,ACK,BYE", d.callID, got)
		}
	}
	// newCalls runs n calls and checks each against the route lookup made
	// just before it; it returns how many reached B.
	newCalls := func(prefix string, n int) int {
		onB := 0
		for i := range n {
			id := fmt.Sprintf("%s-%d", prefix, i)
			want := apiRoute(t, adminAddr, id)
			target, err := cl.call(id, r)
			if err != nil {
				t.Errorf("%s: %v", id, err)
				continue
			}
			if target != want {
				t.Errorf("%s reached %s, route said %s", id, target, want)
			}
			if target == b.addr.String() || b.invited(id) {
				onB++
			}
		}
		return onB
	}
	const n = 60
	full := predictor(t, all)
	hashedToB := 0
	for i := range n {
		if full(fmt.Sprintf("drained-%d", i)) == b.addr {
			hashedToB++
		}
	}
	if hashedToB == 0 {
		t.Fatalf("none of %d Call-IDs hashes to B with all up; the test proves nothing", n)
	}
	if got := newCalls("drained", n); got != 0 {
		t.Errorf("%d of %d new calls reached B while draining (%d hash to B with all up)", got, n, hashedToB)
	}

	// A reload of the unchanged file keeps the drain.
	if out := ctl(t, adminAddr, "reload"); !strings.Contains(out, "no change") {
		t.Errorf("reload printed %q", out)
	}
	if e, _ := entry(mustBackends(t, adminAddr), b.addr); e.State != "draining" {
		t.Errorf("after a reload of the unchanged file B is %q, want draining (the runtime state outlives it)", e.State)
	}
	if got := newCalls("reloaded", n); got != 0 {
		t.Errorf("%d of %d new calls reached B after the reload", got, n)
	}

	// Undrain: B takes its calls again.
	ctl(t, adminAddr, "undrain", "farm", b.addr.String())
	if got := newCalls("undrained", n); got == 0 {
		t.Errorf("none of %d new calls reached B after undrain", n)
	}

	// Drain again, then a reload that changes B's line drops the drain.
	ctl(t, adminAddr, "drain", "farm", b.addr.String())
	cfg.backends[1] = "{address: " + b.url() + ", weight: 2}"
	writeFileAtomic(t, path, cfg.bytes())
	if out := ctl(t, adminAddr, "reload"); !strings.Contains(out, "weight 1 -> 2") {
		t.Errorf("reload printed %q, want B's weight change", out)
	}
	if e, _ := entry(mustBackends(t, adminAddr), b.addr); e.State != "up" {
		t.Errorf("after a reload that changed B's line B is %q, want up (the configuration's)", e.State)
	}
}

func mustBackends(t *testing.T, addr string) []backendsJSON {
	t.Helper()
	bs, err := adminBackends(addr)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// waitReady polls /readyz until it answers 200, for up to 5 s; before
// that, it must answer 503.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	cl := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := cl.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("/readyz: %s, want 200 or 503", resp.Status)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("/readyz did not answer 200 within 5s")
}
