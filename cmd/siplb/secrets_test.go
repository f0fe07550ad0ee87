package main

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wantGenerated checks that s is what randomSecret makes: 32 random bytes
// as 64 hex digits.
func wantGenerated(t *testing.T, s string) {
	t.Helper()
	if b, err := hex.DecodeString(s); err != nil || len(b) != secretBytes {
		t.Errorf("generated secret %q: want %d bytes of hex", s, secretBytes)
	}
}

// Without engine.branch_secret, the first start makes a random secret and
// keeps it (directory 0700, file 0600); the second start reads the same.
func TestSecretStateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "siplb")
	cfg := &Config{Engine: EngineConfig{StateDir: dir, PreviousSecrets: []string{"an-older-secret-0001"}}}
	log, logs := bufLogger()
	first, prev, err := resolveSecrets(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	wantGenerated(t, first)
	if len(prev) != 1 || prev[0] != "an-older-secret-0001" {
		t.Errorf("previous = %q, want the configured one", prev)
	}
	path := filepath.Join(dir, secretFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, m)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v, %v; want a 0700 directory", dir, di.Mode(), err)
	}
	if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != first {
		t.Errorf("%s holds %q, want the secret in use", path, b)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "must share the secret") {
		t.Errorf("no warning about sharing the secret on first start:\n%s", logs)
	}
	if strings.Contains(logs.String(), first) {
		t.Errorf("the secret is in the log:\n%s", logs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%s holds %d entries, want only %s (no temporary file left)", dir, len(ents), secretFileName)
	}

	second, _, err := resolveSecrets(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("second start: secret changed")
	}

	// Another state directory: another secret, nothing derived from the
	// configuration.
	other, _, err := resolveSecrets(&Config{Engine: EngineConfig{StateDir: t.TempDir()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Errorf("two state directories gave the same secret")
	}
}

// A configured engine.branch_secret wins, and nothing is written.
func TestSecretConfiguredWins(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	cfg := &Config{Engine: EngineConfig{StateDir: dir, BranchSecret: "configured-secret-0123"}}
	log, _ := bufLogger()
	got, _, err := resolveSecrets(cfg, log)
	if err != nil || got != "configured-secret-0123" {
		t.Errorf("resolveSecrets = %q, %v; want the configured secret", got, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state directory %s made although the secret is configured (%v)", dir, err)
	}
}

// $STATE_DIRECTORY (systemd's, the first of a colon-separated list) is the
// default; engine.state_dir overrides it.
func TestStateDirDefault(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/run/a:/run/b")
	if got := stateDir(&Config{}); got != "/run/a" {
		t.Errorf("stateDir with STATE_DIRECTORY = %q, want /run/a", got)
	}
	if got := stateDir(&Config{Engine: EngineConfig{StateDir: "/x"}}); got != "/x" {
		t.Errorf("stateDir with engine.state_dir = %q, want /x", got)
	}
	t.Setenv("STATE_DIRECTORY", "")
	if got := stateDir(&Config{}); got != defaultStateDir {
		t.Errorf("stateDir = %q, want %s", got, defaultStateDir)
	}
}

// A state directory that cannot be made (here under a regular file, which
// even root cannot write into) gives a temporary secret and a loud warning.
func TestSecretUnwritableStateDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	log, logs := bufLogger()
	got, _, err := resolveSecrets(&Config{Engine: EngineConfig{StateDir: filepath.Join(file, "state")}}, log)
	if err != nil {
		t.Fatal(err)
	}
	wantGenerated(t, got)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "BRANCH SECRET IS TEMPORARY") {
		t.Errorf("no loud warning:\n%s", logs)
	}
}

// A state file that holds no usable secret is an error, not replaced.
func TestSecretBadStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, secretFileName)
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := bufLogger()
	if _, _, err := resolveSecrets(&Config{Engine: EngineConfig{StateDir: dir}}, log); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("resolveSecrets with a 5-character state file = %v, want an error naming %s", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != "short\n" {
		t.Errorf("state file replaced: %q", b)
	}
}

func TestSecretConfigErrors(t *testing.T) {
	head := "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\nengine:\n"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "short branch secret", in: head + "  loops: 1\n  branch_secret: tooshort\n", want: "line 9: engine.branch_secret: must be at least 16 characters, got 8"},
		{name: "short previous secret", in: head + "  previous_secrets:\n    - a-long-enough-secret\n    - nope\n", want: "line 10: engine.previous_secrets[1]: must be at least 16 characters, got 4"},
		{name: "negative grace", in: head + "  secret_grace: -1h\n", want: "line 8: engine.secret_grace: must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseConfig: %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "tooshort") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	cfg, err := parseConfig([]byte(head + "  branch_secret: sixteen-chars-ok\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.SecretGrace != 24*time.Hour {
		t.Errorf("engine.secret_grace default = %v, want 24h", cfg.Engine.SecretGrace)
	}
}

// siplb starts and serves with an unwritable state directory, warning;
// --check makes no state directory at all.
func TestServeWithUnwritableStateDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	be := startBackend(t, "A")
	lb := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
	yaml := fmt.Sprintf("listen:\n  - address: udp://%s\npools:\n  - name: a\n    backends:\n      - address: %s\nengine:\n  loops: 1\n  state_dir: %s\n",
		lb, be.url(), filepath.Join(file, "state"))
	logs := startServe(t, []byte(yaml))
	waitServing(t, newClient(t, lb))
	if !strings.Contains(logs.String(), "BRANCH SECRET IS TEMPORARY") {
		t.Errorf("no warning about the temporary secret:\n%s", logs)
	}

	dir := filepath.Join(t.TempDir(), "never")
	path := filepath.Join(t.TempDir(), "check.yaml")
	writeFileAtomic(t, path, fmt.Appendf(nil, "listen:\n  - address: udp://%s\npools:\n  - name: a\n    backends:\n      - address: %s\nengine:\n  state_dir: %s\n", lb, be.url(), dir))
	var out strings.Builder
	if code := run([]string{"--check", "--config", path}, &out, &out); code != 0 {
		t.Fatalf("--check: %d %s", code, out.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("--check made the state directory %s (%v)", dir, err)
	}
}
