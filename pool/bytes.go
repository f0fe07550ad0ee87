package pool

import (
	"math/bits"
	"sync"
)

// Byte slices by size class, for buffers whose size follows what a message
// needs (a partly received stream message) and that go back when it is
// done. The classes are 2^k and 3·2^(k-1) bytes from 256 B to 4 MiB, so a
// slice wastes at most a third of its capacity; a larger need gets a slice
// of its own that is never pooled.
const (
	minClassShift = 8  // 256 B
	maxClassShift = 22 // 4 MiB
	numClasses    = 2*(maxClassShift-minClassShift) + 1
)

var classPools [numClasses]sync.Pool

// classOf returns the index of the smallest class holding n bytes, and
// false when n is larger than every class.
func classOf(n int) (int, bool) {
	if n <= 1<<minClassShift {
		return 0, true
	}
	if n > 1<<maxClassShift {
		return 0, false
	}
	k := bits.Len(uint(n - 1)) // 2^(k-1) < n <= 2^k
	i := 2 * (k - minClassShift)
	if n <= 3<<(k-2) {
		i-- // 3·2^(k-2) fits: the class between 2^(k-1) and 2^k
	}
	return i, true
}

// classSize is the capacity of class i.
func classSize(i int) int {
	k := minClassShift + (i+1)/2
	if i%2 == 1 {
		return 3 << (k - 2)
	}
	return 1 << k
}

// BytesCap is the capacity GetBytes(n) returns.
func BytesCap(n int) int {
	if i, ok := classOf(n); ok {
		return classSize(i)
	}
	return n
}

// GetBytes returns an empty slice with room for at least n bytes, of
// capacity BytesCap(n), from the pool of its class. The caller owns it
// until PutBytes.
func GetBytes(n int) *[]byte {
	i, ok := classOf(n)
	if !ok {
		b := make([]byte, 0, n)
		return &b
	}
	if p, _ := classPools[i].Get().(*[]byte); p != nil {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, classSize(i))
	return &b
}

// PutBytes gives p back for reuse; the caller must not touch it after. A
// slice whose capacity is not a class (grown by append, or larger than
// every class) is left to the collector.
func PutBytes(p *[]byte) {
	if p == nil {
		return
	}
	c := cap(*p)
	i, ok := classOf(c)
	if !ok || classSize(i) != c {
		return
	}
	*p = (*p)[:0]
	classPools[i].Put(p)
}

// AppendBytes appends b to *p and returns p, or, when *p has no room, a
// slice of a larger class holding both, having given p back. p may be nil.
func AppendBytes(p *[]byte, b []byte) *[]byte {
	if p == nil {
		p = GetBytes(len(b))
	} else if n := len(*p) + len(b); n > cap(*p) {
		np := GetBytes(n)
		*np = append(*np, *p...)
		PutBytes(p)
		p = np
	}
	*p = append(*p, b...)
	return p
}
