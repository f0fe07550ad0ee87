//go:build !race

package engine

import (
	"testing"

	"github.com/siplb/siplb/pool"
)

// Handing messages to a loop allocates nothing per message once its
// mailbox has grown: the two slices are reused and the buffers pooled (a
// real loop's Execute allocates gnet's task, once per wake, not here).
func TestMailboxAllocs(t *testing.T) {
	s := NewServerWith(newTestForwarder(t), Options{Loops: 1})
	loop := s.loopOf(&fakeLoop{})
	var cnt Counters
	msg := []byte("SIP/2.0 200 OK\r\n\r\n")
	batch := func() {
		for range 32 {
			s.post(loop, &cnt, mail{b: pool.Copy(msg), conn: 12345})
		}
		s.deliverMail(loop)
	}
	batch()
	if n := testing.AllocsPerRun(100, batch); n != 0 {
		t.Errorf("%.1f allocations per batch of 32 posts and their delivery, want 0", n)
	}
}

// BenchmarkMailbox is one message handed to a loop and delivered, in
// batches of 32 (a recvmmsg batch): the copy, the post under the lock, the
// loop's turn (here to a connection that has closed, so no write).
func BenchmarkMailbox(b *testing.B) {
	s := NewServerWith(newTestForwarder(b), Options{Loops: 1})
	loop := s.loopOf(&fakeLoop{})
	var cnt Counters
	msg := make([]byte, 500)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; b.Loop(); i++ {
		s.post(loop, &cnt, mail{b: pool.Copy(msg), conn: 12345})
		if i%32 == 31 {
			s.deliverMail(loop)
		}
	}
}
