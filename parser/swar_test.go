package parser

import (
	"bytes"
	"testing"
)

// swarInputs holds every byte value at every offset of a word, inside
// slices whose lengths straddle the eight-byte steps.
func swarInputs() [][]byte {
	var ins [][]byte
	for n := 0; n <= 19; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte("a"), n)
				b[pos] = byte(c)
				ins = append(ins, b)
			}
		}
		ins = append(ins, bytes.Repeat([]byte("~"), n))
	}
	// A flagged byte followed by bytes that a borrow could flag falsely.
	ins = append(ins, []byte("abc\x00\x01\x21\x22\x7e\x7f\x80defgh"), []byte("\x01\x00\x7f\x20xxxxxxxxxx"))
	return ins
}

func TestVisibleEnd(t *testing.T) {
	for _, in := range swarInputs() {
		want := len(in)
		for i, c := range in {
			if c <= ' ' || c == 0x7f {
				want = i
				break
			}
		}
		if got := visibleEnd(in, 0, len(in)); got != want {
			t.Errorf("visibleEnd(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestIsWordChars(t *testing.T) {
	for _, in := range swarInputs() {
		want := true
		for _, c := range in {
			if c <= ' ' || c >= 0x7f {
				want = false
			}
		}
		if got := isWordChars(in); got != want {
			t.Errorf("isWordChars(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestKnownName(t *testing.T) {
	pad := ": value-long-enough-for-the-fast-path\r\n"
	for id := HdrVia; id < numHeaderIDs; id++ {
		in := []byte(headerNames[id] + pad)
		got, end := knownName(in, 0)
		if end == 0 {
			continue // left to LookupHeader
		}
		if got != id || end != len(headerNames[id]) {
			t.Errorf("knownName(%q) = %v, %d, want %v, %d", in, got, end, id, len(headerNames[id]))
		}
	}
	for _, in := range []string{"Via :x" + pad, "via:" + pad, "Vias:" + pad, "From-X:" + pad, "Content-Lengthy:" + pad, "Q:" + pad, "Tox:" + pad} {
		if id, end := knownName([]byte(in), 0); end != 0 {
			t.Errorf("knownName(%q) = %v, %d, want a miss", in, id, end)
		}
	}
}
