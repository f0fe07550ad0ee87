package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// WebSocket legs (RFC 7118) serve browsers. siplb accepts their TCP
// connections itself (accept.go: the listener's ACL and the flood detector
// at accept, accept errors backed off), does the TLS handshake of a wss leg
// as a TLS leg does, and hands each connection to a net/http server of the
// leg's, which reads the HTTP upgrade and calls ServeHTTP; coder/websocket
// does the upgrade and the WebSocket framing (ping, pong, close). From then
// on the connection is served like a TLS one: its handler goroutine reads
// it, a writer runs while there is something to write, and it is in the
// pool.Registry, so a response or a backend's request finds it by the
// connection id in siplb's Via branch or in the client's flow token ("w",
// "x": flow.go).
//
// Each WebSocket message must hold exactly one SIP message (RFC 7118
// §5.1), so a message needs no Content-Length; when it has one, it must
// match. A message that holds less (a SIP message split over WebSocket
// messages) or more (two in one) closes the connection with 1002, a text
// message that is not UTF-8 with 1007, one over the header and body limits
// with 1009 (each counted). A message being read is charged to the memory
// budget beyond the first wsReadSize bytes, as a partial TCP message is;
// the upgrade is charged while it is read.
//
// A connection that sends nothing for the idle expiry (streams.idle_min to
// idle_max, by the number open) is pinged, and closed (counted as expired)
// unless its pong arrives within streams.header_deadline; a message begun
// must end within header_deadline too (a slow client).

// wsSubprotocol is the WebSocket subprotocol of SIP (RFC 7118 §4.1).
const wsSubprotocol = "sip"

// wsMaxHeaderBytes bounds the HTTP upgrade request's header section.
const wsMaxHeaderBytes = 8 << 10

// wsUpgradeCharge is what a connection is charged while its HTTP upgrade is
// read: the request's header section (net/http allows wsMaxHeaderBytes and
// 4 KiB more) and net/http's read and write buffers.
const wsUpgradeCharge = wsMaxHeaderBytes + 12<<10

// wsReadSize is the part of a message read before the budget is charged:
// a connection's own buffer, which most SIP messages fit.
const wsReadSize = 4 << 10

// wsStream is the write side and the state of one WebSocket connection.
type wsStream struct {
	conn    *websocket.Conn
	raw     net.Conn // the TCP connection under it: deadlines, and closing it ends everything at once
	q       sendQueue
	open    atomic.Bool // upgraded and not closed: enqueue takes messages
	once    sync.Once
	writeFn func() // write, made once: a go statement calling it allocates nothing

	sc       *streamConn
	seen     atomic.Uint64              // messages, pings and pongs received: what the idle ping looks at
	ping     atomic.Pointer[time.Timer] // the idle timer: the ping, and a drain's looks
	idleMu   sync.Mutex                 // held by the timer's run (wsIdle); a run that finds it held returns
	lastSeen uint64                     // seen at the last idle check; under idleMu
	pingAt   time.Time                  // when the idle ping's next check is due; under idleMu
}

// enqueue hands b to the writer; false when the connection is not open or
// its queue is full (b is then released).
func (w *wsStream) enqueue(b *pool.Buffer) bool {
	if !w.open.Load() {
		pool.PutBuffer(b)
		return false
	}
	ok, start := w.q.push(b)
	if start {
		go w.writeFn()
	}
	return ok
}

// write is the writer.
func (w *wsStream) write() { writeQueued(&w.q, w) }

// send writes one SIP message as one WebSocket message: text when it is
// UTF-8, else binary (RFC 7118 §5.1).
func (w *wsStream) send(b []byte) error {
	typ := websocket.MessageText
	if !utf8.Valid(b) {
		typ = websocket.MessageBinary
	}
	w.raw.SetWriteDeadline(time.Now().Add(tlsWriteTimeout))
	err := w.conn.Write(context.Background(), typ, b)
	// The library writes pings, pongs and closes with no deadline of its
	// own: a stale one would fail them once it passed.
	w.raw.SetWriteDeadline(time.Time{})
	return err
}

// close ends the connection at once: its reader, writer and pings fail.
func (w *wsStream) close() {
	w.once.Do(func() {
		w.open.Store(false)
		w.q.close()
		if t := w.ping.Load(); t != nil {
			t.Stop()
		}
		w.raw.Close()
	})
}

// wsConn is a connection on its way from the accept loop through net/http
// to ServeHTTP: the connection (a *tls.Conn on a wss leg), the TCP one under
// it, and its streamConn, whose holder carries the upgrade's charge.
type wsConn struct {
	net.Conn
	tcp     *net.TCPConn
	sc      *streamConn
	shaking atomic.Bool // counted by startShake until ServeHTTP or a close
}

// endShake ends c's count among its source's connections in flight, once.
func (wl *wsLeg) endShake(c *wsConn) {
	if c.shaking.CompareAndSwap(true, false) {
		wl.s.endShake(c.sc.peer.Addr())
	}
}

type wsConnKey struct{}

// wsLeg serves the WebSocket upgrades of one leg.
type wsLeg struct {
	s     *Server
	leg   *Leg
	ctx   context.Context
	hs    *http.Server
	conns chan *wsConn
	done  chan struct{}
	addr  net.Addr
	once  sync.Once
}

// startWS opens the listeners of the WebSocket legs and runs their accept
// loops and upgrade servers until ctx is done.
func (s *Server) startWS(ctx context.Context) error {
	var as []*acceptor
	var wls []*wsLeg
	for _, l := range s.f.legs {
		if !l.Transport.WebSocket() {
			continue
		}
		var cfg *tls.Config
		if l.Transport == balance.WSS {
			if l.tls == nil {
				return errors.New("listener " + l.Name + ": wss needs a certificate (tls.cert_file, tls.key_file)")
			}
			if l.tls.Leaf() == nil {
				return errors.New("listener " + l.Name + ": " + siptls.ErrNoCertificate.Error())
			}
			cfg = l.tls.ServerConfig()
		}
		ln, err := s.listenTCP(ctx, "tcp", l)
		if err != nil {
			for _, a := range as {
				a.ln.Close()
			}
			return err
		}
		wl := s.newWSLeg(ctx, l, ln.Addr())
		wls = append(wls, wl)
		as = append(as, s.newAcceptor(l, ln, func(c *net.TCPConn, o connOrigin) error { return wl.take(c, cfg, o) }))
	}
	// A drain closes them with the TLS listeners (closeListeners).
	s.lnMu.Lock()
	s.tlsLns = append(s.tlsLns, as...)
	s.lnMu.Unlock()
	for i, a := range as {
		wl := wls[i]
		go wl.hs.Serve(wl)
		go func() {
			<-ctx.Done()
			a.ln.Close()
			wl.hs.Close()
		}()
		go a.run(ctx)
	}
	return nil
}

func (s *Server) newWSLeg(ctx context.Context, l *Leg, addr net.Addr) *wsLeg {
	wl := &wsLeg{s: s, leg: l, ctx: ctx, conns: make(chan *wsConn), done: make(chan struct{}), addr: addr}
	wl.hs = &http.Server{
		Handler:           wl,
		ReadHeaderTimeout: s.lim.HeaderDeadline,
		MaxHeaderBytes:    wsMaxHeaderBytes,
		ErrorLog:          log.New(io.Discard, "", 0),
		// No HTTP/2: a WebSocket upgrade is HTTP/1.1's.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, wsConnKey{}, c)
		},
		ConnState: wl.connState,
	}
	wl.hs.SetKeepAlivesEnabled(false) // a refused upgrade closes its connection
	return wl
}

// take is the accept loop's hand-off: it charges the upgrade to the budget
// and passes the connection on to net/http; a wss connection shakes hands
// first, in a goroutine of its own, bounded by the connect timeout. The
// peer is o's (a PROXY header's source) when set, else c's remote address.
func (wl *wsLeg) take(c *net.TCPConn, cfg *tls.Config, o connOrigin) error {
	s := wl.s
	sc := &streamConn{leg: wl.leg, inbound: true, peer: o.peer}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok && !sc.peer.IsValid() {
		p := ra.AddrPort()
		sc.peer = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
	}
	sc.h.kill = func() { c.Close() }
	// Counted against the source's cap until the upgrade is read, or one
	// source could hold max_connections of them.
	if !s.startShake(sc.peer.Addr()) {
		s.streams.ConnsRefused.Add(1)
		c.Close()
		return nil
	}
	charge := int64(wsUpgradeCharge)
	if cfg != nil {
		charge += tlsHandshakeCharge
	}
	if !s.mem.reserve(&sc.h, charge) {
		s.endShake(sc.peer.Addr())
		s.streams.BudgetCloses.Add(1)
		c.Close()
		return nil
	}
	s.mem.list(&sc.h)
	s.mem.leave(&sc.h)
	raw := o.conn(c, &s.streams) // what reads c: net/http, or the TLS handshake
	if cfg == nil {
		wl.push(newWSConn(raw, c, sc))
		return nil
	}
	go func() {
		tc, err := siptls.Handshake(wl.ctx, tls.Server(raw, cfg), s.lim.ConnectTimeout)
		if !s.mem.enter(&sc.h) {
			s.endShake(sc.peer.Addr())
			c.Close()
			return // evicted, and counted, while it was shaking hands
		}
		if err != nil {
			s.endShake(sc.peer.Addr())
			s.mem.release(&sc.h)
			if !errors.Is(err, errUntrustedProxy) { // counted as a PROXY drop
				s.streams.TLSHandshakeFailures.Add(1)
			}
			return
		}
		s.mem.leave(&sc.h) // the charge stays until the upgrade is read
		wl.push(newWSConn(tc, c, sc))
	}()
	return nil
}

// newWSConn is a connection counted by startShake, for net/http.
func newWSConn(c net.Conn, tcp *net.TCPConn, sc *streamConn) *wsConn {
	wc := &wsConn{Conn: c, tcp: tcp, sc: sc}
	wc.shaking.Store(true)
	return wc
}

// push hands c to net/http's accept loop (Accept).
func (wl *wsLeg) push(c *wsConn) {
	select {
	case wl.conns <- c:
	case <-wl.done:
		c.tcp.Close()
		wl.endShake(c)
		if wl.s.mem.enter(&c.sc.h) {
			wl.s.mem.release(&c.sc.h)
		}
	}
}

// Accept implements net.Listener for net/http: the connections take passes.
func (wl *wsLeg) Accept() (net.Conn, error) {
	select {
	case c := <-wl.conns:
		return c, nil
	case <-wl.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (wl *wsLeg) Close() error {
	wl.once.Do(func() { close(wl.done) })
	return nil
}

// Addr implements net.Listener.
func (wl *wsLeg) Addr() net.Addr { return wl.addr }

// connState gives back the upgrade's charge of a connection that net/http
// closes without calling ServeHTTP (a malformed or slow request).
func (wl *wsLeg) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed {
		return
	}
	wc, ok := c.(*wsConn)
	if !ok {
		return
	}
	wl.endShake(wc)
	if wl.s.mem.enter(&wc.sc.h) {
		wl.s.mem.release(&wc.sc.h)
	}
}

// ServeHTTP refuses what is not a SIP WebSocket upgrade (426 without
// Upgrade: websocket, 403 for an Origin not allowed, 400 without the sip
// subprotocol, 503 over a connection cap), upgrades the rest and reads the
// connection until it ends.
func (wl *wsLeg) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	s := wl.s
	wc, ok := r.Context().Value(wsConnKey{}).(*wsConn)
	if !ok {
		http.Error(rw, "no connection", http.StatusInternalServerError)
		return
	}
	sc := wc.sc
	wl.endShake(wc) // the registry counts it from here, or it is refused
	if !s.mem.enter(&sc.h) {
		return // evicted while the request was read: its connection is closed
	}
	s.mem.release(&sc.h) // the request is read
	switch {
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		s.streams.Drops[DropWSHandshake].Add(1)
		rw.Header().Set("Upgrade", "websocket")
		http.Error(rw, "a SIP WebSocket endpoint: upgrade to websocket with subprotocol sip (RFC 7118)", http.StatusUpgradeRequired)
		return
	case !wl.leg.origins.allow(r.Header.Get("Origin")):
		s.streams.Drops[DropWSOrigin].Add(1)
		http.Error(rw, "origin not allowed", http.StatusForbidden)
		return
	case !headerHasToken(r.Header, "Sec-WebSocket-Protocol", wsSubprotocol):
		s.streams.Drops[DropWSHandshake].Add(1)
		http.Error(rw, "the sip WebSocket subprotocol is required (RFC 7118)", http.StatusBadRequest)
		return
	}
	ws := &wsStream{raw: wc.tcp, sc: sc}
	ws.writeFn = ws.write
	sc.ws = ws
	sc.tx.last.Store(s.now.Load())
	id, err := s.reg.Add(sc, sc.peer.Addr(), true)
	if err != nil {
		s.streams.ConnsRefused.Add(1)
		http.Error(rw, "too many connections", http.StatusServiceUnavailable)
		return
	}
	sc.id = id
	defer s.reg.Remove(id, sc.peer.Addr(), true)
	charge := int64(wsConnCharge)
	if wl.leg.Transport == balance.WSS {
		charge += tlsConnCharge
	}
	if !s.mem.chargeConn(charge) {
		s.streams.BudgetCloses.Add(1)
		http.Error(rw, "over the memory budget", http.StatusServiceUnavailable)
		return
	}
	defer s.mem.unchargeConn(charge)
	conn, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{wsSubprotocol},
		InsecureSkipVerify: true, // the Origin was checked above, against listen[].origins
		OnPingReceived: func(context.Context, []byte) bool {
			ws.seen.Add(1)
			return true
		},
		OnPongReceived: func(context.Context, []byte) { ws.seen.Add(1) },
	})
	if err != nil {
		s.streams.Drops[DropWSHandshake].Add(1)
		return // Accept has answered
	}
	wc.tcp.SetDeadline(time.Time{})
	// wsMessage enforces the limit, counting before it closes; coder's
	// is a backstop.
	conn.SetReadLimit(int64(s.maxMsg + wsReadSize))
	ws.conn = conn
	ws.open.Store(true)
	defer conn.CloseNow()
	defer ws.close()
	stop := context.AfterFunc(wl.ctx, ws.close)
	defer stop()
	t := time.AfterFunc(time.Hour, func() { s.wsIdle(ws) })
	ws.idleMu.Lock()
	ws.ping.Store(t)
	s.wsRearm(ws)
	ws.idleMu.Unlock()
	s.readWS(sc, ws)
}

// wsRearm sets the idle timer of ws, under idleMu: for the next idle
// check, or sooner while the server drains (drainTick).
func (s *Server) wsRearm(ws *wsStream) {
	d := s.lim.IdleTimeout(s.reg.Len())
	ws.pingAt = time.Now().Add(d)
	if s.draining.Load() {
		d = min(d, drainTick)
	}
	ws.ping.Load().Reset(d)
}

// wsDrainWake makes the idle timer of ws run now, for a drain's first look
// (Drain).
func wsDrainWake(ws *wsStream) {
	if t := ws.ping.Load(); t != nil {
		t.Reset(0)
	}
}

// wsIdle runs on the idle timer: while the server drains, a connection
// with no transaction open that carried nothing for the drain's Idle is
// closed (going away, counted as expired); a connection that received
// nothing since the last idle check is pinged, and closed if no pong comes
// in time.
func (s *Server) wsIdle(ws *wsStream) {
	if !ws.open.Load() || !ws.idleMu.TryLock() {
		return // closed, or a run in progress, which rearms the timer
	}
	defer ws.idleMu.Unlock()
	if s.draining.Load() {
		if s.drainIdleFor(ws.sc, s.now.Load()) {
			s.streams.ConnsExpired.Add(1)
			ws.open.Store(false)
			ws.conn.Close(websocket.StatusGoingAway, "the server is going away")
			ws.close()
			return
		}
		if time.Now().Before(ws.pingAt) {
			ws.ping.Load().Reset(drainTick)
			return
		}
	}
	if n := ws.seen.Load(); n != ws.lastSeen {
		ws.lastSeen = n
		s.wsRearm(ws)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.lim.HeaderDeadline)
	err := ws.conn.Ping(ctx)
	cancel()
	if err != nil {
		if ws.open.Load() {
			s.streams.ConnsExpired.Add(1)
		}
		ws.close()
		return
	}
	ws.lastSeen = ws.seen.Load()
	s.wsRearm(ws)
}

// The ends of wsMessage that close the connection.
var (
	errWSEvicted = errors.New("evicted by the memory budget") // while its reader waited
	errWSTooBig  = errors.New("WebSocket message over the header and body limits")
)

// readWS reads messages until the connection ends, forwarding each SIP
// message with a Scratch borrowed from the TLS readers' set. Its first
// wsReadSize bytes are read into a pooled buffer borrowed from the start of
// the message to the end of its forwarding: an idle connection holds none.
func (s *Server) readWS(sc *streamConn, ws *wsStream) {
	h := &sc.h
	var tmp *[]byte // borrowed while a message is read and forwarded
	defer func() {
		if tmp != nil {
			pool.PutBytes(tmp)
		}
		if s.mem.enter(h) {
			s.mem.release(h)
		}
	}()
	for {
		if tmp != nil {
			pool.PutBytes(tmp)
			tmp = nil
		}
		typ, r, err := ws.conn.Reader(context.Background())
		if err != nil {
			return // closed by the peer, by siplb, or for a WebSocket protocol error (coder answered it)
		}
		ws.seen.Add(1)
		ws.raw.SetReadDeadline(time.Now().Add(s.lim.HeaderDeadline))
		tmp = pool.GetBytes(wsReadSize)
		msg, err := s.wsMessage(h, r, (*tmp)[:wsReadSize], s.maxMsg)
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, errWSTooBig):
				s.streams.Drops[DropOversize].Add(1) // before the peer can see the close
				s.mem.release(h)
				ws.open.Store(false)
				ws.conn.Close(websocket.StatusMessageTooBig, "over the header and body limits")
			case errors.Is(err, errWSEvicted):
				// counted by the budget, which closed the connection
			case errors.Is(err, errOverBudget):
				s.streams.BudgetCloses.Add(1)
			case errors.As(err, &ne) && ne.Timeout():
				s.streams.SlowClients.Add(1)
			}
			return
		}
		ws.raw.SetReadDeadline(time.Time{})
		if code, why := wsCheck(msg, typ, s.f.limits); code != 0 {
			s.streams.Drops[DropWSFraming].Add(1)
			s.mem.release(h)
			ws.open.Store(false)
			ws.conn.Close(code, why)
			return
		}
		sc.tx.carry(msg, s.now.Load())
		s.forwardTLS(sc, msg)
		s.mem.release(h)
	}
}

// wsMessage reads the rest of one WebSocket message from r: into tmp while
// it fits (the message is then tmp[:n], charged nothing), else into h's
// buffer, charged to the budget and returned in h's turn. The caller
// releases h. While a read waits, h may be evicted: errWSEvicted; a
// message over max bytes is errWSTooBig.
func (s *Server) wsMessage(h *holder, r io.Reader, tmp []byte, max int) ([]byte, error) {
	n, total := 0, 0
	for {
		k, err := r.Read(tmp[n:])
		n += k
		total += k
		if !s.mem.enter(h) {
			return nil, errWSEvicted
		}
		if total > max {
			return nil, errWSTooBig
		}
		if n > 0 && (n == len(tmp) || h.buf != nil) {
			if !s.mem.grow(h, h.heldLen()+n) {
				return nil, errOverBudget
			}
			*h.buf = append(*h.buf, tmp[:n]...)
			n = 0
		}
		switch {
		case err == io.EOF && h.buf != nil:
			return *h.buf, nil
		case err == io.EOF:
			return tmp[:n], nil
		case err != nil:
			return nil, err
		}
		s.mem.leave(h)
	}
}

// The reasons of a close for a message that is not one SIP message.
const (
	wsWhyOne  = "one SIP message per WebSocket message (RFC 7118 5.1)"
	wsWhyUTF8 = "a text message must be UTF-8"
)

// wsCheck reports whether a WebSocket message m holds exactly one SIP
// message (or is a CRLF keep-alive): 0, or the close code it earns and
// why. A SIP message needs no Content-Length here; when it has one, the
// message must end where it says. Other defects (too large a header, a bad
// Content-Length) are the SIP message's, answered by the forwarding rules.
func wsCheck(m []byte, typ websocket.MessageType, lim parser.Limits) (websocket.StatusCode, string) {
	if typ == websocket.MessageText && !utf8.Valid(m) {
		return websocket.StatusInvalidFramePayloadData, wsWhyUTF8
	}
	if isKeepAlive(m) {
		return 0, ""
	}
	n, _, err := parser.Frame(m, lim)
	switch {
	case err == parser.ErrMissingContentLength:
		return 0, "" // the body is the rest of the message
	case err != nil:
		return 0, ""
	case n != len(m):
		// n == 0: the header section or the body is cut short; else
		// something follows the message.
		return websocket.StatusProtocolError, wsWhyOne
	}
	return 0, ""
}

// headerHasToken reports whether a comma-separated header of h lists tok
// (ASCII case ignored), as Upgrade and Sec-WebSocket-Protocol do.
func headerHasToken(h http.Header, name, tok string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), tok) {
				return true
			}
		}
	}
	return false
}

var _ net.Listener = (*wsLeg)(nil)
