//go:build !race

package engine

import "testing"

// An idle TLS connection costs siplb at most 16 KiB of heap and stack
// (issue 15; it was about 24 KiB, 37 KB of RSS before a GC): no read
// buffer nor write queue while idle, and one goroutine on a small stack.
// Not under -race, whose stacks are larger.
func TestTLSIdleMemory(t *testing.T) {
	got := measureTLSIdle(t, 512)
	if per := got.heap + got.stacks; per > 16<<10 {
		t.Errorf("an idle TLS connection holds %.1f KiB of heap and stack, want at most 16 KiB", per/1024)
	}
}
