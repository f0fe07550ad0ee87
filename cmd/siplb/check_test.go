package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --check runs what a start builds (start.go): configurations that passed
// it before and then failed at start, or started and black-holed, are
// refused, naming the key and its line. Each has a fixed twin that passes.
func TestCheckRefusesWhatCannotStart(t *testing.T) {
	const head = "listen:\n  - address: udp://127.0.0.1:5060\n"
	pool := func(backends ...string) string {
		s := "pools:\n  - name: a\n    backends:\n"
		for _, b := range backends {
			s += "      - " + b + "\n"
		}
		return s
	}
	tests := []struct {
		name string
		cfg  string // a configuration file, or
		args []string
		want string // substring of the refusal
		good string // a fixed configuration (or "" with goodArgs)
		gArg []string
	}{
		{
			name: "tcp backend with only a UDP listener",
			cfg:  head + pool("{address: tcp://127.0.0.1:5070}"),
			want: "line 6: pools[0].backends[0].address: no tcp:// listener to send to it from",
			good: head + "  - address: tcp://127.0.0.1:5060\n" + pool("{address: tcp://127.0.0.1:5070}"),
		},
		{
			name: "priority out of range",
			cfg:  head + pool("{address: udp://127.0.0.1:5070, priority: 70000}"),
			want: "line 6: pools[0].backends[0].priority: must be between 1 and 65535, got 70000",
			good: head + pool("{address: udp://127.0.0.1:5070, priority: 65535}"),
		},
		{
			name: "backend listed twice",
			cfg:  head + pool("{address: udp://127.0.0.1:5070}", "{address: 127.0.0.1:5070}"),
			want: "line 7: pools[0].backends[1].address: 127.0.0.1:5070 is listed twice in the pool (also pools[0].backends[0])",
			good: head + pool("{address: udp://127.0.0.1:5070}", "{address: 127.0.0.1:5071}"),
		},
		{
			name: "IPv6 listener, IPv4 backends",
			cfg:  "listen:\n  - address: udp://[::1]:5060\n" + pool("{address: udp://127.0.0.1:5070}"),
			want: "line 6: pools[0].backends[0].address: no udp:// listener of its address family (IPv4)",
			good: "listen:\n  - address: udp://[::1]:5060\n" + pool("{address: \"udp://[::1]:5070\"}"),
		},
		{
			name: "IPv6 backend behind a first UDP listener of IPv4",
			cfg:  head + "  - address: udp://[::1]:5060\n" + pool("{address: \"udp://[::1]:5070\"}"),
			want: "pools[0].backends[0].address: no udp:// listener of its address family (IPv6): UDP requests to backends leave from listen[0]",
			good: "listen:\n  - address: udp://[::1]:5060\n  - address: udp://127.0.0.1:5060\n" + pool("{address: \"udp://[::1]:5070\"}"),
		},
		{
			name: "unspecified backend",
			cfg:  head + pool("{address: udp://0.0.0.0:5070}"),
			want: "line 6: pools[0].backends[0].address: want a specific IP",
			good: head + pool("{address: udp://127.0.0.2:5070}"),
		},
		{
			name: "two listeners on one socket",
			cfg:  head + "  - address: udp://127.0.0.1:5060\n" + pool("{address: udp://127.0.0.1:5070}"),
			want: "line 3: listen[1].address: 127.0.0.1:5060 is already a udp socket of listen[0]",
			good: head + "  - address: tcp://127.0.0.1:5060\n" + pool("{address: udp://127.0.0.1:5070}"),
		},
		{
			name: "discovery source without a listener of its transport",
			cfg:  head + "pools:\n  - name: a\n    discovery:\n      - {host: farm.example., transport: tcp}\n",
			want: "line 6: pools[0].discovery[0].transport: no tcp:// listener",
			good: head + "dns:\n  servers: [127.0.0.1:53]\npools:\n  - name: a\n    discovery:\n      - {host: farm.example.}\n",
		},
		{
			name: "advertise that is no host[:port]",
			cfg:  "listen:\n  - address: udp://127.0.0.1:5060\n    advertise: \"[::1\"\n" + pool("{address: udp://127.0.0.1:5070}"),
			want: "line 3: listen[0].advertise",
			good: "listen:\n  - address: udp://127.0.0.1:5060\n    advertise: \"[::1]:5060\"\n" + pool("{address: udp://127.0.0.1:5070}"),
		},
		{
			name: "listeners on port 0 (a free port each at start)",
			cfg:  head + "  - address: tcp://127.0.0.1:5060\n" + pool("{address: udp://127.0.0.1:5070}", "{address: udp://127.0.0.1:5070}"),
			want: "pools[0].backends[1].address: 127.0.0.1:5070 is listed twice",
			good: "listen:\n  - address: udp://127.0.0.1:0\n  - address: udp://127.0.0.1:0\n  - address: tcp://127.0.0.1:0\n" + pool("{address: udp://127.0.0.1:5070}"),
		},
		{
			name: "quick start: weight with trailing garbage",
			args: []string{"--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070;weight=2x"},
			want: `weight: want a whole number, got "2x"`,
			gArg: []string{"--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070;weight=2"},
		},
		{
			name: "quick start: a parameter twice",
			args: []string{"--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070;weight=2;weight=3"},
			want: `parameter "weight" given twice`,
			gArg: []string{"--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070;weight=2;priority=3;state=draining"},
		},
		{
			name: "quick start: a parameter without a value",
			args: []string{"--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070;priority"},
			want: `parameter "priority": want name=value`,
			gArg: []string{"--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070;priority=2"},
		},
		{
			name: "quick start: tcp backend, udp listener",
			args: []string{"--listen", "udp://127.0.0.1:5060", "--backend", "tcp://127.0.0.1:5070"},
			want: "pools[0].backends[0].address: no tcp:// listener",
			gArg: []string{"--listen", "udp://127.0.0.1:5060", "--listen", "tcp://127.0.0.1:5060", "--backend", "tcp://127.0.0.1:5070"},
		},
	}
	dir := t.TempDir()
	checkRun := func(t *testing.T, cfg string, args []string) (int, string) {
		t.Helper()
		if cfg != "" {
			path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			args = []string{"--config", path}
		}
		var out bytes.Buffer
		code := run(append([]string{"--check"}, args...), &out, &out)
		return code, out.String()
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, out := checkRun(t, tc.cfg, tc.args); code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("--check = %d, %q; want 1 and %q", code, out, tc.want)
			}
			if code, out := checkRun(t, tc.good, tc.gArg); code != 0 || !strings.Contains(out, "is valid") {
				t.Errorf("--check of the fixed configuration = %d, %q; want 0", code, out)
			}
		})
	}
}

// A TLS listener whose certificate cannot be loaded fails --check as it
// would fail the start, naming the key and its line.
func TestCheckLoadsCertificates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tls.yaml")
	cfg := "listen:\n  - address: tls://127.0.0.1:5061\n    tls:\n      cert_file: " + filepath.Join(dir, "none.pem") +
		"\n      key_file: " + filepath.Join(dir, "none.key") + "\npools:\n  - name: a\n    backends:\n      - address: tls://127.0.0.1:5071\n"
	os.WriteFile(path, []byte(cfg), 0o644)
	var out bytes.Buffer
	if code := run([]string{"--check", "--config", path}, &out, &out); code != 1 || !strings.Contains(out.String(), "listen[0].tls.") || !strings.Contains(out.String(), "line ") {
		t.Errorf("--check = %d, %q; want 1 naming listen[0].tls and a line", code, out.String())
	}
}
