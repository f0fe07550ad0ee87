package engine

import (
	"testing"
)

// The MACs each forwarded request pays: one branch MAC, one flow MAC (a
// client's Record-Route), and on the way back one branch verification.
func BenchmarkMAC(b *testing.B) {
	k := deriveKeys("benchmark secret 0123456789")
	callID := []byte("a84b4c76e66710@pc33.atlanta.example.com")
	token := []byte("u7f0000019c40")
	b.Run("branch", func(b *testing.B) {
		b.ReportAllocs()
		var x uint64
		for i := range b.N {
			x += k.branch.branchMAC(1, uint64(i), 7, 0x1234)
		}
		sink = x
	})
	b.Run("flow", func(b *testing.B) {
		b.ReportAllocs()
		var x uint64
		for range b.N {
			x += k.flow.flowMAC(token, callID)
		}
		sink = x
	})
}

var sink uint64

func TestMACKindsDiffer(t *testing.T) {
	k := deriveKeys("s3cret s3cret s3cret")
	kinds := []macKey{k.branch, k.flow, k.contact, k.path}
	for i := range kinds {
		for j := range i {
			if kinds[i] == kinds[j] {
				t.Fatalf("token kinds %d and %d share a key", i, j)
			}
		}
	}
	if deriveKeys("s3cret s3cret s3creu").branch == k.branch {
		t.Fatal("different secrets, same key")
	}
	a := k.flow.flowMAC([]byte("u7f00000113c4"), []byte("call-1"))
	if a == k.flow.flowMAC([]byte("u7f00000113c4"), []byte("call-2")) ||
		a == k.flow.flowMAC([]byte("u7f00000113c5"), []byte("call-1")) {
		t.Fatal("flow MAC ignores its token or its Call-ID")
	}
	if k.path.pathMAC([]byte("u7f00000113c4")) == k.path.pathMAC([]byte("u7f00000113c5")) {
		t.Fatal("path MAC ignores its token")
	}
	if testing.AllocsPerRun(100, func() { k.flow.flowMAC([]byte("u7f00000113c4"), []byte("call-1")) }) != 0 {
		t.Fatal("flow MAC allocates")
	}
}
