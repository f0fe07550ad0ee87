package engine

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/siplb/siplb/parser"
)

const testMaxMsg = parser.DefaultMaxHeader + parser.DefaultMaxBody

// feed gives data to h as one read and returns the frames it yields
// (copies) and the error that ended it, if any.
func feed(b *memBudget, h *holder, data []byte) ([][]byte, error) {
	if !b.enter(h) {
		return nil, errEvicted
	}
	defer b.leave(h)
	var out [][]byte
	for {
		f, kind, err := b.nextFrame(h, &data, parser.Limits{}, testMaxMsg)
		if err != nil {
			return out, err
		}
		if f == nil {
			return out, nil
		}
		if kind != parser.FrameMessage {
			f = append([]byte("#"), f...) // mark pings and pongs
		}
		out = append(out, bytes.Clone(f))
	}
}

var errEvicted = errors.New("evicted")

// refFrames frames a whole stream at once: what any split must yield.
func refFrames(t *testing.T, s []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(s) > 0 {
		n, kind, err := parser.Frame(s, parser.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		f := s[:n]
		if kind != parser.FrameMessage {
			f = append([]byte("#"), f...)
		}
		out = append(out, bytes.Clone(f))
		s = s[n:]
	}
	return out
}

// However a stream is cut into reads, nextFrame yields the frames framing
// it whole yields, and holds nothing once it has been given all.
func TestNextFrameSplits(t *testing.T) {
	msg := optionsReq("127.0.0.1:5060", "split", 1)
	body := sip("MESSAGE sip:a@b SIP/2.0", "Via: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKm", "Call-ID: m", "CSeq: 1 MESSAGE",
		"Content-Length: 300")
	body = append(body, bytes.Repeat([]byte("x"), 300)...)
	var stream []byte
	stream = append(stream, msg...)
	stream = append(stream, "\r\n\r\n"...) // ping
	stream = append(stream, body...)
	stream = append(stream, "\r\n"...) // pong
	stream = append(stream, msg...)
	stream = append(stream, "\r\n\r"...) // "\r\n" pong, then "\r" of the next
	stream = append(stream, "\n"...)     // a bare LF pong
	stream = append(stream, body...)
	want := refFrames(t, stream)
	var closes atomic.Uint64
	for _, step := range []int{1, 2, 3, 7, 64, 500, len(stream)} {
		b := newMemBudget(1<<20, &closes)
		h := &holder{kill: func() {}}
		var got [][]byte
		for off := 0; off < len(stream); off += step {
			fs, err := feed(b, h, stream[off:min(off+step, len(stream))])
			if err != nil {
				t.Fatalf("reads of %d: %v", step, err)
			}
			got = append(got, fs...)
		}
		if len(got) != len(want) {
			t.Fatalf("reads of %d: %d frames, want %d", step, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("reads of %d: frame %d = %q, want %q", step, i, got[i][:min(40, len(got[i]))], want[i][:min(40, len(want[i]))])
			}
		}
		if h.heldLen() != 0 || b.Held() != 0 {
			t.Errorf("reads of %d: %d bytes held, %d charged after the whole stream", step, h.heldLen(), b.Held())
		}
	}
}

// A partial message is charged what its buffer holds; over budget the
// holders of the oldest partial messages are evicted first, and a holder
// whose own partial message is the oldest left is refused.
func TestBudgetEvictsOldest(t *testing.T) {
	var closes atomic.Uint64
	const limit = 10 * 3072
	b := newMemBudget(limit, &closes)
	partial := []byte("OPTIONS sip:x SIP/2.0\r\nX: " + strings.Repeat("a", 3000))
	var killed []int
	hs := make([]*holder, 15)
	for i := range hs {
		hs[i] = &holder{kill: func() { killed = append(killed, i) }}
		if _, err := feed(b, hs[i], partial); err != nil {
			t.Fatalf("holder %d: %v", i, err)
		}
		if b.Held() > limit {
			t.Fatalf("after holder %d: %d bytes charged, over the budget of %d", i, b.Held(), limit)
		}
	}
	if want := []int{0, 1, 2, 3, 4}; !equalInts(killed, want) {
		t.Fatalf("evicted %v, want the oldest %v", killed, want)
	}
	if closes.Load() != 5 {
		t.Errorf("closes = %d, want 5", closes.Load())
	}
	for i, h := range hs {
		if _, err := feed(b, h, []byte("x")); (err == errEvicted) != (i < 5) {
			t.Errorf("holder %d after the evictions: %v", i, err)
		}
	}
	// Holder 5 is now the oldest: asking for more than is left, it is the
	// one refused, and nobody younger is evicted.
	h5 := hs[5]
	if _, err := feed(b, h5, bytes.Repeat([]byte("a"), 8000)); err != errOverBudget {
		t.Errorf("the oldest holder growing over the budget: %v, want errOverBudget", err)
	}
	if closes.Load() != 5 {
		t.Errorf("a younger holder was evicted for the oldest one: closes = %d", closes.Load())
	}
	// A busy holder (its owner working on it) is skipped.
	if !b.enter(h5) {
		t.Fatal("holder 5 evicted")
	}
	h := &holder{kill: func() {}}
	if _, err := feed(b, h, bytes.Repeat([]byte("b"), 3000)); err != nil {
		t.Fatalf("new holder: %v", err)
	}
	b.leave(h5)
	if !equalInts(killed, []int{0, 1, 2, 3, 4, 6}) {
		t.Errorf("evicted %v: want 6, skipping busy 5", killed)
	}
	// Releasing gives everything back.
	for _, h := range append(hs, h) {
		if b.enter(h) {
			b.release(h)
		}
	}
	if b.Held() != 0 {
		t.Errorf("%d bytes charged after every holder released", b.Held())
	}
	b.mu.Lock()
	empty := b.head == nil && b.tail == nil
	b.mu.Unlock()
	if !empty {
		t.Errorf("holders left listed")
	}
}

// A TLS handshake is charged while it lasts and can be evicted like a
// partial message.
func TestBudgetHandshake(t *testing.T) {
	var closes atomic.Uint64
	b := newMemBudget(2*tlsHandshakeCharge, &closes)
	killed := 0
	h1 := &holder{kill: func() { killed++ }}
	h2 := &holder{kill: func() {}}
	if !b.holdHandshake(h1) || !b.holdHandshake(h2) {
		t.Fatal("two handshakes do not fit a budget of two")
	}
	h3 := &holder{kill: func() {}}
	if !b.holdHandshake(h3) || killed != 1 || closes.Load() != 1 {
		t.Fatalf("third handshake: killed %d, closes %d; want the first evicted", killed, closes.Load())
	}
	if b.enter(h1) {
		t.Error("an evicted handshake entered")
	}
	for _, h := range []*holder{h2, h3} {
		if b.enter(h) {
			b.release(h)
		}
	}
	if b.Held() != 0 {
		t.Errorf("%d bytes charged after the handshakes ended", b.Held())
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkNextFrame frames a read of two whole messages (zero copy) and
// a message split over two reads (through a pooled holder buffer).
func BenchmarkNextFrame(b *testing.B) {
	var closes atomic.Uint64
	mb := newMemBudget(1<<20, &closes)
	msg := optionsReq("127.0.0.1:5060", "bench", 1)
	two := append(append([]byte(nil), msg...), msg...)
	for _, bc := range []struct {
		name  string
		reads [][]byte
	}{
		{name: "whole", reads: [][]byte{two}},
		{name: "split", reads: [][]byte{msg[:100], msg[100:]}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := &holder{kill: func() {}}
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				mb.enter(h)
				for _, r := range bc.reads {
					for {
						f, _, err := mb.nextFrame(h, &r, parser.Limits{}, testMaxMsg)
						if err != nil {
							b.Fatal(err)
						}
						if f == nil {
							break
						}
					}
				}
				mb.leave(h)
			}
		})
	}
}
