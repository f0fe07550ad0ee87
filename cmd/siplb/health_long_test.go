//go:build long

package main

import "testing"

// TestHealthIgnoresOptionsLong is TestHealthIgnoresOptions with the default
// health settings for the real 60 s (65 s of calls), so it builds only with
// the long tag: go test -tags long -run TestHealthIgnoresOptionsLong ./cmd/siplb/
func TestHealthIgnoresOptionsLong(t *testing.T) {
	runIgnoresOptions(t, sippPath(t), buildSiplb(t), "", 10, 650, false)
}
