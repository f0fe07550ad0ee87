package engine

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// streamConn is one TCP connection, accepted from a client or opened to a
// destination, owned by the event loop it was registered on: only that loop
// reads it, writes it directly or closes it; other loops queue writes.
type streamConn struct {
	c       gnet.Conn
	id      pool.ConnID
	peer    netip.AddrPort
	leg     *Leg
	loop    *loopState
	inbound bool
	dest    netip.AddrPort // outbound: the destination it was opened to

	lastUsed     int64 // UnixNano of the last read or write, by the owner loop
	partialSince int64 // UnixNano since a message has been only partly read, 0 when none
}

// dialMeta travels with an outgoing connection through gnet's Enroll to
// OnOpen.
type dialMeta struct {
	dest netip.AddrPort
	leg  *Leg
	loop *loopState
}

// pong answers a CRLF keep-alive ping (RFC 5626 §3.5.1).
var pong = []byte("\r\n")

// OnOpen implements gnet.EventHandler for accepted and enrolled streams.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if meta, ok := c.Context().(*dialMeta); ok {
		return s.openOutbound(c, meta)
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	la, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok || !ok2 {
		return nil, gnet.Close
	}
	leg := s.legAt(balance.TCP, la.AddrPort())
	if leg == nil {
		return nil, gnet.Close
	}
	peer := ta.AddrPort()
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	loop := s.loopOf(c.EventLoop())
	sc := &streamConn{c: c, peer: peer, leg: leg, loop: loop, inbound: true, lastUsed: s.now.Load()}
	id, err := s.reg.Add(sc, peer.Addr(), true)
	if err != nil {
		s.streams.ConnsRefused.Add(1)
		s.log.Debug("connection refused", "peer", peer, "err", err)
		return nil, gnet.Close
	}
	sc.id = id
	loop.conns[sc] = struct{}{}
	c.SetContext(sc)
	return nil, gnet.None
}

func (s *Server) openOutbound(c gnet.Conn, meta *dialMeta) ([]byte, gnet.Action) {
	loop := meta.loop
	sc := &streamConn{c: c, peer: meta.dest, dest: meta.dest, leg: meta.leg, loop: loop, lastUsed: s.now.Load()}
	p := loop.dialing[meta.dest]
	delete(loop.dialing, meta.dest)
	id, err := s.reg.Add(sc, meta.dest.Addr(), false)
	if err != nil {
		s.streams.ConnsRefused.Add(1)
		if p != nil {
			s.dropPending(loop, p, DropConnectFailed)
		}
		return nil, gnet.Close
	}
	sc.id = id
	loop.conns[sc] = struct{}{}
	loop.dests.Add(meta.dest, sc)
	c.SetContext(sc)
	if p != nil {
		for _, b := range p.msgs {
			c.Write(b.B)
			pool.PutBuffer(b)
		}
	}
	return nil, gnet.None
}

// OnClose implements gnet.EventHandler.
func (s *Server) OnClose(c gnet.Conn, _ error) gnet.Action {
	sc, ok := c.Context().(*streamConn)
	if !ok {
		return gnet.None
	}
	s.reg.Remove(sc.id, sc.peer.Addr(), sc.inbound)
	delete(sc.loop.conns, sc)
	if !sc.inbound {
		sc.loop.dests.Remove(sc.dest, sc)
	}
	return gnet.None
}

// streamTraffic frames what a stream has buffered and handles each message
// (SocketPool: several messages in one read, one message over many reads).
func (s *Server) streamTraffic(sc *streamConn) gnet.Action {
	c := sc.c
	loop := sc.loop
	now := s.now.Load()
	sc.lastUsed = now
	buf, _ := c.Peek(-1)
	for len(buf) > 0 {
		n, kind, err := parser.Frame(buf, loop.s.Msg.Limits)
		if err != nil {
			// The stream has lost its framing: answer what can be answered
			// and close it, since nothing after this point can be trusted.
			loop.s.Counters.Drops[DropStreamBroken].Add(1)
			if pe, ok := err.(*parser.Error); ok {
				if out, ok := appendRawReply(loop.s.out[:0], buf, pe.Status, pe.Reason, nil); ok {
					c.Write(out)
				}
			}
			return gnet.Close
		}
		if n == 0 {
			break
		}
		switch kind {
		case parser.FramePing:
			c.Write(pong)
		case parser.FrameMessage:
			r := s.f.ProcessConn(loop.s, buf[:n], sc.peer, sc.leg, sc.id)
			if r.Out != nil {
				s.deliver(loop, &r, -1, nil)
			}
		}
		c.Discard(n)
		buf = buf[n:]
	}
	if len(buf) > 0 {
		if sc.partialSince == 0 {
			sc.partialSince = now
		}
	} else {
		sc.partialSince = 0
	}
	return gnet.None
}

// write sends out on sc: directly when the current loop owns it, else as a
// pooled copy queued to its loop.
func (s *Server) write(loop *loopState, sc *streamConn, out []byte) {
	if sc.loop == loop {
		sc.lastUsed = s.now.Load()
		if _, err := sc.c.Write(out); err != nil {
			loop.s.drop(DropSendError)
		}
		return
	}
	b := pool.Copy(out)
	err := sc.c.AsyncWrite(b.B, func(gnet.Conn, error) error {
		pool.PutBuffer(b)
		return nil
	})
	if err != nil {
		pool.PutBuffer(b)
		loop.s.drop(DropSendError)
	}
}

// sendStream writes out to dst over a connection of this loop to dst,
// opening one (and holding out until it is up) when there is none.
func (s *Server) sendStream(loop *loopState, leg *Leg, dst netip.AddrPort, out []byte) {
	sc, more := loop.dests.Pick(dst, s.lim.ConnsPerDest)
	if sc != nil {
		if more && loop.dialing[dst] == nil {
			loop.dialing[dst] = &pending{}
			go s.dial(loop, leg, dst)
		}
		s.write(loop, sc, out)
		return
	}
	p := loop.dialing[dst]
	if p == nil {
		p = &pending{}
		loop.dialing[dst] = p
		go s.dial(loop, leg, dst)
	}
	if len(p.msgs) >= s.lim.MaxPending {
		loop.s.drop(DropPendingFull)
		return
	}
	p.msgs = append(p.msgs, pool.Copy(out))
}

// dial opens a TCP connection to dst within the connect timeout and enrolls
// it into loop, whose OnOpen then flushes what waited for it.
func (s *Server) dial(loop *loopState, leg *Leg, dst netip.AddrPort) {
	d := net.Dialer{Timeout: s.lim.ConnectTimeout}
	conn, err := d.Dial("tcp", dst.String())
	if err == nil {
		ctx := gnet.NewContext(context.Background(), &dialMeta{dest: dst, leg: leg, loop: loop})
		var ch <-chan gnet.RegisteredResult
		ch, err = loop.el.Enroll(ctx, conn)
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
		s.onDrop(dst)
	}
	loop.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if p := loop.dialing[dst]; p != nil {
			delete(loop.dialing, dst)
			s.dropPending(loop, p, DropConnectFailed)
		}
		return nil
	}))
}

func (s *Server) dropPending(loop *loopState, p *pending, d Drop) {
	for _, b := range p.msgs {
		pool.PutBuffer(b)
		loop.s.drop(d)
	}
	p.msgs = nil
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
					for sc := range ls.conns {
						switch {
						case sc.partialSince != 0 && n-sc.partialSince > deadline:
							s.streams.SlowClients.Add(1)
							sc.c.Close()
						case n-sc.lastUsed > idle:
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
