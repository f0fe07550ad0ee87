package fnv1a

import (
	"hash/fnv"
	"testing"
)

// Add agrees with the standard library's FNV-1a 64, and continuing a hash
// equals hashing the concatenation.
func TestAddMatchesStdlib(t *testing.T) {
	for _, s := range []string{"", "a", "foobar", "a84b4c76e66710@pc33.atlanta.com", "\xff\x00"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := Add(Offset, []byte(s)), h.Sum64(); got != want {
			t.Errorf("Add(%q) = %#x, want %#x", s, got, want)
		}
		if AddString(Offset, s) != Add(Offset, []byte(s)) {
			t.Errorf("AddString(%q) differs from Add", s)
		}
		if len(s) > 1 && Add(Add(Offset, []byte(s[:1])), []byte(s[1:])) != Add(Offset, []byte(s)) {
			t.Errorf("Add(%q) does not continue", s)
		}
	}
	if Add(Sep(Add(Offset, []byte("ab"))), []byte("c")) == Add(Sep(Add(Offset, []byte("a"))), []byte("bc")) {
		t.Error("Sep does not separate fields")
	}
}

func TestAllocs(t *testing.T) {
	b := []byte("call-id@host")
	var h uint64
	if n := testing.AllocsPerRun(100, func() { h = Sep(Add(Offset, b)) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
	_ = h
}
