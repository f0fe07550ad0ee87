package engine

import (
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/siplb/siplb/parser"
)

// TestBranchHashesMatch checks that branchHashes, which interleaves the two
// hash chains, gives transactionHash and loopHash bit for bit: both are
// inside every branch siplb writes.
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
			tx, loop := branchHashes(&m, &top, &c1)
			if wtx, wloop := transactionHash(&m, &top), loopHash(&m, &top, &c2); tx != wtx || loop != wloop {
				t.Fatalf("%s #%d: branchHashes = %#x, %#x; want %#x, %#x\n%s", n, k, tx, loop, wtx, wloop, in)
			}
			checked++
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d messages parsed", checked)
	}
}
