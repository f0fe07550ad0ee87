//go:build linux

package hep

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// threadClock returns the CPU time the calling thread has used, in
// nanoseconds; ok is false when the clock cannot be read.
//
// It is a raw system call (the vDSO has no thread CPU clock): a system
// call the runtime is told of wakes sysmon when every P was idle, and a
// woken sysmon polls every 20 µs for a millisecond and more before it
// sleeps again, each poll a context switch. Run reads this clock after
// every idle stretch, so that wake-up cost siplb more than the read
// (see stream_linux.go).
func threadClock() (ns int64, ok bool) {
	var ts unix.Timespec
	if _, _, e := unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_THREAD_CPUTIME_ID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0, false
	}
	return ts.Nano(), true
}
