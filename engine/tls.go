package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// TLS streams are not served by gnet (it has no TLS): each connection has a
// reader goroutine, which frames and forwards with a Scratch borrowed from a
// small set, and a writer goroutine fed through a bounded queue, so a slow
// peer never blocks an event loop.

// tlsQueue bounds the writes waiting for one TLS connection.
const tlsQueue = 256

// tlsReadSize is the read call's buffer on a TLS connection.
const tlsReadSize = 4 << 10

// tlsWriteTimeout bounds one write to a TLS peer; a peer that does not read
// is cut off.
const tlsWriteTimeout = 10 * time.Second

type tlsStream struct {
	conn    *tls.Conn
	out     chan *pool.Buffer
	closed  atomic.Bool
	writing atomic.Bool // a writer goroutine is draining out
	once    sync.Once
	done    chan struct{}
}

func newTLSStream(c *tls.Conn) *tlsStream {
	return &tlsStream{conn: c, out: make(chan *pool.Buffer, tlsQueue), done: make(chan struct{})}
}

// enqueue hands b to the writer; false when the connection is closed or its
// queue is full (b is then released).
func (t *tlsStream) enqueue(b *pool.Buffer) bool {
	if t.closed.Load() {
		pool.PutBuffer(b)
		return false
	}
	select {
	case t.out <- b:
	default:
		pool.PutBuffer(b)
		return false
	}
	// A writer runs only while there is something to write, so an idle
	// connection holds one goroutine (its reader), not two.
	if t.writing.CompareAndSwap(false, true) {
		go t.writer()
	}
	return true
}

func (t *tlsStream) writer() {
	for {
		select {
		case <-t.done:
			return
		case b := <-t.out:
			t.conn.SetWriteDeadline(time.Now().Add(tlsWriteTimeout))
			_, err := t.conn.Write(b.B)
			pool.PutBuffer(b)
			if err != nil {
				t.close()
				return
			}
		default:
			t.writing.Store(false)
			// A message queued after the check above and before the store
			// would wait for the next enqueue: look once more.
			if len(t.out) == 0 || !t.writing.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

func (t *tlsStream) close() {
	t.once.Do(func() {
		t.closed.Store(true)
		close(t.done)
		t.conn.Close()
	})
}

// tlsHub holds the outgoing TLS connections by destination and the
// Scratches TLS readers borrow.
type tlsHub struct {
	mu      sync.Mutex
	dests   map[netip.AddrPort]*streamConn
	dialing map[netip.AddrPort]*dialMeta

	scratch chan *Scratch
	all     []*Scratch
}

// tlsScratches is how many TLS readers forward at the same instant; the
// rest wait for a Scratch (each holds a buffer of the largest message).
const tlsScratches = 16

func newTLSHub(f *Forwarder) *tlsHub {
	h := &tlsHub{
		dests:   make(map[netip.AddrPort]*streamConn),
		dialing: make(map[netip.AddrPort]*dialMeta),
		scratch: make(chan *Scratch, tlsScratches),
	}
	for range tlsScratches {
		sc := f.NewScratch()
		h.all = append(h.all, sc)
		h.scratch <- sc
	}
	return h
}

// startTLS opens the TLS listeners and runs their accept loops (accept.go:
// accept errors back off and are counted, never end the loop), which end
// when ctx is done. Each accepted connection is wrapped as
// siptls.Listen's listener would, with the leg's store's server
// configuration, so reloads apply to handshakes that start after them.
func (s *Server) startTLS(ctx context.Context) error {
	var as []*acceptor
	for _, l := range s.f.legs {
		if l.Transport != balance.TLS {
			continue
		}
		if l.tls == nil {
			return errors.New("listener " + l.Name + ": tls needs a certificate (tls.cert_file, tls.key_file)")
		}
		if l.tls.Leaf() == nil {
			return fmt.Errorf("listener %s: %w", l.Name, siptls.ErrNoCertificate)
		}
		ln, err := s.listenTCP(ctx, "tcp", l) // as siptls.Listen listens
		if err != nil {
			for _, a := range as {
				a.ln.Close()
			}
			return err
		}
		cfg := l.tls.ServerConfig()
		as = append(as, s.newAcceptor(l, ln, func(c *net.TCPConn, o connOrigin) error {
			raw := o.conn(c, &s.streams)
			go s.serveTLS(ctx, l, raw, tls.Server(raw, cfg), netip.AddrPort{}, o.peer)
			return nil
		}))
	}
	s.lnMu.Lock()
	s.tlsLns = append(s.tlsLns, as...)
	s.lnMu.Unlock()
	for _, a := range as {
		go func() {
			<-ctx.Done()
			a.ln.Close()
		}()
		go a.run(ctx)
	}
	return nil
}

// serveTLS runs one TLS connection over raw: inbound when dest is zero (the
// handshake is done here, bounded by the connect timeout and charged to the
// memory budget while it lasts), else an outgoing one already handshaken to
// dest. peer is an inbound connection's source as a PROXY header named it;
// zero: its own remote address.
func (s *Server) serveTLS(ctx context.Context, leg *Leg, raw net.Conn, tc *tls.Conn, dest, peer netip.AddrPort) {
	inbound := !dest.IsValid()
	if !peer.IsValid() {
		ra, _ := tc.RemoteAddr().(*net.TCPAddr)
		peer = ra.AddrPort()
		peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	}
	sc := &streamConn{leg: leg, inbound: inbound, dest: dest}
	// Closing the TCP connection, not the TLS one, stops its reader at once
	// without waiting to send a close_notify to a peer that may not read.
	sc.h.kill = func() { raw.Close() }
	if inbound {
		if !s.mem.holdHandshake(&sc.h) {
			s.streams.BudgetCloses.Add(1)
			raw.Close()
			return
		}
		_, err := siptls.Handshake(ctx, tc, s.lim.ConnectTimeout)
		if !s.mem.enter(&sc.h) {
			raw.Close()
			return // evicted, and counted, while it was shaking hands
		}
		s.mem.release(&sc.h)
		if err != nil {
			if !errors.Is(err, errUntrustedProxy) { // counted as a PROXY drop
				s.streams.TLSHandshakeFailures.Add(1)
			}
			s.log.Debug("tls handshake failed", "peer", peer.String(), "err", err)
			return
		}
	}
	ts := newTLSStream(tc)
	sc.tls, sc.peer = ts, peer
	sc.tx.last.Store(s.now.Load())
	var id pool.ConnID
	var err error
	if inbound && s.f.backendCert(tc.ConnectionState()) {
		id, err = s.reg.AddTrusted(sc, peer.Addr())
	} else {
		id, err = s.reg.Add(sc, peer.Addr(), inbound)
	}
	if err != nil {
		s.streams.ConnsRefused.Add(1)
		ts.close()
		if !inbound {
			// Forget the dial, or every later message to dest would wait for it.
			s.tls.mu.Lock()
			meta := s.tls.dialing[dest]
			delete(s.tls.dialing, dest)
			s.tls.mu.Unlock()
			if meta != nil {
				s.dropPending(&s.streams, meta, DropConnectFailed)
			}
		}
		return
	}
	sc.id = id
	defer func() {
		s.reg.Remove(id, peer.Addr(), inbound)
		if !inbound {
			s.tls.mu.Lock()
			if s.tls.dests[dest] == sc {
				delete(s.tls.dests, dest)
			}
			s.tls.mu.Unlock()
		}
		ts.close()
	}()
	if !inbound {
		s.tls.mu.Lock()
		s.tls.dests[dest] = sc
		meta := s.tls.dialing[dest]
		delete(s.tls.dialing, dest)
		s.tls.mu.Unlock()
		if meta != nil {
			for _, b := range meta.pending {
				sc.tx.carry(b.B, s.now.Load())
				ts.enqueue(b)
			}
		}
	}
	s.readStream(ctx, sc, tc, raw)
}

// readStream frames and forwards what a TLS peer sends until it closes, goes
// idle, or dawdles over a header. The read call's buffer is small (crypto/tls
// buffers a record itself); items complete in a read are framed in it, and
// a partial message moves to sc's holder, charged to the memory budget,
// until it is complete.
func (s *Server) readStream(ctx context.Context, sc *streamConn, c *tls.Conn, raw net.Conn) {
	tmp := make([]byte, min(s.lim.ReadSize, tlsReadSize))
	lim := s.f.limits
	h := &sc.h
	defer func() {
		if s.mem.enter(h) {
			s.mem.release(h)
		}
	}()
	partial := false       // read in sc's turn: the evictor may take h while the reader waits
	var deadline time.Time // of the idle expiry or the header deadline; zero after a read
	for ctx.Err() == nil {
		if deadline.IsZero() {
			wait := s.lim.IdleTimeout(s.reg.Len())
			if partial {
				wait = s.lim.HeaderDeadline
			}
			deadline = time.Now().Add(wait)
		}
		draining := s.draining.Load()
		c.SetReadDeadline(s.tlsReadDeadline(deadline, draining))
		if !draining && s.draining.Load() {
			// Drain may have set its wake-up before the deadline above.
			c.SetReadDeadline(s.tlsReadDeadline(deadline, true))
		}
		n, err := c.Read(tmp)
		if !s.mem.enter(h) {
			return // evicted by the budget, which counted it and closed raw
		}
		if err != nil {
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			if timeout && s.draining.Load() && time.Now().Before(deadline) {
				// A drain's look at the connection (Drain, drainTick).
				if !partial && s.drainIdleFor(sc, s.now.Load()) {
					s.streams.ConnsExpired.Add(1)
					return
				}
				s.mem.leave(h)
				continue
			}
			if timeout {
				if partial {
					s.streams.SlowClients.Add(1)
				} else {
					s.streams.ConnsExpired.Add(1)
				}
			}
			return
		}
		deadline = time.Time{}
		data := tmp[:n]
		for {
			frame, kind, err := s.mem.nextFrame(h, &data, lim, s.maxMsg)
			if err != nil {
				s.tlsBroken(sc, c, raw, frame, err)
				return
			}
			if frame == nil {
				break
			}
			switch kind {
			case parser.FramePing:
				sc.tls.enqueue(pool.Copy(pong))
			case parser.FrameMessage:
				sc.tx.carry(frame, s.now.Load())
				s.forwardTLS(sc, frame)
			}
		}
		partial = h.heldLen() > 0
		s.mem.leave(h)
	}
}

// drainTick is how often a TLS reader looks at its connection while the
// server drains.
const drainTick = sweepEvery

// tlsReadDeadline is the read deadline of a TLS reader: deadline, or sooner
// while draining, so that an idle connection is closed within drainTick.
func (s *Server) tlsReadDeadline(deadline time.Time, draining bool) time.Time {
	if draining {
		if t := time.Now().Add(drainTick); t.Before(deadline) {
			return t
		}
	}
	return deadline
}

// tlsBroken ends a TLS stream whose framing is lost, in its reader's turn:
// the answer is written (not queued) and sent, the stream half-closed and
// its input drained for lingerTime, as streamBroken does for TCP.
func (s *Server) tlsBroken(sc *streamConn, c *tls.Conn, raw net.Conn, msg []byte, err error) {
	if err == errOverBudget {
		s.streams.BudgetCloses.Add(1)
		return
	}
	s.streams.Drops[DropStreamBroken].Add(1)
	pe, ok := errors.AsType[*parser.Error](err)
	if !ok {
		return
	}
	out, ok := appendRawReply(nil, wholeLines(msg), pe.Status, pe.Reason, nil)
	s.mem.release(&sc.h) // msg is not needed any more
	if !ok {
		return
	}
	s.streams.countReply(pe.Status) // before the peer can see it
	c.SetWriteDeadline(time.Now().Add(tlsWriteTimeout))
	if _, err := c.Write(out); err != nil {
		return
	}
	if tcp, ok := raw.(interface{ CloseWrite() error }); ok {
		tcp.CloseWrite()
	}
	raw.SetReadDeadline(time.Now().Add(lingerTime))
	var drain [512]byte
	for {
		if _, err := raw.Read(drain[:]); err != nil {
			return
		}
	}
}

func (s *Server) forwardTLS(sc *streamConn, msg []byte) {
	scr := <-s.tls.scratch
	r := s.f.ProcessConn(scr, msg, sc.peer, sc.leg, sc.id)
	if r.Out != nil {
		s.deliver(nil, &scr.Counters, &r, -1, nil)
	} else if r.Resolve != nil {
		s.resolveLater(&scr.Counters, msg, sc.peer, sc.leg, sc.id, r.Resolve)
	}
	s.tls.scratch <- scr
}

// sendTLS writes out to dst over the TLS connection to it, opening one
// (holding out until the handshake is done) when there is none.
func (s *Server) sendTLS(cnt *Counters, leg *Leg, dst netip.AddrPort, out []byte) {
	h := s.tls
	h.mu.Lock()
	if sc := h.dests[dst]; sc != nil {
		h.mu.Unlock()
		s.write(nil, cnt, sc, out)
		return
	}
	meta := h.dialing[dst]
	if meta == nil {
		meta = &dialMeta{dest: dst, leg: leg}
		h.dialing[dst] = meta
		go s.dialTLS(meta)
	}
	if len(meta.pending) >= s.lim.MaxPending {
		h.mu.Unlock()
		cnt.Drops[DropPendingFull].Add(1)
		return
	}
	meta.pending = append(meta.pending, pool.Copy(out))
	h.mu.Unlock()
}

func (s *Server) dialTLS(meta *dialMeta) {
	ctx := context.Background()
	c, err := siptls.Dial(ctx, "tcp", meta.dest.String(), meta.leg.tls, "", s.lim.ConnectTimeout)
	if err != nil {
		s.log.Debug("tls connect failed", "dst", meta.dest, "err", err)
		if s.onDrop != nil {
			s.onDrop(meta.dest, balance.ConnectHint(err))
		}
		s.tls.mu.Lock()
		if s.tls.dialing[meta.dest] == meta {
			delete(s.tls.dialing, meta.dest)
		}
		s.tls.mu.Unlock()
		s.dropPending(&s.streams, meta, DropConnectFailed)
		return
	}
	s.serveTLS(ctx, meta.leg, c.NetConn(), c, meta.dest, netip.AddrPort{})
}
