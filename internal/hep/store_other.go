//go:build !amd64 || race

package hep

import "sync/atomic"

// storeRelease stores v at p with release order (store_amd64.go): here
// an atomic store, which has it on every platform. The race detector
// sees the ordering only through sync/atomic, so race builds use it on
// amd64 too.
func storeRelease(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
