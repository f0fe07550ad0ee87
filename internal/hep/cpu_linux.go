//go:build linux

package hep

import "golang.org/x/sys/unix"

// threadClock returns the calling thread's id and the CPU time it has used,
// in nanoseconds; ok is false when the clock cannot be read.
func threadClock() (tid int, ns int64, ok bool) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0, 0, false
	}
	return unix.Gettid(), ts.Nano(), true
}
