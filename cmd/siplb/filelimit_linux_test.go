package main

import (
	"strings"
	"testing"

	"github.com/siplb/siplb/pool"
)

// The process's own limit: applyFileLimit leaves the soft limit at the
// hard one, derives an unset cap and keeps (with a warning) a configured
// cap above what fits. Linux only: elsewhere the limit is not read
// (rlimit_other.go is a stub).
func TestApplyFileLimit(t *testing.T) {
	cfg := &Config{Engine: EngineConfig{Loops: 1}, Listen: []ListenConfig{{Address: "udp://127.0.0.1:5060"}}}
	log, logs := bufLogger()
	fl := applyFileLimit(cfg, log)
	if fl.soft == 0 {
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
