//go:build amd64 && !race

package hep

// storeRelease stores v at p with release order: what the calling
// goroutine stored before it is visible to a goroutine that loads v from
// p (atomically) before what it stores after. On amd64 every store has
// that order, so it is a plain move, which atomic.StoreUint64's XCHG is
// not: XCHG is a full fence and waits until every store before it has
// reached the cache. For a record just copied into ring lines that
// another core last held, that wait is the lines' ownership, one miss
// after another, on the event loop (ring.commit). A plain move lets the
// loop go on while the store buffer drains. Assembly, so that the
// compiler neither reorders it with the stores before it nor sees a
// plain store racing with atomic loads.
//
//go:noescape
func storeRelease(p *uint64, v uint64)
