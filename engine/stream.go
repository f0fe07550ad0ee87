package engine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// streamConn is one TCP connection, accepted from a client or opened to a
// destination, owned by the event loop it was registered on: only that loop
// reads it, writes it through gnet or closes it; other goroutines write a
// plain TCP stream's socket themselves when nothing waits on it, under w,
// or hand the write to the loop (directwrite.go).
type streamConn struct {
	c       gnet.Conn  // a TCP stream served by a gnet loop; nil for TLS
	tls     *tlsStream // a TLS stream served by goroutines of its own; nil for TCP
	ws      *wsStream  // a WebSocket (ws, wss) served by goroutines of its own (ws.go); nil otherwise
	id      pool.ConnID
	peer    netip.AddrPort
	leg     *Leg
	loop    *loopState
	inbound bool
	dest    netip.AddrPort // outbound: the destination it was opened to

	partialSince int64 // UnixNano since a message has been only partly read, 0 when none
	linger       int64 // UnixNano when a stream answered and half-closed after a framing error is closed; 0 when none
	closed       bool  // OnClose has run (TCP)
	slow         bool  // closed for leaving too much unread: streams.max_write_queue, streams.write_budget (writeSock); owned by the loop
	queued       int   // what gnet's outbound buffer held after the loop's last write or recount (writequeue.go); owned by the loop
	sniff        bool  // the first bytes may not begin a PROXY header (proxy.go); inbound TCP

	// lastUsed is the UnixNano of the last read or write, for idle expiry:
	// the owner loop's, and a direct writer's, which the loop does not see
	// (directwrite.go); hence atomic. A writer stores it only when the
	// coarse clock has moved, so the line is rarely written.
	lastUsed atomic.Int64

	// h holds a partly received message, charged to the server's budget.
	h holder

	// tx counts the transactions open on the connection, for a drain.
	tx txTrack

	// wbuf gathers what the owner loop writes to this connection while it
	// handles one event; flush sends it with one write call and gives it
	// back, so an idle connection holds no write buffer.
	wbuf  *[]byte
	dirty bool

	// w guards every write to a TCP stream's socket (directwrite.go).
	w sockLock
}

// flush writes what each connection gathered during the event just handled,
// and sends the datagrams queued in it (udpQueue): several messages to one
// connection leave in one write call, and several datagrams out of one UDP
// socket in one sendmmsg. What the event wrote to other loops' streams
// leaves here too, one write per stream (streamBatch). Each write holds the
// stream's lock and notes what it leaves waiting (directwrite.go).
func (loop *loopState) flush() {
	loop.udp.flush()
	for _, sc := range loop.dirty {
		var p []byte
		if sc.wbuf != nil {
			p = *sc.wbuf
		}
		sc.lockSock()
		if !sc.closed && !sc.writeSock(p) && len(p) > 0 {
			loop.s.Counters.Drops[DropSendError].Add(1)
		}
		sc.unlockSock()
		pool.PutBytes(sc.wbuf)
		sc.wbuf = nil
		sc.dirty = false
	}
	clear(loop.dirty)
	loop.dirty = loop.dirty[:0]
	if len(loop.foreign.conns) > 0 {
		loop.srv.flushBatch(&loop.foreign, &loop.s.Counters)
	}
}

// dialMeta travels with an outgoing connection through gnet's Enroll to
// OnOpen.
type dialMeta struct {
	dest    netip.AddrPort
	leg     *Leg
	loop    *loopState     // the loop that asked; nil when a goroutine outside the loops did
	pending []*pool.Buffer // messages waiting for the connection, owned by loop (or by the dialer when loop is nil)
}

// The backoff between connection attempts to a destination that refused.
const (
	minDialBackoff = 500 * time.Millisecond
	maxDialBackoff = 30 * time.Second
)

// dialBackoff is when a destination may be dialed again.
type dialBackoff struct {
	until int64 // UnixNano
	wait  time.Duration
}

// pong answers a CRLF keep-alive ping (RFC 5626 §3.5.1).
var pong = []byte("\r\n")

// OnOpen implements gnet.EventHandler for accepted and enrolled streams.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	var leg *Leg
	var o connOrigin
	switch meta := c.Context().(type) {
	case *dialMeta:
		return s.openOutbound(c, meta)
	case *acceptMeta:
		leg, o = meta.leg, meta.o
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	la, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok || !ok2 {
		return nil, gnet.Close
	}
	if leg == nil {
		leg = s.legAt(balance.TCP, la.AddrPort())
	}
	if leg == nil {
		return nil, gnet.Close
	}
	peer := o.peer // a PROXY header's source
	if !peer.IsValid() {
		peer = ta.AddrPort()
		peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	}
	loop := s.loopOf(c.EventLoop())
	// OnOpen returns no bytes for gnet to write outside the stream's
	// lock, so a direct write may follow at once (directwrite.go).
	sc := &streamConn{c: c, peer: peer, leg: leg, loop: loop, inbound: true, sniff: o.sniff}
	sc.w.fd = c.Fd()
	sc.lastUsed.Store(s.now.Load())
	sc.tx.last.Store(sc.lastUsed.Load())
	sc.h.kill = func() { c.Close() }
	// Published by the registry before its id is set: a direct writer
	// reads sc.id under the lock (directwrite.go).
	sc.lockSock()
	id, err := s.reg.Add(sc, peer.Addr(), true)
	if err != nil {
		sc.unlockSock()
		s.streams.ConnsRefused.Add(1)
		s.log.Debug("connection refused", "peer", peer, "err", err)
		return nil, gnet.Close
	}
	sc.id = id
	sc.unlockSock()
	loop.conns[sc] = struct{}{}
	c.SetContext(sc)
	return nil, gnet.None
}

func (s *Server) openOutbound(c gnet.Conn, meta *dialMeta) ([]byte, gnet.Action) {
	loop := meta.loop
	if loop == nil {
		loop = s.loopOf(c.EventLoop())
		s.takeOutsideDial(meta)
	} else if loop.dialing[meta.dest] == meta {
		delete(loop.dialing, meta.dest)
	}
	sc := &streamConn{c: c, peer: meta.dest, dest: meta.dest, leg: meta.leg, loop: loop}
	sc.w.fd = c.Fd()
	sc.lastUsed.Store(s.now.Load())
	sc.tx.last.Store(sc.lastUsed.Load())
	sc.h.kill = func() { c.Close() }
	// The lock is held from before the registry publishes sc until what
	// waited for the connection is written: its id is set, and a direct
	// write can only follow those messages (directwrite.go).
	sc.lockSock()
	defer sc.unlockSock()
	id, err := s.reg.Add(sc, meta.dest.Addr(), false)
	if err != nil {
		s.streams.ConnsRefused.Add(1)
		s.dropPending(&loop.s.Counters, meta, DropConnectFailed)
		return nil, gnet.Close
	}
	sc.id = id
	loop.conns[sc] = struct{}{}
	loop.dests.Add(meta.dest, sc)
	delete(loop.backoff, meta.dest)
	c.SetContext(sc)
	for _, b := range meta.pending {
		sc.tx.carry(b.B, sc.lastUsed.Load())
		if !sc.closed {
			// No max_write_queue check here: what waited for the
			// connection (max_pending messages at most) may exceed it at
			// once; the writes after it are checked.
			sc.writeGnet(b.B)
		}
		pool.PutBuffer(b)
	}
	meta.pending = nil
	return nil, gnet.None
}

// OnClose implements gnet.EventHandler.
func (s *Server) OnClose(c gnet.Conn, _ error) gnet.Action {
	sc, ok := c.Context().(*streamConn)
	if !ok {
		return gnet.None
	}
	sc.closed = true
	sc.sockClosed() // before gnet closes the descriptor, which the kernel may then reuse
	sc.loop.forgetQueued(sc)
	if s.mem.enter(&sc.h) {
		s.mem.release(&sc.h)
	}
	s.reg.Remove(sc.id, sc.peer.Addr(), sc.inbound)
	delete(sc.loop.conns, sc)
	if !sc.inbound {
		sc.loop.dests.Remove(sc.dest, sc)
	}
	return gnet.None
}

// streamTraffic frames what a stream has received and handles each message
// (SocketPool: several messages in one read, one message over many reads).
// It takes every byte gnet offers, so gnet never buffers input for a
// stream: items complete in the read are framed where gnet read them (zero
// copy), and a partial message moves to the connection's holder, charged
// to the memory budget (budget.go).
func (s *Server) streamTraffic(sc *streamConn) gnet.Action {
	c := sc.c
	loop := sc.loop
	now := s.now.Load()
	sc.lastUsed.Store(now)
	data, _ := c.Next(-1)
	if sc.sniff && len(data) > 0 {
		sc.sniff = false // the first read alone is looked at
		if looksLikeProxyHeader(data) {
			loop.s.Counters.Drops[DropProxyProtocol].Add(1)
			return gnet.Close
		}
	}
	if sc.linger != 0 {
		return gnet.None // answered and half-closed: what still comes is dropped
	}
	if !s.mem.enter(&sc.h) {
		return gnet.Close // evicted by the budget, which counted it
	}
	for {
		frame, kind, err := s.mem.nextFrame(&sc.h, &data, loop.s.Msg.Limits, s.maxMsg)
		if err != nil {
			return s.streamBroken(loop, sc, frame, err)
		}
		if frame == nil {
			break
		}
		switch kind {
		case parser.FramePing:
			s.write(loop, &loop.s.Counters, sc, pong)
		case parser.FrameMessage:
			sc.tx.carry(frame, now)
			r := s.f.ProcessConn(loop.s, frame, sc.peer, sc.leg, sc.id)
			if r.Out != nil {
				s.deliver(loop, &loop.s.Counters, &r, -1, nil)
			} else if r.Resolve != nil {
				s.resolveLater(&loop.s.Counters, frame, sc.peer, sc.leg, sc.id, r.Resolve)
			}
		}
	}
	if sc.h.heldLen() > 0 {
		if sc.partialSince == 0 {
			sc.partialSince = now
		}
	} else {
		sc.partialSince = 0
	}
	s.mem.leave(&sc.h)
	loop.flush()
	return gnet.None
}

// lingerTime is how long a stream answered after a framing error stays
// half-closed, its input read and dropped, before it is closed: closing at
// once, with the rest of the bad message unread, would make the kernel
// reset the connection, and the peer could lose the answer.
const lingerTime = 2 * time.Second

// streamBroken ends a stream whose framing is lost (msg holds the bytes of
// the broken message), in the owner loop's turn on sc: it answers what can
// be answered, then half-closes the stream, since nothing after this point
// can be trusted.
func (s *Server) streamBroken(loop *loopState, sc *streamConn, msg []byte, err error) gnet.Action {
	loop.flush()
	s.mem.release(&sc.h)
	if err == errOverBudget {
		s.streams.BudgetCloses.Add(1)
		return gnet.Close
	}
	loop.s.Counters.Drops[DropStreamBroken].Add(1)
	pe, ok := errors.AsType[*parser.Error](err)
	if !ok {
		return gnet.Close
	}
	out, ok := appendRawReply(loop.s.out[:0], wholeLines(msg), pe.Status, pe.Reason, nil)
	if !ok {
		return gnet.Close
	}
	loop.s.Counters.countReply(pe.Status) // before the peer can see it
	sc.lockSock()
	defer sc.unlockSock()
	if !sc.writeSock(out) {
		return gnet.Close
	}
	// The answer is in the socket unless the peer does not read; then it
	// waits in gnet's buffer, and the FIN must wait too. Nothing is
	// written directly to a half-closed stream: what comes for it goes
	// to the loop, as before the break.
	sc.w.stop = true
	if sc.c.OutboundBuffered() == 0 {
		unix.Shutdown(sc.c.Fd(), unix.SHUT_WR)
	}
	sc.linger = s.now.Load() + int64(lingerTime)
	return gnet.None
}

// wholeLines is b up to its last line feed: the header lines of a message
// that were received whole.
func wholeLines(b []byte) []byte {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return b[:i+1]
		}
	}
	return b[:0]
}

// write sends out on sc: gathered for the end of the event when the
// current loop owns it; queued to its TLS or WebSocket writer; else written
// straight to the socket when nothing waits on it, or posted to its loop's
// mailbox (writeOff) — at the end of the current loop's event when called
// on a loop, at once when loop is nil (a goroutine outside the loops).
func (s *Server) write(loop *loopState, cnt *Counters, sc *streamConn, out []byte) {
	sc.tx.carry(out, s.now.Load())
	if sc.tls != nil {
		if !sc.tls.enqueue(pool.Copy(out)) {
			cnt.Drops[DropSendError].Add(1)
		}
		return
	}
	if sc.ws != nil {
		if !sc.ws.enqueue(pool.Copy(out)) {
			cnt.Drops[DropSendError].Add(1)
		}
		return
	}
	switch {
	case loop == nil:
		s.writeOff(cnt, sc, out)
	case sc.loop == loop:
		s.gather(loop, sc, out)
	default:
		loop.foreign.add(sc, out)
	}
}

// gather appends out to what sc, owned by loop, sends at the end of the
// loop's event (flush).
func (s *Server) gather(loop *loopState, sc *streamConn, out []byte) {
	sc.wbuf = pool.AppendBytes(sc.wbuf, out)
	s.markDirty(loop, sc)
}

// markDirty has loop write sc at the end of its event (flush).
func (s *Server) markDirty(loop *loopState, sc *streamConn) {
	if now := s.now.Load(); sc.lastUsed.Load() != now {
		sc.lastUsed.Store(now)
	}
	if !sc.dirty {
		sc.dirty = true
		loop.dirty = append(loop.dirty, sc)
	}
}

// sendStream writes out to dst over a TCP connection of this loop to dst,
// opening one (and holding out until it is up) when there is none.
func (s *Server) sendStream(loop *loopState, leg *Leg, dst netip.AddrPort, out []byte) {
	sc, more := loop.dests.Pick(dst, s.lim.ConnsPerDest)
	if sc != nil {
		if more && loop.dialing[dst] == nil {
			meta := &dialMeta{dest: dst, leg: leg, loop: loop}
			loop.dialing[dst] = meta
			go s.dial(meta)
		}
		s.write(loop, &loop.s.Counters, sc, out)
		return
	}
	meta := loop.dialing[dst]
	if meta == nil {
		// After a failed connect, wait out a backoff (doubling per failure,
		// up to maxDialBackoff) rather than dial again for every message.
		if b, ok := loop.backoff[dst]; ok && s.now.Load() < b.until {
			loop.s.drop(DropConnectFailed)
			return
		}
		meta = &dialMeta{dest: dst, leg: leg, loop: loop}
		loop.dialing[dst] = meta
		go s.dial(meta)
	}
	if len(meta.pending) >= s.lim.MaxPending {
		loop.s.drop(DropPendingFull)
		return
	}
	meta.pending = append(meta.pending, pool.Copy(out))
}

// sendStreamOutside is sendStream for a goroutine outside the loops (a TLS
// reader): the work moves to a loop; with no loop running yet, a connection
// is opened and enrolled into whichever loop gnet chooses.
func (s *Server) sendStreamOutside(cnt *Counters, leg *Leg, dst netip.AddrPort, out []byte) {
	b := pool.Copy(out)
	s.mu.Lock()
	var loop *loopState
	if n := len(s.all); n > 0 {
		loop = s.all[int(dst.Port())%n]
	}
	s.mu.Unlock()
	if loop == nil {
		// No loop has started yet: one dial per destination at a time,
		// holding what waits for it.
		s.outMu.Lock()
		meta := s.outDialing[dst]
		switch {
		case meta == nil:
			meta = &dialMeta{dest: dst, leg: leg, pending: []*pool.Buffer{b}}
			s.outDialing[dst] = meta
			go s.dial(meta)
		case len(meta.pending) < s.lim.MaxPending:
			meta.pending = append(meta.pending, b)
		default:
			pool.PutBuffer(b)
			cnt.Drops[DropPendingFull].Add(1)
		}
		s.outMu.Unlock()
		return
	}
	s.post(loop, cnt, mail{b: b, leg: leg, dst: dst})
}

// dial opens a TCP connection within the connect timeout and enrolls it
// into meta's loop (or any), whose OnOpen then flushes what waited for it.
func (s *Server) dial(meta *dialMeta) {
	dst := meta.dest
	d := net.Dialer{Timeout: s.lim.ConnectTimeout}
	conn, err := d.Dial("tcp", dst.String())
	if err == nil {
		ctx := gnet.NewContext(context.Background(), meta)
		var ch <-chan gnet.RegisteredResult
		if meta.loop != nil {
			ch, err = meta.loop.el.Enroll(ctx, conn)
		} else {
			ch, err = s.eng.Register(gnet.NewNetConnContext(ctx, conn))
		}
		if err == nil {
			if res := <-ch; res.Err != nil {
				err = res.Err
			}
		} else {
			conn.Close()
		}
	}
	if err == nil {
		return
	}
	s.log.Debug("connect failed", "dst", dst, "err", err)
	if s.onDrop != nil {
		s.onDrop(dst, balance.ConnectHint(err))
	}
	loop := meta.loop
	if loop == nil {
		s.takeOutsideDial(meta)
		s.dropPending(&s.streams, meta, DropConnectFailed)
		return
	}
	loop.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if loop.dialing[dst] == meta {
			delete(loop.dialing, dst)
		}
		b := loop.backoff[dst]
		b.wait = min(max(2*b.wait, minDialBackoff), maxDialBackoff)
		b.until = s.now.Load() + int64(b.wait)
		loop.backoff[dst] = b
		s.dropPending(&loop.s.Counters, meta, DropConnectFailed)
		return nil
	}))
}

// takeOutsideDial ends meta's turn as the dial of its destination for
// goroutines outside the loops; after it, meta.pending is the caller's alone.
func (s *Server) takeOutsideDial(meta *dialMeta) {
	s.outMu.Lock()
	if s.outDialing[meta.dest] == meta {
		delete(s.outDialing, meta.dest)
	}
	s.outMu.Unlock()
}

func (s *Server) dropPending(cnt *Counters, meta *dialMeta, d Drop) {
	for _, b := range meta.pending {
		pool.PutBuffer(b)
		cnt.Drops[d].Add(1)
	}
	meta.pending = nil
}

// sweepEvery is how often idle and slow streams are looked for.
const sweepEvery = 250 * time.Millisecond

// sweeper advances the coarse clock and has each loop close its idle
// streams (idle expiry scaled by the number open, SocketPool) and the
// clients that take too long to send a message header (slow-loris).
func (s *Server) sweeper(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.now.Store(now.UnixNano())
			s.mu.Lock()
			loops := append([]*loopState(nil), s.all...)
			s.mu.Unlock()
			idle := int64(s.lim.IdleTimeout(s.reg.Len()))
			deadline := int64(s.lim.HeaderDeadline)
			for _, ls := range loops {
				ls.el.Execute(ctx, gnet.RunnableFunc(func(context.Context) error {
					n := now.UnixNano()
					for dst, b := range ls.backoff {
						if n-b.until > int64(maxDialBackoff) {
							delete(ls.backoff, dst) // long past: forget it
						}
					}
					for sc := range ls.conns {
						switch {
						case sc.linger != 0:
							if n > sc.linger {
								sc.c.Close()
							}
						case sc.partialSince != 0 && n-sc.partialSince > deadline:
							s.streams.SlowClients.Add(1)
							sc.c.Close()
						case n-sc.lastUsed.Load() > idle,
							sc.partialSince == 0 && sc.c.OutboundBuffered() == 0 && s.drainIdleFor(sc, n):
							s.streams.ConnsExpired.Add(1)
							sc.c.Close()
						}
					}
					return nil
				}))
			}
		}
	}
}
