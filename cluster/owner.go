package cluster

import (
	"net/netip"

	"github.com/siplb/siplb/internal/fnv1a"
)

// owner returns the member of names whose score with addr is highest
// (rendezvous, or highest-random-weight, hashing): every member that sees
// the same live set picks the same owner, and when a member goes only the
// backends it owned move. names is sorted, so ties (which need a 64-bit
// collision) fall to the first. "" when names is empty.
func owner(names []string, addr netip.AddrPort) string {
	var buf [64]byte
	key := addr.AppendTo(buf[:0])
	h := fnv1a.Add(fnv1a.Offset, key)
	best, bestScore := "", uint64(0)
	for _, name := range names {
		s := fnv1a.Mix(fnv1a.AddString(fnv1a.Sep(h), name))
		if best == "" || s > bestScore {
			best, bestScore = name, s
		}
	}
	return best
}
