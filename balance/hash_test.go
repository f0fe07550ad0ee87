package balance

import (
	"math"
	"net/netip"
	"slices"
	"testing"
)

// TestHashStable pins the hash, the seeds and a few choices: a change here
// re-routes the dialogs of every farm during a rolling upgrade, and breaks
// agreement between instances running different versions.
func TestHashStable(t *testing.T) {
	hashes := []struct {
		key  string
		want uint64
	}{
		{key: "", want: 0xcbf29ce484222325},
		{key: "a", want: 0xaf63dc4c8601ec8c},
		{key: "a84b4c76e66710@pc33.atlanta.com", want: 0x9242f865a4a2a10c},
	}
	for _, tc := range hashes {
		if got := HashKey([]byte(tc.key)); got != tc.want {
			t.Errorf("HashKey(%q) = %#x, want %#x", tc.key, got, tc.want)
		}
	}
	seeds := []struct {
		addr      netip.AddrPort
		transport Transport
		want      uint64
	}{
		{addr: backendAt(0), transport: UDP, want: 0xbf1f6b02610727b5},
		{addr: backendAt(0), transport: TLS, want: 0xd7825274660ab82e},
	}
	for _, tc := range seeds {
		if got := backendSeed(tc.addr, tc.transport); got != tc.want {
			t.Errorf("backendSeed(%v, %v) = %#x, want %#x", tc.addr, tc.transport, got, tc.want)
		}
	}
	p := onePool(t, HashCallID, members(4)).Table().Pool(0)
	picks := []struct {
		key  string
		want netip.AddrPort
	}{
		{key: "a84b4c76e66710@pc33.atlanta.com", want: backendAt(2)},
		{key: "1-2@x", want: backendAt(3)},
		{key: "sip:carol@chicago.com", want: backendAt(0)},
		{key: "bob", want: backendAt(3)},
	}
	for _, tc := range picks {
		if b, _ := p.Pick([]byte(tc.key)); b.Addr != tc.want {
			t.Errorf("Pick(%q) = %v, want %v", tc.key, b.Addr, tc.want)
		}
	}
}

// TestHashOrderIndependent: the choice depends on the set of members, not on
// the order they are listed in, so instances whose configurations list the
// same members differently still agree.
func TestHashOrderIndependent(t *testing.T) {
	bcs := members(5)
	bcs[1].Weight = 3
	rev := slices.Clone(bcs)
	slices.Reverse(rev)
	keys := callIDs(5000)
	a := assignment(t, onePool(t, HashCallID, bcs).Table().Pool(0), keys)
	b := assignment(t, onePool(t, HashCallID, rev).Table().Pool(0), keys)
	for i := range keys {
		if a[i] != b[i] {
			t.Fatalf("key %q: %v in listed order, %v in reverse order", keys[i], a[i], b[i])
		}
	}
}

// TestHashInstancesAgree: two Balancers built independently (as two siplb
// instances would) choose the same member for every key.
func TestHashInstancesAgree(t *testing.T) {
	keys := callIDs(5000)
	for _, alg := range []Algorithm{HashCallID, HashFromUser, HashToUser, HashRequestURI} {
		a := assignment(t, onePool(t, alg, members(7)).Table().Pool(0), keys)
		b := assignment(t, onePool(t, alg, members(7)).Table().Pool(0), keys)
		if !slices.Equal(a, b) {
			t.Errorf("%v: two instances disagree", alg)
		}
	}
}

// TestRendezvousMovedShare measures the keys that move when one member of N
// leaves (by configuration or health) or joins: about 1/N (1/(N+1)) of them,
// and only those of the departed (to the joined) member.
func TestRendezvousMovedShare(t *testing.T) {
	const nkeys = 100_000
	keys := callIDs(nkeys)
	tests := []struct {
		name    string
		n       int
		change  string // "remove", "down", "add"
		index   int
		weights []int
	}{
		{name: "4 remove first", n: 4, change: "remove", index: 0},
		{name: "4 remove last", n: 4, change: "remove", index: 3},
		{name: "4 health down", n: 4, change: "down", index: 1},
		{name: "4 add fifth", n: 4, change: "add"},
		{name: "10 remove", n: 10, change: "remove", index: 6},
		{name: "3 weighted remove", n: 3, change: "remove", index: 0, weights: []int{1, 2, 1}},
		{name: "3 weighted add", n: 3, change: "add", weights: []int{1, 2, 1}},
		{name: "16 remove", n: 16, change: "remove", index: 9},
		{name: "16 weighted remove", n: 16, change: "remove", index: 4, weights: cycle(16, 1, 2, 3)},
		{name: "16 weighted down", n: 16, change: "down", index: 11, weights: cycle(16, 1, 2, 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bcs := members(tc.n)
			total := 0
			for i := range bcs {
				if tc.weights != nil {
					bcs[i].Weight = tc.weights[i]
				}
				total += bcs[i].Weight
			}
			if tc.weights == nil {
				total = tc.n
			}
			bal := onePool(t, HashCallID, bcs)
			before := assignment(t, bal.Table().Pool(0), keys)
			var wantShare float64
			var target netip.AddrPort
			switch tc.change {
			case "remove", "down":
				target = bcs[tc.index].Addr
				wantShare = float64(max(bcs[tc.index].Weight, 1)) / float64(total)
				if tc.change == "down" {
					bal.SetHealth(target, false)
				} else {
					rest := slices.Delete(slices.Clone(bcs), tc.index, tc.index+1)
					if err := bal.Reload([]PoolConfig{{Name: "p", Backends: rest}}); err != nil {
						t.Fatal(err)
					}
				}
			case "add":
				target = backendAt(tc.n)
				wantShare = 1 / float64(total+1)
				more := append(slices.Clone(bcs), BackendConfig{Addr: target})
				if err := bal.Reload([]PoolConfig{{Name: "p", Backends: more}}); err != nil {
					t.Fatal(err)
				}
			}
			after := assignment(t, bal.Table().Pool(0), keys)
			moved := 0
			for i := range keys {
				if before[i] == after[i] {
					continue
				}
				moved++
				if tc.change == "add" && after[i] != target {
					t.Fatalf("key %q moved %v -> %v, not to the new member %v", keys[i], before[i], after[i], target)
				}
				if tc.change != "add" && before[i] != target {
					t.Fatalf("key %q moved %v -> %v though %v left", keys[i], before[i], after[i], target)
				}
			}
			share := float64(moved) / nkeys
			if math.Abs(share-wantShare) > 0.02 {
				t.Errorf("moved share = %.4f, want %.4f ± 0.02", share, wantShare)
			}
			t.Logf("moved %d of %d keys (%.4f, ideal %.4f)", moved, nkeys, share, wantShare)
		})
	}
}
