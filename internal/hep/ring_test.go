package hep

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"sync"
	"testing"
	"time"
)

// A ring hands its records over in order and intact, lap after lap (a
// record that would cross the end starts at the beginning, after a pad),
// is full when a record does not fit before the head, and takes records
// again once Run releases them.
func TestRingFullAndWrap(t *testing.T) {
	r := newRing(0) // the least: four records of the largest size
	size := uint64(len(r.buf))
	if size&(size-1) != 0 || size < 4*(recordHeader+maxRecord) {
		t.Fatalf("size %d: not a power of two with room for four largest records", size)
	}
	sizes := []int{1, 700, 5000, maxRecord, 8, 63}
	next := byte(0)
	var want [][]byte
	for lap := range 6 {
		want = want[:0]
		var used uint64
		for i := 0; ; i++ {
			n := sizes[(lap+i)%len(sizes)]
			pos, b, ok := r.reserve(n)
			if !ok {
				if used+recordHeader+align8(n) <= size-(recordHeader+maxRecord) {
					t.Fatalf("lap %d: full with %d of %d bytes used", lap, used, size)
				}
				break
			}
			used += recordHeader + align8(n)
			if len(b) != 0 || cap(b) != n {
				t.Fatalf("reserve(%d): len %d cap %d", n, len(b), cap(b))
			}
			b = b[:n]
			for j := range b {
				b[j] = next
			}
			next++
			want = append(want, b)
			r.commit(pos, n)
		}
		for i, w := range want {
			got := r.take()
			if !bytes.Equal(got, w) {
				t.Fatalf("lap %d: record %d: got %d bytes, want %d of %d", lap, i, len(got), len(w), w[0])
			}
		}
		if r.take() != nil {
			t.Fatalf("lap %d: a record taken that was not queued", lap)
		}
		r.discardAll()
	}
}

// discardAll takes and releases everything committed.
func (r *ring) discardAll() {
	for r.take() != nil {
	}
	r.release()
}

// A record reserved and not yet committed holds back what was queued
// behind it, and no producer waits for it.
func TestRingReservedNotCommitted(t *testing.T) {
	r := newRing(0)
	p0, b0, _ := r.reserve(10)
	p1, b1, _ := r.reserve(20)
	r.commit(p1, len(append(b1, make([]byte, 20)...)))
	if r.take() != nil {
		t.Fatal("took past a record still being written")
	}
	r.commit(p0, len(append(b0, make([]byte, 10)...)))
	if a, b, c := r.take(), r.take(), r.take(); len(a) != 10 || len(b) != 20 || c != nil {
		t.Fatalf("not taken in order once committed: %d, %d, %v", len(a), len(b), c)
	}
}

// A message's payload is its sender's choice. Frames that hold what a
// header of the next lap would read as, at every word, must not make Run
// take a record there that no producer has written: released bytes are
// zeroed.
func TestRingForgedHeaders(t *testing.T) {
	r := newRing(0)
	size := uint64(len(r.buf))
	for r.tail.Load() < size-(recordHeader+maxRecord) {
		pos, b, ok := r.reserve(4096)
		if !ok {
			t.Fatal("full")
		}
		b = b[:4096]
		for j := 0; j < len(b); j += 8 {
			// The header a record of 8 bytes at this word's position one
			// lap later would have.
			at := pos + recordHeader + uint64(j) + size
			binary.LittleEndian.PutUint64(b[j:], header(at, 0, 8))
		}
		r.commit(pos, len(b))
	}
	end := r.tail.Load()
	r.discardAll()
	// Records of 8 bytes, each committed and sent, up to the next lap and
	// into the bytes the forged frames held.
	for r.next < size+64 {
		pos, b, ok := r.reserve(8)
		if !ok {
			t.Fatal("full")
		}
		r.commit(pos, len(append(b, "12345678"...)))
		r.discardAll()
	}
	// Then one reserved, not committed, where a forged header was.
	if off := r.tail.Load() - size; off >= end {
		t.Fatalf("the test's record at %d is past the forged frames (%d)", off, end)
	}
	if _, _, ok := r.reserve(8); !ok {
		t.Fatal("full")
	}
	if got := r.take(); got != nil {
		t.Fatalf("took %d bytes at %d that no producer committed", len(got), r.next)
	}
}

// Producers on many goroutines at once with a consumer: every Capture is
// either sent or counted as dropped, each frame once, none torn.
func TestSenderConcurrentProducers(t *testing.T) {
	sink := listenUDP(t)
	sink.conn.SetReadBuffer(4 << 20)
	s := newTestSender(t, Config{Collector: sink.addr, QueueSize: 32})
	runSender(t, s)
	const producers, calls = 4, 500
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			in, out := testPackets(100 + p) // a size per producer
			for range calls {
				s.Capture(&in, &out)
			}
		})
	}
	got := make(map[int]int) // payload size: frames
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			sink.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := sink.conn.Read(buf)
			if err != nil {
				return
			}
			f, err := decode(buf[:n])
			if err != nil {
				t.Errorf("datagram: %v", err)
				return
			}
			got[len(f.chunks[chunkPayload])]++
		}
	}()
	wg.Wait()
	<-done
	st := s.Stats()
	if st.Sent+st.Dropped != 2*producers*calls {
		t.Errorf("sent %d + dropped %d, want %d frames", st.Sent, st.Dropped, 2*producers*calls)
	}
	total := 0
	for size, n := range got {
		if (size < 100 || size >= 100+producers) && (size < 108 || size >= 108+producers) {
			t.Errorf("%d frames of a payload of %d bytes, which nobody sent", n, size)
		}
		total += n
	}
	if uint64(total) != st.Sent {
		t.Errorf("collector got %d frames, Sent = %d", total, st.Sent)
	}
}

// A packet without a time is stamped with the time of the Capture call,
// in and out alike; one with a time keeps it.
func TestSenderStampsZeroTime(t *testing.T) {
	sink := listenUDP(t)
	s := newTestSender(t, Config{Collector: sink.addr})
	runSender(t, s)
	in, out := testPackets(100)
	in.Time, out.Time = time.Time{}, time.Time{}
	before := time.Now()
	s.Capture(&in, &out)
	after := time.Now()
	set := time.Unix(1764633600, 123456000)
	in.Time = set
	s.Capture(&in, nil)
	var stamps []time.Time
	for range 3 {
		f, err := decode(sink.read(t))
		if err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, time.Unix(int64(f.u32(chunkTimeSec)), int64(f.u32(chunkTimeUsec))*1000))
	}
	for i, at := range stamps[:2] {
		if at.Before(before.Truncate(time.Microsecond).Add(-time.Millisecond)) || at.After(after.Add(time.Millisecond)) {
			t.Errorf("frame %d stamped %v, want within [%v, %v]", i, at, before, after)
		}
	}
	if !stamps[0].Equal(stamps[1]) {
		t.Errorf("in stamped %v, out %v: want one reading for both", stamps[0], stamps[1])
	}
	if !stamps[2].Equal(set) {
		t.Errorf("a packet with a time was stamped %v, want %v", stamps[2], set)
	}
}

// A record committed as filler (skip) is passed over, and the records
// around it are taken.
func TestRingSkip(t *testing.T) {
	r := newRing(0)
	p0, b0, _ := r.reserve(5)
	r.commit(p0, len(append(b0, "first"...)))
	p1, _, _ := r.reserve(13)
	r.skip(p1, 13)
	p2, b2, _ := r.reserve(4)
	r.commit(p2, len(append(b2, "last"...)))
	if a, b, c := r.take(), r.take(), r.take(); string(a) != "first" || string(b) != "last" || c != nil {
		t.Fatalf("took %q, %q, %v", a, b, c)
	}
}

// A commit reports a wake-up once for each multiple of half the ring that
// its record reaches past or starts on, whatever the records' sizes: the
// record after the pad at the end of a lap reports the lap's end.
func TestRingWakeStep(t *testing.T) {
	for _, n := range []int{24, 1000, 1500, 40000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			s := newTestSender(t, Config{Collector: listenUDP(t).addr})
			r := s.queue
			half := uint64(len(r.buf)) / 2
			wakes, end := 0, uint64(0)
			for end < 3*uint64(len(r.buf)) {
				p, b, ok := r.reserve(n)
				if !ok {
					s.discard()
					if p, b, ok = r.reserve(n); !ok {
						t.Fatal("no room in an empty ring")
					}
				}
				end = p + recordHeader + align8(n)
				want := (p-1)/half != (end-1)/half // p 0: the first record reports
				if r.commit(p, len(b[:n])) != want {
					t.Fatalf("record at %d..%d: wake %v, want %v (half %d)", p, end, !want, want, half)
				}
				if want {
					wakes++
				}
			}
			if want := int((end-1)/half) + 1; wakes != want {
				t.Errorf("%d wake-ups over %d bytes of a ring of %d, want %d (2 a lap)", wakes, end, len(r.buf), want)
			}
		})
	}
}
