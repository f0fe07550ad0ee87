package engine

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/pool"
)

// A TCP peer that does not read cannot make siplb hold more than
// streams.max_write_queue for it: the write that leaves more in gnet's
// buffer closes the connection, counted as a slow reader, and what the
// peer then reads is whole messages in order, then the end of the stream.
// Under the limit every message arrives.
func TestWriteQueueBound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int // streams.max_write_queue; 0: the default
		n, size int // messages written before the client reads, bytes of body each
		closed  bool
	}{
		{name: "over the limit", limit: pool.MinMaxWriteQueue, n: 128, size: 8000, closed: true},
		{name: "under the default", n: 64, size: 8000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uas := startUAS(t)
			_, lb, srv := startMixedLB(t, pool.Limits{MaxWriteQueue: tc.limit}, balance.BackendConfig{Addr: uas.addr})
			c, sc := smallClient(t, srv, lb)

			var cnt Counters
			for i := 1; i <= tc.n; i++ {
				srv.write(nil, &cnt, sc, numbered("w", i, tc.size))
			}
			if tc.closed {
				deadline := time.Now().Add(5 * time.Second)
				for srv.Stats().SlowReaders == 0 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if got := srv.Stats().SlowReaders; got != 1 {
					t.Fatalf("SlowReaders %d after %d KB to a client that does not read, limit %d KB; want 1",
						got, tc.n*tc.size>>10, tc.limit>>10)
				}
			} else {
				time.Sleep(100 * time.Millisecond) // everything queued before the client reads
			}

			seq, err := readNumbered(t, c, tc.n, 10*time.Second)
			switch {
			case err != nil:
				t.Fatalf("after message %d: %v", seq, err)
			case tc.closed && seq >= tc.n:
				t.Errorf("all %d messages arrived though the connection was closed", seq)
			case !tc.closed && seq != tc.n:
				t.Errorf("%d messages arrived before the end of the stream, want %d (drops %v)", seq, tc.n, srv.Stats().Drops)
			}
			if !tc.closed {
				if got := srv.Stats().SlowReaders; got != 0 {
					t.Errorf("SlowReaders %d under the limit, want 0", got)
				}
			}
			t.Logf("%d of %d messages read; SlowReaders %d", seq, tc.n, srv.Stats().SlowReaders)
		})
	}
}

// readNumbered reads up to n numbered messages from c (readResponses:
// until n, the end of the stream or d) and returns the number of the last
// one; a damaged or out-of-order message is an error.
func readNumbered(t *testing.T, c net.Conn, n int, d time.Duration) (int, error) {
	t.Helper()
	seq := 0
	for _, msg := range readResponses(t, c, n, d) {
		_, i, err := checkNumbered(msg)
		if err == nil && i != seq+1 {
			err = fmt.Errorf("message %d after %d", i, seq)
		}
		if err != nil {
			return seq, err
		}
		seq = i
	}
	return seq, nil
}

// Streams whose peers do not read, each under streams.max_write_queue,
// cannot together hold more than the loop's share of streams.write_budget:
// the fullest is closed first, and the rest, under the budget, keep
// everything they were sent.
func TestWriteBudget(t *testing.T) {
	uas := startUAS(t)
	_, lb, srv := newMixedLB(t, Options{Loops: 1, Limits: pool.Limits{
		MaxWriteQueue: 1 << 20, WriteBudget: 1 << 20,
	}}, balance.BackendConfig{Addr: uas.addr})
	runServerT(t, srv)
	type client struct {
		c  net.Conn
		sc *streamConn
		n  int
	}
	// 96 and 64 messages of 8 KB: about 750 and 500 KB each, both under
	// max_write_queue, over the 1 MiB budget together.
	var cs []client
	for _, n := range []int{96, 64} {
		c, sc := smallClient(t, srv, lb)
		cs = append(cs, client{c: c, sc: sc, n: n})
	}
	var cnt Counters
	for _, cl := range cs {
		for i := 1; i <= cl.n; i++ {
			srv.write(nil, &cnt, cl.sc, numbered("w", i, 8000))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().WriteBudgetCloses == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := srv.Stats()
	if st.WriteBudgetCloses != 1 || st.SlowReaders != 0 {
		t.Fatalf("WriteBudgetCloses %d, SlowReaders %d; want 1 and 0", st.WriteBudgetCloses, st.SlowReaders)
	}
	for i, cl := range cs {
		seq, err := readNumbered(t, cl.c, cl.n, 10*time.Second)
		switch {
		case err != nil:
			t.Fatalf("client %d, after message %d: %v", i, seq, err)
		case i == 0 && seq >= cl.n:
			t.Errorf("the fullest client got all %d messages though it was closed", seq)
		case i == 1 && seq != cl.n:
			t.Errorf("the other client got %d of %d messages", seq, cl.n)
		}
	}
}
