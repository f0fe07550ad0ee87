//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit (to
// fs.nr_open when the hard limit is unlimited, which the kernel refuses as
// a soft one) and returns the limits in force afterwards. Go's runtime does
// the same at start on Linux; doing it here too makes the figures siplb
// logs the ones it runs under. err is the failed raise, with soft and hard
// still the limits in force.
func raiseFileLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if lim.Max == unix.RLIM_INFINITY {
			if n, ok := nrOpen(); ok {
				want.Cur = n
			}
		}
		if want.Cur > lim.Cur {
			err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
		}
		if gerr := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); gerr != nil && err == nil {
			err = gerr
		}
	}
	return lim.Cur, lim.Max, err
}

// nrOpen reads the kernel's ceiling of a process's descriptors.
func nrOpen() (uint64, bool) {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n > 0
}
