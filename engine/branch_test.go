package engine

import (
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
)

// TestBranchHashesMatch checks that branchHashes, which interleaves the two
// hash chains, gives transactionHash and loopHash bit for bit: both are
// inside every branch siplb writes; and the Call-ID hash with balance.HashKey.
func TestBranchHashesMatch(t *testing.T) {
	f := newTestForwarder(t)
	bases := goldenBases(t, f, fixture4)
	names := make([]string, 0, len(bases))
	for n := range bases {
		names = append(names, n)
	}
	sort.Strings(names)
	r := rand.New(rand.NewPCG(1, 2))
	var m parser.Message
	checked := 0
	for _, n := range names {
		for k := range 300 {
			in := bases[n]
			if k > 0 {
				in = mutate(r, in)
			}
			if parser.Parse(&m, in) != nil {
				continue
			}
			top := m.TopVia()
			var c1, c2 routeCache
			tx, loop, call := branchHashes(&m, &top, &c1)
			wtx, wloop, wcall := transactionHash(&m, &top), loopHash(&m, &top, &c2), balance.HashKey(m.CallID())
			if tx != wtx || loop != wloop || call != wcall {
				t.Fatalf("%s #%d: branchHashes = %#x, %#x, %#x; want %#x, %#x, %#x\n%s", n, k, tx, loop, call, wtx, wloop, wcall, in)
			}
			checked++
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d messages parsed", checked)
	}
}
