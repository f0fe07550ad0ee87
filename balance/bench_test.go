package balance

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
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

// BenchmarkPickKeys is Pick over 16 members with a different Call-ID each
// time (a real mix of keys, so the branches of the weighted choice and its
// rare fall back to the exact scores are priced in), equal and unequal
// weights, and for the weighted case the exact scores alone (one logarithm
// per member: the cost before the fast path).
func BenchmarkPickKeys(b *testing.B) {
	keys := callIDs(4096)
	for _, a := range []Algorithm{HashCallID, LeastLatency, LeastLatencyP2C} {
		for _, weighted := range []bool{false, true} {
			name := a.String() + "/n=16"
			if weighted {
				name += "/weighted"
			}
			b.Run(name, func(b *testing.B) {
				bcs := members(16)
				if weighted {
					for i := range bcs {
						bcs[i].Weight = 1 + i%3
					}
				}
				bal := onePool(b, a, bcs)
				if a != HashCallID {
					slowLatency(bal, bcs)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, ok := bal.Table().Pool(0).Pick(keys[i&4095]); !ok {
						b.Fatal("no backend")
					}
					i++
				}
			})
		}
	}
	b.Run("exact/n=16/weighted", func(b *testing.B) {
		bcs := members(16)
		for i := range bcs {
			bcs[i].Weight = 1 + i%3
		}
		g := onePool(b, HashCallID, bcs).Table().Pool(0).active
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			g.rendezvousExact(HashKey(keys[i&4095]), &g.hashW)
			i++
		}
	})
}

// slowLatency gives every fourth member of bal a slower probe round trip
// than the rest, so the latency algorithms take their uneven paths.
func slowLatency(bal *Balancer, bcs []BackendConfig) {
	for i, bc := range bcs {
		rtt := time.Millisecond
		if i%4 == 0 {
			rtt = 8 * time.Millisecond
		}
		bal.SetLatency(bc.Addr, rtt, 0)
	}
}
