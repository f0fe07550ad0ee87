package parser

import (
	"strconv"
	"testing"
)

// TestAppendUint checks appendUint against strconv at every value up to
// past five digits and at the extremes.
func TestAppendUint(t *testing.T) {
	check := func(n int) {
		if got, want := string(appendUint([]byte("x"), n)), "x"+strconv.FormatUint(uint64(n), 10); got != want {
			t.Fatalf("appendUint(%d) = %q, want %q", n, got, want)
		}
	}
	for n := range 200001 {
		check(n)
	}
	for _, n := range []int{-1, -99999, 1 << 31, 1<<63 - 1} {
		check(n)
	}
}
