//go:build !race

package balance

import "testing"

// TestPickAllocs asserts that the hot path allocates nothing: loading the
// Table, Pick with every algorithm (equal and unequal weights, small and
// large weighted cycles), PickHash and Lookup.
func TestPickAllocs(t *testing.T) {
	key := []byte("a84b4c76e66710@pc33.atlanta.com")
	tests := []struct {
		name    string
		alg     Algorithm
		weights []int
	}{
		{name: "hash-callid equal", alg: HashCallID, weights: []int{1, 1, 1}},
		{name: "hash-callid weighted", alg: HashCallID, weights: []int{3, 1, 2}},
		{name: "hash-ruri", alg: HashRequestURI, weights: []int{1, 1}},
		{name: "round-robin", alg: RoundRobin, weights: []int{1, 1, 1}},
		{name: "weighted-round-robin slots", alg: WeightedRoundRobin, weights: []int{2, 1}},
		{name: "weighted-round-robin stride", alg: WeightedRoundRobin, weights: []int{60000, 30001}},
		{name: "random equal", alg: Random, weights: []int{1, 1, 1}},
		{name: "random weighted", alg: Random, weights: []int{2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bcs := members(len(tc.weights))
			for i, w := range tc.weights {
				bcs[i].Weight = w
			}
			bal := onePool(t, tc.alg, bcs)
			allocs := testing.AllocsPerRun(100, func() {
				tab := bal.Table()
				b, ok := tab.Pool(0).Pick(key)
				if !ok {
					t.Fatal("no backend")
				}
				if _, ok := tab.Lookup(b.Addr); !ok {
					t.Fatal("Lookup failed")
				}
				if _, ok := bal.Pick(0, key); !ok {
					t.Fatal("no backend")
				}
				if _, ok := tab.Pool(0).PickHash(42); !ok {
					t.Fatal("no backend")
				}
			})
			if allocs != 0 {
				t.Errorf("Pick+Lookup: %v allocs per run, want 0", allocs)
			}
		})
	}
}

// ptrKeys is a pointer-shaped KeySource, as the engine's is: converting it
// to the interface allocates nothing.
type ptrKeys struct{ k *[4][]byte }

func (p ptrKeys) CallID() []byte     { return p.k[0] }
func (p ptrKeys) FromUser() []byte   { return p.k[1] }
func (p ptrKeys) ToUser() []byte     { return p.k[2] }
func (p ptrKeys) RequestURI() []byte { return p.k[3] }

func TestKeyAllocs(t *testing.T) {
	keys := &[4][]byte{[]byte("call"), []byte("alice"), []byte("bob"), []byte("sip:bob@x")}
	for a := range numAlgorithms {
		bal := onePool(t, a, members(3))
		p := bal.Table().Pool(0)
		if n := testing.AllocsPerRun(100, func() { p.Pick(p.Key(ptrKeys{keys})) }); n != 0 {
			t.Errorf("%v: Pick(Key) %v allocs per run, want 0", a, n)
		}
	}
}
