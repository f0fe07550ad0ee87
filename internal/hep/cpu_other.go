//go:build !linux

package hep

// threadClock: no per-thread CPU clock here; Stats.SendCPU stays 0.
func threadClock() (ns int64, ok bool) { return 0, false }
