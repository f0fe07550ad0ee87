package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{
			name: "unknown key names key and line",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n        wieght: 2\n",
			want: "line 7: field wieght not found",
		},
		{
			name: "bad backend address names path and line",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n      - address: nowhere\n",
			want: "line 7: pools[0].backends[1].address: want IP:PORT",
		},
		{
			name: "unknown algorithm",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    algorithm: fastest\n    backends:\n      - address: udp://127.0.0.1:5070\n",
			want: "line 5: pools[0].algorithm",
		},
		{
			name: "unknown pool on a listener",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\n    pool: b\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n",
			want: `line 3: listen[0].pool: pool "b" is not defined`,
		},
		{
			name: "unspecified address without advertise",
			in:   "listen:\n  - address: udp://0.0.0.0:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n",
			want: "listen[0].advertise: is required",
		},
		{
			name: "no pools",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\n",
			want: "pools: at least one pool is required",
		},
		{
			name: "weight out of range",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n        weight: 0\n",
			want: "line 7: pools[0].backends[0].weight: must be between 1 and 1000, got 0",
		},
		{
			name: "empty",
			in:   "",
			want: "configuration is empty",
		},
		{
			name: "bad deny prefix names listener, list index and line",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\n    deny: [10.0.0.0/8, 10.0.0.0/33]\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n",
			want: `line 3: listen[0].deny[1]`,
		},
		{
			name: "bad backend_sources entry",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backend_sources: [127.0.0.1, nowhere]\n    backends:\n      - address: udp://127.0.0.1:5070\n",
			want: `line 5: pools[0].backend_sources[1]: want an IP or CIDR, got "nowhere"`,
		},
		{
			name: "flood density out of range",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\nsecurity:\n  flood:\n    density: -1\n",
			want: "line 9: security.flood.density",
		},
		{
			name: "also_tcp on a tcp backend",
			in:   "listen:\n  - address: tcp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: tcp://127.0.0.1:5070\n        also_tcp: true\n",
			want: "line 7: pools[0].backends[0].also_tcp: is only for a udp:// backend",
		},
		{
			name: "udp_mtu out of range",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\nengine:\n  udp_mtu: 100\n",
			want: "line 8: engine.udp_mtu: must be between 576 and 65000",
		},
		{
			name: "bad trusted CIDR",
			in:   "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\nsecurity:\n  trusted: [192.0.2.0/40]\n",
			want: "security.trusted[0]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseConfig: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestShippedConfigsAreValid(t *testing.T) {
	for _, path := range []string{"default.yaml", "../../examples/siplb.yaml"} {
		if _, err := loadConfig(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := parseConfig([]byte("listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: 127.0.0.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Pools[0].Backends[0]
	if *b.Weight != 1 || b.Priority != 1 || b.State != "up" || cfg.Pools[0].Algorithm != "hash-callid" || !*cfg.Engine.RecordRoute {
		t.Errorf("defaults not applied: %+v %+v", b, cfg.Engine)
	}
	pools, err := cfg.pools()
	if err != nil {
		t.Fatal(err)
	}
	if got := pools[0].Backends[0].Addr.String(); got != "127.0.0.1:5060" {
		t.Errorf("backend without port = %s, want 127.0.0.1:5060", got)
	}
}

// Every configuration key appears in README.md's table.
func TestEveryKeyDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || (typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Struct) {
			if typ.Kind() == reflect.Slice {
				prefix += "[]"
			}
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			if !bytes.Contains(readme, []byte("`"+prefix+"`")) {
				t.Errorf("README.md does not document `%s`", prefix)
			}
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := strings.Split(f.Tag.Get("yaml"), ",")[0]
			p := key
			if prefix != "" {
				p = prefix + "." + key
			}
			walk(p, f.Type)
		}
	}
	walk("", reflect.TypeFor[Config]())
}

func TestRunFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen:\n  - address: udp://127.0.0.1:5060\n    color: blue\n"), 0o644)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "version", args: []string{"--version"}, wantCode: 0, wantOut: "siplb "},
		{name: "check example", args: []string{"--check", "--config", "../../examples/siplb.yaml"}, wantCode: 0, wantOut: "is valid"},
		{name: "check bad", args: []string{"--check", "--config", bad}, wantCode: 1, wantOut: "line 3: field color not found"},
		{name: "check flags", args: []string{"--check", "--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070;weight=3;priority=2"}, wantCode: 0, wantOut: "is valid"},
		{name: "bad backend param", args: []string{"--check", "--listen", "udp://127.0.0.1:5060", "--backend", "udp://127.0.0.1:5070;wait=3"}, wantCode: 1, wantOut: `unknown parameter "wait"`},
		{name: "listen without backend", args: []string{"--check", "--listen", "udp://127.0.0.1:5060"}, wantCode: 1, wantOut: "at least one --backend"},
		{name: "default", args: []string{"--check"}, wantCode: 0, wantOut: "embedded default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(tc.args, &out, &out)
			if code != tc.wantCode || !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("run(%q) = %d, %q; want %d and output containing %q", tc.args, code, out.String(), tc.wantCode, tc.wantOut)
			}
		})
	}
}
