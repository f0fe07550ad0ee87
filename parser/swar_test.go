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
	for _, in := range []string{"Via :x" + pad, "via:" + pad, "Vias:" + pad, "From-X:" + pad, "Content-Lengthy:" + pad, "Q:" + pad, "Tox:" + pad,
		":" + pad, "::" + pad, "To" + pad[1:], "Content-Length" + pad[1:], "Contact\x00:" + pad, "\x00:" + pad, "Contentxlength:" + pad,
		"Content-Length" + pad[:1], "Max-Forwards-Foo:" + pad} {
		if id, end := knownName([]byte(in), 0); end != 0 {
			t.Errorf("knownName(%q) = %v, %d, want a miss", in, id, end)
		}
	}
}

func TestByteEq(t *testing.T) {
	for _, in := range swarInputs() {
		for len(in) >= 8 {
			x := uint64(in[0]) | uint64(in[1])<<8 | uint64(in[2])<<16 | uint64(in[3])<<24 |
				uint64(in[4])<<32 | uint64(in[5])<<40 | uint64(in[6])<<48 | uint64(in[7])<<56
			for _, c := range []byte{'@', '?', 0, 0x7f, 0x80, 0xff, 'a'} {
				m := byteEq(x, c)
				for k := range 8 {
					if got, want := m>>(8*k+7)&1 == 1, in[k] == c; got != want {
						t.Errorf("byteEq(%q, %q) byte %d = %v, want %v", in[:8], c, k, got, want)
					}
				}
			}
			in = in[8:]
		}
	}
}

func TestCheckSIPHostAgrees(t *testing.T) {
	seeds := []string{"bob@pbx.example.com;transport=udp", "pbx.example.com", "a?b@host", "a@b?c", "@", "a@", "", "?",
		"user@host@x?y", "alice:secret@[2001:db8::1]:5060;lr", "x@yyyyyyyyyyyyyyyyyy?", "????????@h", "@@@@@@@@@@@@"}
	for _, s := range seeds {
		for i := 0; i <= len(s); i++ {
			for _, c := range []byte("@?a\x00\xc0") {
				b := []byte(s[:i] + string(c) + s[i:])
				if got, want := checkSIPHost(b), refCheckSIPHost(b); got != want {
					t.Errorf("checkSIPHost(%q) = %v, reference %v", b, got, want)
				}
			}
		}
	}
}

// TestScanClass checks charClass against the bool tables it folds together
// and scanClass against a byte-by-byte scan, from several start offsets.
func TestScanClass(t *testing.T) {
	classes := []struct {
		cls   uint8
		table *[256]bool
	}{{clsParamValue, &isParamValue}, {clsHost, &isHostChar}}
	for _, c := range classes {
		for b := range 256 {
			if got := charClass[b]&c.cls != 0; got != c.table[b] {
				t.Errorf("charClass[%#x]&%#x = %v, table says %v", b, c.cls, got, c.table[b])
			}
		}
		for _, in := range swarInputs() {
			// Every start and end near both ends: an end before len(in)
			// puts bytes outside the scan after it, which must not count.
			for i := 0; i <= len(in); i++ {
				for e := max(i, len(in)-9); e <= len(in); e++ {
					if i > 3 && e-i > 9 {
						continue
					}
					want := i
					for want < e && c.table[in[want]] {
						want++
					}
					if got := scanClass(in, i, e, c.cls); got != want {
						t.Errorf("scanClass(%q, %d, %d, class %#x) = %d, want %d", in, i, e, c.cls, got, want)
					}
				}
			}
		}
	}
}
