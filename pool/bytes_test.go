package pool

import "testing"

func TestBytesClasses(t *testing.T) {
	tests := []struct{ n, want int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 384}, {384, 384}, {385, 512},
		{513, 768}, {1000, 1024}, {1025, 1536}, {60 << 10, 64 << 10}, {65 << 10, 96 << 10},
		{80 << 10, 96 << 10}, {97 << 10, 128 << 10}, {4 << 20, 4 << 20}, {4<<20 + 1, 4<<20 + 1},
	}
	for _, tc := range tests {
		if got := BytesCap(tc.n); got != tc.want {
			t.Errorf("BytesCap(%d) = %d, want %d", tc.n, got, tc.want)
		}
		p := GetBytes(tc.n)
		if len(*p) != 0 || cap(*p) != tc.want {
			t.Errorf("GetBytes(%d): len %d cap %d, want 0 and %d", tc.n, len(*p), cap(*p), tc.want)
		}
		PutBytes(p)
	}
	// Every class wastes at most a third of its capacity: the class below
	// is at least 2/3 of it.
	for i := 1; i < numClasses; i++ {
		if lo, hi := classSize(i-1), classSize(i); lo*3 < hi*2-1 || lo >= hi {
			t.Errorf("classes %d and %d: %d then %d", i-1, i, lo, hi)
		}
	}
}

func TestAppendBytes(t *testing.T) {
	var p *[]byte
	var want []byte
	for i := range 100 {
		chunk := make([]byte, 37+i)
		for j := range chunk {
			chunk[j] = byte(i)
		}
		p = AppendBytes(p, chunk)
		want = append(want, chunk...)
		if string(*p) != string(want) || cap(*p) != BytesCap(cap(*p)) {
			t.Fatalf("after %d appends: len %d cap %d, contents equal %v", i+1, len(*p), cap(*p), string(*p) == string(want))
		}
	}
	PutBytes(p)
}
