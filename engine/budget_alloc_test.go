//go:build !race

package engine

import (
	"sync/atomic"
	"testing"

	"github.com/siplb/siplb/parser"
)

// Stream reassembly allocates nothing: neither for messages whole in a
// read (framed where they were read) nor for one split over reads (its
// buffer comes from the pool and goes back when it is complete).
func TestNextFrameAllocs(t *testing.T) {
	var closes atomic.Uint64
	b := newMemBudget(1<<20, &closes)
	h := &holder{kill: func() {}}
	msg := optionsReq("127.0.0.1:5060", "alloc", 1)
	two := append(append([]byte(nil), msg...), msg...)
	run := func(reads ...[]byte) {
		b.enter(h)
		for _, r := range reads {
			for {
				f, _, err := b.nextFrame(h, &r, parser.Limits{}, testMaxMsg)
				if err != nil {
					t.Fatal(err)
				}
				if f == nil {
					break
				}
			}
		}
		b.leave(h)
	}
	cases := []struct {
		name  string
		reads [][]byte
	}{
		{name: "two whole messages in one read", reads: [][]byte{two}},
		{name: "one message in two reads", reads: [][]byte{msg[:100], msg[100:]}},
		{name: "a message and a half, then the rest", reads: [][]byte{two[:len(msg)+50], two[len(msg)+50:]}},
	}
	for _, tc := range cases {
		run(tc.reads...)
		if n := testing.AllocsPerRun(100, func() { run(tc.reads...) }); n != 0 {
			t.Errorf("%s: %.1f allocations, want 0", tc.name, n)
		}
		if b.Held() != 0 {
			t.Errorf("%s: %d bytes still charged", tc.name, b.Held())
		}
	}
}
