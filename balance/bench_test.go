package balance

import (
	"net/netip"
	"strconv"
	"testing"
)

// BenchmarkPick measures Pool.Pick (with the atomic Table load) for every
// algorithm at 3 and 16 members with equal weights, plus weighted variants.
func BenchmarkPick(b *testing.B) {
	key := []byte("a84b4c76e66710@pc33.atlanta.com")
	for _, n := range []int{3, 16} {
		for a := range numAlgorithms {
			for _, weighted := range []bool{false, true} {
				if weighted && (a == RoundRobin || a == HashFromUser || a == HashToUser || a == HashRequestURI) {
					continue // same code path as another case
				}
				name := a.String() + "/n=" + strconv.Itoa(n)
				if weighted {
					name += "/weighted"
				}
				b.Run(name, func(b *testing.B) {
					bcs := members(n)
					if weighted {
						for i := range bcs {
							bcs[i].Weight = 1 + i%3
						}
					}
					bal := onePool(b, a, bcs)
					b.ReportAllocs()
					for b.Loop() {
						if _, ok := bal.Table().Pool(0).Pick(key); !ok {
							b.Fatal("no backend")
						}
					}
				})
			}
		}
	}
}

// BenchmarkPickParallel: Pick from every core at once, as the event loops do;
// round robin shares one atomic counter.
func BenchmarkPickParallel(b *testing.B) {
	key := []byte("a84b4c76e66710@pc33.atlanta.com")
	for _, a := range []Algorithm{HashCallID, RoundRobin, Random} {
		b.Run(a.String(), func(b *testing.B) {
			bal := onePool(b, a, members(16))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ok := bal.Table().Pool(0).Pick(key); !ok {
						b.Fatal("no backend")
					}
				}
			})
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	bal := onePool(b, HashCallID, members(16))
	addr := netip.MustParseAddrPort("[::ffff:10.0.0.9]:5060")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := bal.Table().Lookup(addr); !ok {
			b.Fatal("not found")
		}
	}
}

func BenchmarkSetHealth(b *testing.B) {
	bal := onePool(b, HashCallID, members(16))
	b.ReportAllocs()
	up := false
	for b.Loop() {
		bal.SetHealth(backendAt(3), up)
		up = !up
	}
}
