//go:build linux

package pool

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestRaiseFileLimit(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &orig) })
	if orig.Max < 256 {
		t.Skipf("hard limit %d too low to lower the soft one under it", orig.Max)
	}
	low := orig
	low.Cur = 128
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	soft, hard, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var now unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &now)
	if soft != orig.Max || hard != orig.Max || now.Cur != orig.Max {
		t.Errorf("RaiseFileLimit = %d, %d; limit now %d; want soft raised to the hard limit %d", soft, hard, now.Cur, orig.Max)
	}
}
