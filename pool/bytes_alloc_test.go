//go:build !race

package pool

import "testing"

// sync.Pool drops some of what it is given under the race detector, so
// this runs without it.
func TestBytesNoAllocs(t *testing.T) {
	PutBytes(GetBytes(1500))
	if n := testing.AllocsPerRun(100, func() { PutBytes(GetBytes(1500)) }); n != 0 {
		t.Errorf("GetBytes/PutBytes: %.1f allocations, want 0", n)
	}
}
