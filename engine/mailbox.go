package engine

import (
	"context"
	"net/netip"
	"sync"

	"github.com/panjf2000/gnet/v2"

	"github.com/siplb/siplb/pool"
)

// mailbox carries the stream writes that reach an event loop from outside
// it: a batched UDP socket's goroutine answering a TCP client or sending a
// UDP client's request to a TCP backend, a TLS reader, a DNS retry, another
// loop. Senders append under a lock; the first message since the loop last
// emptied the box queues one Execute, and the loop then takes every message
// gathered by then and writes them with one flush per connection. A batch of
// datagrams for one loop's streams thus costs one wake-up of the loop and
// one Execute (gnet allocates a task for it), where gnet's AsyncWrite and
// Execute per message cost a wake-up request and two allocations each.
//
// The box holds at most maxMail messages: past that (the loop is not keeping
// up), a message is dropped and counted, never queued without bound. A
// wake-up mail (no bytes: the rest of a direct write waits in the stream's
// lock, directwrite.go) is never dropped: a stream has at most one at a
// time, so they are bounded by the streams open.
//
// Stream writes come here only when a direct write cannot be made
// (directwrite.go); the mails for one stream are posted under its lock and
// counted there, so a direct write never overtakes them.
type mailbox struct {
	mu     sync.Mutex
	items  []mail
	spare  []mail // the slice the loop last emptied, reused for the next
	waking bool   // an Execute is queued that has not taken the items yet
	run    gnet.Runnable
}

// mail is one message for a loop's streams: written on the connection conn
// if it still exists, or (conn 0) sent to dst over leg, as sendStream does.
// The loop owns b once the message is in the box and puts it back. A mail
// for conn with no b only wakes the loop to write the stream (what rests of
// a direct write).
type mail struct {
	b    *pool.Buffer
	conn pool.ConnID
	leg  *Leg
	dst  netip.AddrPort
}

// maxMail bounds the messages waiting in one loop's mailbox.
const maxMail = 4096

// post hands m to loop, waking it when the box was empty, and reports
// whether m is in the box; cnt is charged when the box is full or the loop
// has stopped. It takes m.b.
func (s *Server) post(loop *loopState, cnt *Counters, m mail) bool {
	mb := &loop.mail
	mb.mu.Lock()
	if len(mb.items) >= maxMail && m.b != nil {
		mb.mu.Unlock()
		pool.PutBuffer(m.b)
		cnt.Drops[DropSendError].Add(1)
		return false
	}
	mb.items = append(mb.items, m)
	wake := !mb.waking
	mb.waking = true
	mb.mu.Unlock()
	if !wake {
		return true
	}
	if err := loop.el.Execute(context.Background(), mb.run); err != nil {
		// The engine is stopping: nothing will take the box.
		mb.mu.Lock()
		items := mb.items
		mb.items = nil
		mb.waking = false
		mb.mu.Unlock()
		for i := range items {
			if items[i].b != nil {
				pool.PutBuffer(items[i].b)
				cnt.Drops[DropSendError].Add(1)
			}
		}
		return false
	}
	return true
}

// deliverMail is the loop's turn on its mailbox: it takes what waits and
// writes it, then flushes.
func (s *Server) deliverMail(loop *loopState) {
	mb := &loop.mail
	mb.mu.Lock()
	items := mb.items
	mb.items, mb.spare = mb.spare, nil
	mb.waking = false
	mb.mu.Unlock()
	cnt := &loop.s.Counters
	for i := range items {
		m := &items[i]
		switch {
		case m.conn == 0:
			s.sendStream(loop, m.leg, m.dst, m.b.B)
		default:
			sc := s.reg.Get(m.conn)
			switch {
			case sc == nil || sc.loop != loop || sc.closed:
				if m.b != nil {
					cnt.Drops[DropConnGone].Add(1)
				}
			case m.b == nil:
				sc.w.gathered++
				s.markDirty(loop, sc)
			default:
				sc.w.gathered++
				s.gather(loop, sc, m.b.B)
			}
		}
		if m.b != nil {
			pool.PutBuffer(m.b)
		}
		*m = mail{}
	}
	loop.flush()
	mb.mu.Lock()
	if mb.spare == nil {
		mb.spare = items[:0]
	}
	mb.mu.Unlock()
}

// newMailbox readies loop's mailbox.
func (s *Server) newMailbox(loop *loopState) {
	loop.mail.run = gnet.RunnableFunc(func(context.Context) error {
		s.deliverMail(loop)
		return nil
	})
}
