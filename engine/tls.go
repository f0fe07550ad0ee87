package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// TLS streams are not served by gnet (it has no TLS): each connection has a
// reader goroutine, which frames and forwards with a Scratch borrowed from a
// small set, and a writer goroutine while there is something to write, so a
// slow peer never blocks an event loop. An idle connection holds no buffer
// of siplb's: its reader waits for the socket to become readable with
// nothing borrowed and on a short stack (tlsWire.wait), then reads into a
// pooled buffer, without waiting, until crypto/tls holds nothing unread
// (tlsWire.buffered; else errWouldBlock) and gives the buffer back; the
// write queue's array is pooled too (sendQueue).

// tlsQueue bounds the writes waiting for one TLS or WebSocket connection.
const tlsQueue = 256

// tlsReadSize is the read call's buffer on a TLS connection.
const tlsReadSize = 4 << 10

// tlsWriteTimeout bounds one write to a TLS peer; a peer that does not read
// is cut off.
const tlsWriteTimeout = 10 * time.Second

// sendQueue is the bounded queue of writes to a connection that goroutines
// serve (TLS, WebSocket). A writer goroutine runs only while something is
// queued, and the queue's array comes from a pool while it is not empty,
// so an idle connection holds neither. Safe for concurrent use.
type sendQueue struct {
	mu      sync.Mutex
	q       *[]*pool.Buffer // nil while empty
	writing bool            // a writer owns the queue's output
	closed  bool
}

// sendArrays are the queues' arrays.
var sendArrays = sync.Pool{New: func() any {
	a := make([]*pool.Buffer, 0, 16)
	return &a
}}

// push queues b. It reports whether b was taken (false when the queue is
// closed or full: b is then released), and whether the caller must start
// a writer, which then calls take until it returns nil.
func (q *sendQueue) push(b *pool.Buffer) (ok, start bool) {
	q.mu.Lock()
	if q.closed || (q.q != nil && len(*q.q) >= tlsQueue) {
		q.mu.Unlock()
		pool.PutBuffer(b)
		return false, false
	}
	if q.q == nil {
		q.q = sendArrays.Get().(*[]*pool.Buffer)
	}
	*q.q = append(*q.q, b)
	start = !q.writing
	q.writing = true
	q.mu.Unlock()
	return true, start
}

// take hands the writer all that is queued, to give back with
// putSendArray; nil when nothing is: the writer must then end.
func (q *sendQueue) take() *[]*pool.Buffer {
	q.mu.Lock()
	a := q.q
	q.q = nil
	if a == nil {
		q.writing = false
	}
	q.mu.Unlock()
	return a
}

// close refuses every later push and releases what is queued.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	a := q.q
	q.q = nil
	q.mu.Unlock()
	if a != nil {
		putSendArray(a)
	}
}

// putSendArray releases the buffers of a, and a.
func putSendArray(a *[]*pool.Buffer) {
	for _, b := range *a {
		if b != nil {
			pool.PutBuffer(b)
		}
	}
	clear(*a)
	*a = (*a)[:0]
	sendArrays.Put(a)
}

// writeSink is where a writer sends: one message at a time, and the close of
// the connection when a send fails.
type writeSink interface {
	send(b []byte) error
	close()
}

// writeQueued is a writer: it sends what q holds to k until q is empty,
// or closes k when a send fails.
func writeQueued(q *sendQueue, k writeSink) {
	for {
		a := q.take()
		if a == nil {
			return
		}
		var err error
		for i, b := range *a {
			if err == nil {
				err = k.send(b.B)
			}
			pool.PutBuffer(b)
			(*a)[i] = nil
		}
		putSendArray(a)
		if err != nil {
			k.close()
			for a := q.take(); a != nil; a = q.take() { // pushed before close refused them
				putSendArray(a)
			}
			return
		}
	}
}

type tlsStream struct {
	conn    *tls.Conn
	q       sendQueue
	once    sync.Once
	writeFn func() // write, made once: a go statement calling it allocates nothing

	charged int64 // charged to the memory budget (chargeConn); the reader's
}

func newTLSStream(c *tls.Conn) *tlsStream {
	t := &tlsStream{conn: c}
	t.writeFn = t.write
	return t
}

// enqueue hands b to the writer; false when the connection is closed or its
// queue is full (b is then released).
func (t *tlsStream) enqueue(b *pool.Buffer) bool {
	ok, start := t.q.push(b)
	if start {
		go t.writeFn()
	}
	return ok
}

// write is the writer.
func (t *tlsStream) write() { writeQueued(&t.q, t) }

func (t *tlsStream) send(b []byte) error {
	t.conn.SetWriteDeadline(time.Now().Add(tlsWriteTimeout))
	_, err := t.conn.Write(b)
	return err
}

func (t *tlsStream) close() {
	t.once.Do(func() {
		t.q.close()
		t.conn.Close()
	})
}

// tlsHub holds the outgoing TLS connections by destination and the
// Scratches TLS readers borrow.
type tlsHub struct {
	mu      sync.Mutex
	dests   map[netip.AddrPort]*streamConn
	dialing map[netip.AddrPort]*dialMeta
	shaking map[netip.Addr]int // inbound TLS handshakes and WebSocket upgrades in flight, by source

	scratch chan *Scratch
	all     []*Scratch
}

// startShake counts an inbound connection from ip that is not in the
// registry yet (a TLS handshake or a WebSocket upgrade in flight) against
// its source's cap, with those that are: false, counting nothing, when the
// source is at max_per_ip. endShake ends what a true started.
func (s *Server) startShake(ip netip.Addr) bool {
	h := s.tls
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.shaking[ip]
	if n+s.reg.FromIP(ip) >= s.lim.MaxConnsPerIP {
		return false
	}
	h.shaking[ip] = n + 1
	return true
}

func (s *Server) endShake(ip netip.Addr) {
	h := s.tls
	h.mu.Lock()
	if n := h.shaking[ip] - 1; n > 0 {
		h.shaking[ip] = n
	} else {
		delete(h.shaking, ip)
	}
	h.mu.Unlock()
}

// tlsScratches is how many TLS readers forward at the same instant; the
// rest wait for a Scratch (each holds a buffer of the largest message).
const tlsScratches = 16

func newTLSHub(f *Forwarder) *tlsHub {
	h := &tlsHub{
		dests:   make(map[netip.AddrPort]*streamConn),
		dialing: make(map[netip.AddrPort]*dialMeta),
		shaking: make(map[netip.Addr]int),
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
			var under net.Conn = raw
			w := newTLSWire(raw, c)
			if w != nil {
				under = w
			}
			go s.serveTLS(ctx, l, raw, w, tls.Server(under, cfg), netip.AddrPort{}, o.peer)
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
// dest. wire, when not nil, is what tc reads (readStream). peer is an
// inbound connection's source as a PROXY header named it; zero: its own
// remote address.
func (s *Server) serveTLS(ctx context.Context, leg *Leg, raw net.Conn, wire *tlsWire, tc *tls.Conn, dest, peer netip.AddrPort) {
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
		// Counted against the source's cap while it shakes hands, or one
		// source could hold max_connections handshakes.
		if !s.startShake(peer.Addr()) {
			s.streams.ConnsRefused.Add(1)
			raw.Close()
			return
		}
		if !s.mem.holdHandshake(&sc.h) {
			s.endShake(peer.Addr())
			s.streams.BudgetCloses.Add(1)
			raw.Close()
			return
		}
		_, err := siptls.Handshake(ctx, tc, s.lim.ConnectTimeout)
		s.endShake(peer.Addr())
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
	if !s.mem.chargeConn(tlsConnCharge) {
		s.streams.BudgetCloses.Add(1)
		ts.close()
		if !inbound {
			s.forgetDial(dest)
		}
		return
	}
	ts.charged = tlsConnCharge
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
		s.mem.unchargeConn(ts.charged)
		ts.close()
		if !inbound {
			s.forgetDial(dest)
		}
		return
	}
	sc.id = id
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
	// A goroutine of its own, which starts on a small stack, reads the
	// established connection; this one, grown by the handshake, ends.
	go s.runTLS(ctx, sc, tc, raw, wire)
}

// forgetDial drops the dial to dest and what waits for it, or every later
// message to dest would wait for it.
func (s *Server) forgetDial(dest netip.AddrPort) {
	s.tls.mu.Lock()
	meta := s.tls.dialing[dest]
	delete(s.tls.dialing, dest)
	s.tls.mu.Unlock()
	if meta != nil {
		s.dropPending(&s.streams, meta, DropConnectFailed)
	}
}

// runTLS reads an established TLS connection (readStream) and forgets it
// once it ends.
func (s *Server) runTLS(ctx context.Context, sc *streamConn, tc *tls.Conn, raw net.Conn, wire *tlsWire) {
	defer s.endTLS(sc)
	s.readStream(ctx, sc, tc, raw, wire)
}

// endTLS takes a TLS connection that ended out of the registry and the
// outgoing connections, and closes it.
func (s *Server) endTLS(sc *streamConn) {
	s.reg.Remove(sc.id, sc.peer.Addr(), sc.inbound)
	if !sc.inbound {
		s.tls.mu.Lock()
		if s.tls.dests[sc.dest] == sc {
			delete(s.tls.dests, sc.dest)
		}
		s.tls.mu.Unlock()
	}
	sc.tls.close()
	s.mem.unchargeConn(sc.tls.charged)
}

// readStream frames and forwards what a TLS peer sends until it closes, goes
// idle, or dawdles over a header. The read call's buffer is small (crypto/tls
// buffers a record itself) and borrowed only while there is something to
// read (wire's; without a wire it is held while the connection lasts);
// items complete in a read are framed in it, and a partial message moves
// to sc's holder, charged to the memory budget, until it is complete.
func (s *Server) readStream(ctx context.Context, sc *streamConn, c *tls.Conn, raw net.Conn, wire *tlsWire) {
	size := min(s.lim.ReadSize, tlsReadSize)
	// Borrowed while reading. The first read does not wait when crypto/tls
	// read records after the handshake's with its last one.
	var buf *[]byte
	if wire == nil || wire.extra {
		buf = pool.GetBytes(size)
	}
	h := &sc.h
	defer func() {
		if buf != nil {
			pool.PutBytes(buf)
		}
		if s.mem.enter(h) {
			s.mem.release(h)
		}
	}()
	partial := false       // read in sc's turn: the evictor may take h while the reader waits
	var deadline time.Time // of the idle expiry or the header deadline; zero after a read
	var set time.Time      // the read deadline last set
	for ctx.Err() == nil {
		if deadline.IsZero() {
			wait := s.lim.IdleTimeout(s.reg.Len())
			if partial {
				wait = s.lim.HeaderDeadline
			}
			deadline = time.Now().Add(wait)
		}
		draining := s.draining.Load()
		if d := s.tlsReadDeadline(deadline, draining); draining || !d.Equal(set) {
			c.SetReadDeadline(d)
			set = d
		}
		if !draining && s.draining.Load() {
			// Drain may have set its wake-up before the deadline above.
			set = s.tlsReadDeadline(deadline, true)
			c.SetReadDeadline(set)
		}
		var n int
		var err error
		switch {
		case wire == nil:
			if buf == nil {
				buf = pool.GetBytes(size)
			}
			n, err = c.Read((*buf)[:cap(*buf)])
		case buf == nil:
			// Idle: wait with nothing borrowed, then read what came.
			if err = wire.wait(); err == nil {
				buf = pool.GetBytes(size)
				n, err = tlsReadNow(c, wire, *buf)
			}
		default:
			n, err = tlsReadNow(c, wire, *buf)
		}
		if err == errWouldBlock {
			// crypto/tls and the socket are empty: the buffer goes back.
			pool.PutBytes(buf)
			buf = nil
			continue
		}
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
				set = time.Time{} // Drain set one of its own
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
		if wire != nil && !s.tlsCharge(sc.tls, wire) {
			s.streams.BudgetCloses.Add(1)
			return
		}
		if !s.tlsFrames(sc, c, raw, (*buf)[:n]) {
			return
		}
		if wire != nil && !wire.buffered(n, cap(*buf)) {
			// Nothing left to read without waiting: the buffer goes back.
			pool.PutBytes(buf)
			buf = nil
		}
		partial = h.heldLen() > 0
		s.mem.leave(h)
	}
}

// tlsCharge charges t for the largest record its peer has sent, which
// crypto/tls's input buffer has grown to hold and keeps; false when it does
// not fit in the budget.
func (s *Server) tlsCharge(t *tlsStream, wire *tlsWire) bool {
	if wire.maxRec <= tlsRecordCharged {
		return true
	}
	want := int64(tlsConnCharge + wire.maxRec - tlsRecordCharged)
	if want <= t.charged {
		return true
	}
	if !s.mem.chargeConn(want - t.charged) {
		return false
	}
	t.charged = want
	return true
}

// tlsReadNow reads c into b without waiting: errWouldBlock when crypto/tls
// has nothing buffered and the socket nothing to read.
func tlsReadNow(c *tls.Conn, wire *tlsWire, b []byte) (int, error) {
	wire.nowait = true
	n, err := c.Read(b[:cap(b)])
	wire.nowait = false
	if err == errWouldBlock && n > 0 {
		// Data, then a partial alert record: the next read says so again.
		err = nil
	}
	return n, err
}

// tlsFrames frames and forwards data, read from sc, in sc's turn; false
// when the stream is broken and must be closed.
func (s *Server) tlsFrames(sc *streamConn, c *tls.Conn, raw net.Conn, data []byte) bool {
	for {
		frame, kind, err := s.mem.nextFrame(&sc.h, &data, s.f.limits, s.maxMsg)
		if err != nil {
			s.tlsBroken(sc, c, raw, frame, err)
			return false
		}
		if frame == nil {
			return true
		}
		switch kind {
		case parser.FramePing:
			sc.tls.enqueue(pool.Copy(pong))
		case parser.FrameMessage:
			sc.tx.carry(frame, s.now.Load())
			s.forwardTLS(sc, frame)
		}
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
	var wire *tlsWire
	var raw net.Conn
	c, err := siptls.DialWith(ctx, "tcp", meta.dest.String(), meta.leg.tls, "", s.lim.ConnectTimeout, func(tc *net.TCPConn) net.Conn {
		raw = tc
		if wire = newTLSWire(tc, tc); wire != nil {
			return wire
		}
		return tc
	})
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
	if raw == nil {
		raw = c.NetConn()
	}
	s.serveTLS(ctx, meta.leg, raw, wire, c, meta.dest, netip.AddrPort{})
}
