package engine

import "testing"

// addWords separates fields, sees every byte, and does not mistake a zero
// byte for the end of a field.
func TestAddWordsSeparates(t *testing.T) {
	pairs := []struct{ a, b [2]string }{
		{[2]string{"ab", "c"}, [2]string{"a", "bc"}},
		{[2]string{"", "x"}, [2]string{"x", ""}},
		{[2]string{"", ""}, [2]string{"\x00", ""}},
		{[2]string{"12345678", "9"}, [2]string{"1234567", "89"}},
		{[2]string{"sip:bob@example.com", "a84b4c76e66710"}, [2]string{"sip:bob@example.con", "a84b4c76e66710"}},
		{[2]string{"abcdefghijklmnop", ""}, [2]string{"abcdefghijklmnoq", ""}},
	}
	for _, p := range pairs {
		ha := addWords(addWords(loopSeed, []byte(p.a[0])), []byte(p.a[1]))
		hb := addWords(addWords(loopSeed, []byte(p.b[0])), []byte(p.b[1]))
		if ha == hb {
			t.Errorf("%q and %q hash alike (%#x)", p.a, p.b, ha)
		}
	}
	// Every byte position of a 17-byte field counts.
	base := []byte("0123456789abcdefg")
	h0 := addWords(loopSeed, base)
	for i := range base {
		b := append([]byte(nil), base...)
		b[i] ^= 1
		if addWords(loopSeed, b) == h0 {
			t.Errorf("flipping byte %d does not change the hash", i)
		}
	}
}

func BenchmarkAddWords(b *testing.B) {
	p := []byte("sip:+15551234567@registrar.example.com;transport=udp")
	b.ReportAllocs()
	var h uint64
	for b.Loop() {
		h = addWords(h, p)
	}
	_ = h
}
