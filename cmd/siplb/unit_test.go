package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// examples/siplb.service: Type=notify with the directives siplb's
// lifecycle relies on, a stop timeout longer than the default drain, and
// (where systemd-analyze is installed) a unit systemd accepts.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../../examples/siplb.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = v
		}
	}
	for k, want := range map[string]string{
		"Type": "notify", "Restart": "on-failure", "StateDirectory": "siplb",
		"ExecReload": "/bin/kill -HUP $MAINPID", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
	} {
		if keys[k] != want {
			t.Errorf("%s=%q, want %q", k, keys[k], want)
		}
	}
	for _, k := range []string{"WatchdogSec", "LimitNOFILE", "ExecStart", "ExecStartPre"} {
		if keys[k] == "" {
			t.Errorf("%s is not set", k)
		}
	}
	if d, err := time.ParseDuration(keys["TimeoutStopSec"]); err != nil || d <= defaultDrainTimeout {
		t.Errorf("TimeoutStopSec=%q: want longer than the default drain (%v)", keys["TimeoutStopSec"], defaultDrainTimeout)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("no systemd-analyze: the unit's syntax is not verified")
		return
	}
	// verify wants the binaries to exist: point them at one that does,
	// this test's own.
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "siplb.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/siplb", bin)), 0o644)
	out, _ := exec.Command(analyze, "verify", path).CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, "siplb.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
}
