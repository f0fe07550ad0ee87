package main

import (
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
