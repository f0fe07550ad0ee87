package engine

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/pool"
)

// Direct writes. A message for a plain TCP stream that a goroutine other
// than the stream's owner loop holds (a batched UDP socket's goroutine with
// a backend's response, another loop, a TLS reader, a DNS retry) is written
// by that goroutine itself, straight to the socket, whenever nothing is
// waiting to be written on it; only otherwise is it handed to the owner
// loop's mailbox. The hand-off costs a wake-up of another thread and, on a
// busy box, a wait for the scheduler to run it: on the project's 2-core VM
// 0.7-1.5 ms at p99 for a TCP client answered by a UDP backend.
//
// The rules that keep the bytes of a stream whole and in order:
//
//   - Every write siplb makes to a stream's socket holds the stream's
//     sockLock: the owner loop's flush, streamBroken's answer, the pending
//     messages of a connection opened (openOutbound), and direct writes. Two
//     writers can thus never interleave within one message.
//   - gnet writes a stream outside the lock only what its own outbound
//     buffer holds (when the socket turns writable, and in close). That
//     buffer fills only by the loop's c.Write, under the lock, and the loop
//     then notes it (buffered); OnOpen returns no bytes for gnet to write.
//     A direct write is made only when nothing waits: gnet's buffer empty
//     at the loop's last write, no mail for the stream posted and not yet
//     written, and no rest of an earlier direct write. gnet empties its
//     buffer without telling; buffered stays set until the loop writes the
//     stream again, so a stale mark costs the mailbox's path, never order.
//   - A direct write that the kernel takes only in part leaves its rest in
//     the lock (rest) and posts a wake-up mail; the loop writes rest first
//     whenever it next writes the stream, before anything of its own. A
//     write the kernel refuses whole (EAGAIN, or an error the loop will meet
//     too and close the stream for) is posted as a mail. Either way later
//     writers see something waiting and queue behind it.
//   - gnet's eventloop.close calls OnClose before it closes the descriptor,
//     and OnClose marks the lock closed while holding it (sockClosed): no
//     direct write can reach the descriptor number after that, when the
//     kernel may have given it to another connection, whose peer would read
//     another client's messages. gnet closes a stream's descriptor nowhere
//     else after OnOpen (register0 closes one that never opened).
//
// The registry publishes a stream before OnOpen sets its id; OnOpen holds
// the lock around both, and a direct writer reads the id under it.
//
// A goroutine writes many streams, but holds one sockLock at a time, and
// under it takes only the mailbox's lock, which nothing holds while waiting
// for a sockLock: no lock order can deadlock.

// sockLock guards the writes to one TCP stream's socket (streamConn.w).
type sockLock struct {
	mu       sync.Mutex
	fd       int          // the socket; written to only while !stop
	stop     bool         // OnClose ran (the fd may be another's now) or the stream is half-closed: no direct write
	buffered bool         // gnet's outbound buffer held bytes after the loop's last write (may be stale: true costs the mailbox, never order)
	mails    int32        // mails for the stream posted and not yet written by the loop
	rest     *pool.Buffer // the unsent end of a direct write, written by the loop before anything else

	// Owned by the stream's loop, never read elsewhere.
	held     bool  // the loop holds mu around a gnet write, which may call OnClose before it returns
	gathered int32 // mails the loop gathered for the stream since it last wrote it
}

// lockSock takes sc's write lock for its owner loop.
func (sc *streamConn) lockSock() {
	sc.w.mu.Lock()
	sc.w.held = true
}

// unlockSock notes, for direct writers, what the loop's writes since
// lockSock leave waiting, and lets go of the lock.
func (sc *streamConn) unlockSock() {
	w := &sc.w
	w.mails -= w.gathered
	w.gathered = 0
	if !sc.closed {
		w.buffered = sc.c.OutboundBuffered() > 0
	}
	w.held = false
	w.mu.Unlock()
}

// writeSock writes p on sc through gnet, after the rest of a direct write
// if one waits, and reports whether the stream is still open. The caller
// is the owner loop and holds the lock (lockSock). A failed write closes
// the stream (gnet, calling OnClose before it returns). A write that
// leaves more than streams.max_write_queue in gnet's buffer (a peer that
// does not read) closes it too, by gnet's Close (at the loop's next turn):
// nothing is written to it from then on.
func (sc *streamConn) writeSock(p []byte) bool {
	if sc.slow {
		return false
	}
	if !sc.writeGnet(p) {
		return false
	}
	l := sc.loop
	q := sc.c.OutboundBuffered()
	if q > l.srv.lim.MaxWriteQueue {
		sc.slow = true
		l.wq.closing += int64(q)
		l.s.Counters.SlowReaders.Add(1)
		sc.c.Close()
	}
	if q != sc.queued {
		l.noteQueued(sc, q) // may close sc too (writequeue.go)
	}
	if sc.slow {
		sc.w.stop = true // no direct write from now on; the caller holds the lock
		return false
	}
	return true
}

// writeGnet is writeSock's write: the rest of a direct write, then p.
func (sc *streamConn) writeGnet(p []byte) bool {
	if r := sc.w.rest; r != nil && !sc.closed {
		sc.w.rest = nil // taken first: OnClose puts back what it finds
		_, err := sc.c.Write(r.B)
		pool.PutBuffer(r)
		if err != nil {
			return false
		}
	}
	if len(p) == 0 || sc.closed {
		return !sc.closed
	}
	_, err := sc.c.Write(p)
	return err == nil && !sc.closed
}

// sockClosed is OnClose's part: no direct write from now on. It runs on
// the owner loop, inside a write of its own (held) or not.
func (sc *streamConn) sockClosed() {
	w := &sc.w
	if !w.held {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	w.stop = true
	if w.rest != nil {
		pool.PutBuffer(w.rest)
		w.rest = nil
	}
}

// writeOff writes out on the TCP stream sc from a goroutine other than
// sc's owner loop: straight to the socket when nothing waits on it, else
// (and for whatever the kernel does not take) through the loop's mailbox,
// so the stream's bytes keep their order. It charges cnt and does not
// allocate on the direct path.
func (s *Server) writeOff(cnt *Counters, sc *streamConn, out []byte) {
	if len(out) == 0 {
		return
	}
	if now := s.now.Load(); sc.lastUsed.Load() != now {
		sc.lastUsed.Store(now)
	}
	w := &sc.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop || w.buffered || w.mails > 0 || w.rest != nil {
		cnt.DirectFallbacks.Add(1)
		s.postLocked(cnt, sc, mail{b: pool.Copy(out), conn: sc.id})
		return
	}
	n := writeFD(w.fd, out)
	switch {
	case n == len(out):
		cnt.DirectWrites.Add(1)
	case n > 0:
		// The socket is full: the rest waits in the lock for the loop,
		// which gnet tells when the socket can take more.
		cnt.DirectFallbacks.Add(1)
		w.rest = pool.Copy(out[n:])
		s.postLocked(cnt, sc, mail{conn: sc.id})
	default:
		// Nothing was written (EAGAIN, or an error the loop will meet on
		// its own write and close the stream for): the loop writes it.
		cnt.DirectFallbacks.Add(1)
		s.postLocked(cnt, sc, mail{b: pool.Copy(out), conn: sc.id})
	}
}

// postLocked posts m, a mail for sc, counting it as waiting; the caller
// holds sc's lock, so writers after it queue behind it.
func (s *Server) postLocked(cnt *Counters, sc *streamConn, m mail) {
	if s.post(sc.loop, cnt, m) {
		sc.w.mails++
	}
}

// writeFD writes p to the non-blocking socket fd as far as the kernel
// takes it now, and returns how much it took (0 on any error).
func writeFD(fd int, p []byte) int {
	for {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0
		}
		return n
	}
}

// streamBatch gathers what one goroutine writes to streams of other loops
// while it handles a batch (a loop's event, a recvmmsg batch), so that each
// stream is written once at the end of it, as the owner loop's flush does
// for its own. The slices and buffers are reused: no allocation in steady
// state. Owned by one goroutine.
type streamBatch struct {
	conns []*streamConn
	bufs  []*[]byte // bufs[i] holds what conns[i] gets, from pool.GetBytes
}

// add appends out to what sc gets at the end of the batch.
func (b *streamBatch) add(sc *streamConn, out []byte) {
	for i, c := range b.conns {
		if c == sc { // a batch is at most a few dozen messages: a scan is cheapest
			b.bufs[i] = pool.AppendBytes(b.bufs[i], out)
			return
		}
	}
	b.conns = append(b.conns, sc)
	b.bufs = append(b.bufs, pool.AppendBytes(nil, out))
}

// flush writes each stream what the batch gathered for it (writeOff).
func (s *Server) flushBatch(b *streamBatch, cnt *Counters) {
	for i, sc := range b.conns {
		s.writeOff(cnt, sc, *b.bufs[i])
		pool.PutBytes(b.bufs[i])
	}
	clear(b.conns)
	clear(b.bufs)
	b.conns, b.bufs = b.conns[:0], b.bufs[:0]
}

// gatherBatched holds out for sc until the end of the recvmmsg batch that
// the goroutine of batched UDP socket fd is handling (flushStreams).
func (s *Server) gatherBatched(fd int, sc *streamConn, out []byte) {
	b := s.batchOut[fd].Load()
	if b == nil {
		b = new(streamBatch) // once per socket
		s.batchOut[fd].Store(b)
	}
	b.add(sc, out)
}

// flushStreams is the end of a recvmmsg batch of batched UDP socket fd, on
// its goroutine: the streams written to during it are written.
func (s *Server) flushStreams(fd int, cnt *Counters) {
	if fd < 0 || fd >= maxFD {
		return
	}
	if b := s.batchOut[fd].Load(); b != nil && len(b.conns) > 0 {
		s.flushBatch(b, cnt)
	}
}
