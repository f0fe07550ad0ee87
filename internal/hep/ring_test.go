package hep

import (
	"sync"
	"testing"
	"time"
)

// A ring hands its slots over in order, is full when every slot is queued
// or being sent, and frees a slot for the next round on release.
func TestRingFullAndWrap(t *testing.T) {
	r := newRing(3, false) // rounded up to 4
	if len(r.slots) != 4 {
		t.Fatalf("%d slots, want 4", len(r.slots))
	}
	for round := range 3 {
		for i := range 4 {
			sl, pos := r.claim()
			if sl == nil {
				t.Fatalf("round %d: slot %d not free", round, i)
			}
			if want := uint64(4*round + i); pos != want {
				t.Fatalf("round %d: position %d, want %d", round, pos, want)
			}
			sl.frames = int(pos)
			sl.publish(pos)
		}
		if sl, _ := r.claim(); sl != nil {
			t.Fatalf("round %d: a fifth slot claimed of four", round)
		}
		var taken []*slot
		for sl := r.take(); sl != nil; sl = r.take() {
			if want := 4*round + len(taken); sl.frames != want {
				t.Errorf("round %d: took position %d, want %d", round, sl.frames, want)
			}
			taken = append(taken, sl)
		}
		if len(taken) != 4 {
			t.Fatalf("round %d: took %d, want 4", round, len(taken))
		}
		if sl, _ := r.claim(); sl != nil {
			t.Fatalf("round %d: a slot claimed while all are being sent", round)
		}
		for _, sl := range taken {
			r.release(sl)
		}
	}
}

// A slot claimed and not yet published holds back what was queued behind
// it, and no producer waits for it.
func TestRingClaimedNotPublished(t *testing.T) {
	r := newRing(4, false)
	first, p0 := r.claim()
	second, p1 := r.claim()
	second.publish(p1)
	if r.take() != nil {
		t.Fatal("took past a slot still being filled")
	}
	first.publish(p0)
	if r.take() != first || r.take() != second || r.take() != nil {
		t.Fatal("not taken in order once published")
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
