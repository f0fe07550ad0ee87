package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/siplb/siplb/pool"
)

func TestConnsForFiles(t *testing.T) {
	tests := []struct {
		name  string
		limit uint64
		fixed int
		want  int
	}{
		{name: "headroom 64 below 640", limit: 512, fixed: 20, want: 512 - 20 - 64},
		{name: "headroom a tenth above 640", limit: 10000, fixed: 20, want: 10000 - 20 - 1000},
		{name: "nothing left", limit: 64, fixed: 20, want: 0},
		{name: "exactly used", limit: 84, fixed: 20, want: 0},
		{name: "huge limit capped by the registry", limit: 1 << 40, fixed: 20, want: pool.MaxSlots},
	}
	for _, tc := range tests {
		if got := connsForFiles(tc.limit, tc.fixed); got != tc.want {
			t.Errorf("%s: connsForFiles(%d, %d) = %d, want %d", tc.name, tc.limit, tc.fixed, got, tc.want)
		}
	}
}

func TestListenerFDs(t *testing.T) {
	cfg := &Config{Engine: EngineConfig{Loops: 4}, Listen: []ListenConfig{
		{Address: "udp://127.0.0.1:5060"}, {Address: "tcp://127.0.0.1:5060"}, {Address: "tls://127.0.0.1:5061"},
	}}
	// 16 fixed, 2 per loop, a socket per loop and a lock per UDP/TCP leg, a listener and a lock for TLS.
	if got, want := listenerFDs(cfg), 16+2*4+(4+1)*2+2; got != want {
		t.Errorf("listenerFDs = %d, want %d", got, want)
	}
}

// The process's own limit: applyFileLimit leaves the soft limit at the
// hard one, derives an unset cap and keeps (with a warning) a configured
// cap above what fits.
func TestApplyFileLimit(t *testing.T) {
	cfg := &Config{Engine: EngineConfig{Loops: 1}, Listen: []ListenConfig{{Address: "udp://127.0.0.1:5060"}}}
	log, logs := bufLogger()
	fl := applyFileLimit(cfg, log)
	if fl.soft == 0 {
		if runtime.GOOS != "linux" {
			t.Skip("RLIMIT_NOFILE is read on Linux only (rlimit_other.go is a stub)")
		}
		t.Fatal("the file limit could not be read")
	}
	if fl.soft != fl.hard && fl.hard < 1<<20 {
		t.Errorf("soft limit %d not raised to the hard limit %d", fl.soft, fl.hard)
	}
	want := min(connsForFiles(fl.soft, listenerFDs(cfg)), pool.DefaultMaxConns)
	if want > 0 && (cfg.Streams.MaxConns != want || fl.maxConns != want || fl.from != "file limit") {
		t.Errorf("derived cap: streams.max_connections = %d (%+v), want %d", cfg.Streams.MaxConns, fl, want)
	}

	over := &Config{Engine: EngineConfig{Loops: 1}, Listen: cfg.Listen, Streams: pool.Limits{MaxConns: pool.MaxSlots}}
	fl = applyFileLimit(over, log)
	if over.Streams.MaxConns != pool.MaxSlots || fl.from != "config" {
		t.Errorf("configured cap changed: %d (%+v)", over.Streams.MaxConns, fl)
	}
	if fl.fits < pool.MaxSlots && !strings.Contains(logs.String(), "key=streams.max_connections") {
		t.Errorf("no warning naming streams.max_connections above %d fitting:\n%s", fl.fits, logs)
	}
}
