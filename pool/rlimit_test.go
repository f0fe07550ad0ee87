package pool

import (
	"testing"
)

func TestMaxConnsFor(t *testing.T) {
	tests := []struct {
		nofile uint64
		want   int
	}{
		{nofile: 0, want: minConnsFor},
		{nofile: 64, want: minConnsFor},
		{nofile: 80, want: minConnsFor},
		{nofile: 90, want: 90 - 9 - 64},
		{nofile: 100, want: 100 - 10 - 64},
		{nofile: 1024, want: 1024 - 102 - 64},
		{nofile: 4096, want: 4096 - 409 - 64},
		{nofile: 20000, want: 20000 - 2000 - 64},
		{nofile: 1 << 20, want: DefaultMaxConns},
		{nofile: 1 << 62, want: DefaultMaxConns},
	}
	for _, tc := range tests {
		if got := MaxConnsFor(tc.nofile); got != tc.want {
			t.Errorf("MaxConnsFor(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}

func TestWithFileLimit(t *testing.T) {
	if got := (Limits{}).Defaults().MaxConns; got != DefaultMaxConns {
		t.Errorf("Defaults().MaxConns = %d, want %d (unchanged by the file limit)", got, DefaultMaxConns)
	}
	if got := (Limits{}).WithFileLimit(1024).Defaults().MaxConns; got != 858 {
		t.Errorf("WithFileLimit(1024): MaxConns = %d, want 858", got)
	}
	if got := (Limits{MaxConns: 5000}).WithFileLimit(1024).MaxConns; got != 5000 {
		t.Errorf("WithFileLimit kept no operator-set max_connections: got %d, want 5000", got)
	}
	if got := (Limits{}).WithFileLimit(0).Defaults().MaxConns; got != DefaultMaxConns {
		t.Errorf("WithFileLimit(0) (unknown) changed MaxConns to %d", got)
	}
}
