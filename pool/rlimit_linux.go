//go:build linux

package pool

import "golang.org/x/sys/unix"

// RaiseFileLimit raises the soft RLIMIT_NOFILE of the process to its hard
// limit and returns both as they are afterwards. Every TCP or TLS
// connection costs a descriptor, so a soft limit left at a distribution's
// 1024 caps siplb far below max_connections. On failure it returns the
// limits it could read (zeros if none) and the error.
//
// Go 1.19 and later raise the soft limit at start already; this makes the
// raise explicit and reports the figures, which MaxConnsFor turns into a
// connection cap.
func RaiseFileLimit() (soft, hard uint64, err error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return rl.Cur, rl.Max, err
		}
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return want.Cur, want.Max, err
		}
	}
	return rl.Cur, rl.Max, nil
}
