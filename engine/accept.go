package engine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
)

// siplb accepts TCP and TLS connections itself, one goroutine per listener
// on Go's netpoller, and hands each accepted TCP connection to a gnet loop
// with Engine.Register (which enrolls it into the loop with the fewest
// connections). gnet v2.9.1's own acceptor cannot be used: on any accept
// error but EAGAIN, EINTR, ECONNRESET and ECONNABORTED (EMFILE, ENFILE,
// ENOBUFS, ENOMEM) it returns ErrAcceptSocket, which ends the event loop and
// with it the whole engine, so a peer that opens connections until the
// process runs out of descriptors stops siplb.
//
// Here an accept error never ends anything: the listener backs off (5 ms,
// doubling to 1 s while the errors last), every other socket keeps being
// served, each error is counted (accept_errors) and each burst of them is
// logged once when it starts and once when it ends. When the error is a
// descriptor limit (EMFILE, ENFILE), the listener also sheds: it frees a
// spare descriptor it keeps for this, accepts up to shedPerRound waiting
// connections with it and closes each at once (counted as refused), then
// takes the spare back. A client in the kernel's backlog then learns at
// once that this instance is full, and may try another, instead of waiting
// for a SYN-ACKed connection nobody reads.

// The accept backoff while errors persist.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// shedPerRound bounds the waiting connections closed per backoff round when
// descriptors are exhausted.
const shedPerRound = 64

// listenTCP opens a TCP listener on network for leg l with SO_REUSEADDR
// and SO_REUSEPORT (several processes may serve one address, as with gnet)
// and the socket buffers gnet gave its listeners, which accepted sockets
// inherit. Options.Listen may hand over a listener open already.
func (s *Server) listenTCP(ctx context.Context, network string, l *Leg) (*net.TCPListener, error) {
	lc := net.ListenConfig{
		KeepAlive: -1, // as under gnet: idle expiry, not keep-alive probes, ends dead connections
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = errors.Join(
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1),
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer),
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer),
				)
			})
			return errors.Join(err, serr)
		},
	}
	ln, err := s.listen(ctx, &lc, network, l.Addr.String())
	if err != nil {
		return nil, err
	}
	return tcpListener(ln)
}

// socketBuffer is the kernel buffer size asked for each stream socket.
const socketBuffer = 4 << 20

// acceptor runs the accept loop of one TCP or TLS listener.
type acceptor struct {
	s     *Server
	leg   *Leg
	ln    *net.TCPListener
	serve func(*net.TCPConn, connOrigin) error // takes an accepted connection over; an error counts as an accept error
	spare int                                  // a descriptor kept to shed with under EMFILE; -1 when none

	// headers holds a slot per PROXY header being read (proxy.go); nil
	// when the leg takes none.
	headers chan struct{}

	// fail, when set (tests), is asked before each accept and may return
	// an error to take in place of accepting.
	fail func() error
}

func (s *Server) newAcceptor(leg *Leg, ln *net.TCPListener, serve func(*net.TCPConn, connOrigin) error) *acceptor {
	a := &acceptor{s: s, leg: leg, ln: ln, serve: serve, spare: -1, fail: s.acceptFail}
	if leg.proxy != nil {
		a.headers = make(chan struct{}, proxyHeaderSlots)
	}
	a.takeSpare()
	return a
}

// acceptQuiet is how long accepting must go without an error for a burst
// of errors to end; the next error starts a new burst, logged again.
const acceptQuiet = time.Second

// run accepts until ctx is done or the listener is closed.
func (a *acceptor) run(ctx context.Context) {
	defer a.dropSpare()
	var (
		wait    time.Duration
		burst   int       // errors in the current burst; 0: none
		lastErr time.Time // of the current burst
	)
	for {
		var c *net.TCPConn
		var err error
		if a.fail != nil {
			err = a.fail()
		}
		if err == nil {
			c, err = a.ln.AcceptTCP()
		}
		if err == nil {
			if a.spare < 0 {
				a.takeSpare()
			}
			var peer netip.AddrPort
			if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok {
				peer = ra.AddrPort()
				peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
				// A trusted load balancer (proxy_protocol) is only held to
				// the listener's ACL: its connections are its clients',
				// counted by the flood detector under their own addresses
				// once the header names them.
				admitted := true
				if a.leg.proxy.Contains(peer.Addr()) {
					if a.leg.acl != nil && !a.leg.acl.Permit(peer.Addr()) {
						a.s.streams.Drops[DropDenied].Add(1)
						admitted = false
					}
				} else {
					admitted = a.s.f.AdmitConn(&a.s.streams, peer, a.leg)
				}
				if !admitted {
					// The listener's ACL or the flood detector refuses the
					// source: closed before a loop or a handshake spends
					// anything on it.
					c.Close()
					continue
				}
			}
			if a.s.reg.Len() >= a.s.lim.MaxConns {
				// Full: refuse before a loop spends anything on it. The
				// registry, in OnOpen, is what enforces the cap exactly.
				a.s.streams.ConnsRefused.Add(1)
				c.Close()
				continue
			}
			if a.headers != nil && a.leg.proxy.Contains(peer.Addr()) {
				a.proxied(ctx, c) // the header first, then serve (proxy.go)
				continue
			}
			err = a.serve(c, connOrigin{sniff: a.headers != nil})
		}
		if err == nil {
			wait = 0
			if burst > 0 && time.Since(lastErr) >= acceptQuiet {
				a.s.log.Info("accept works again", "listener", a.leg.Name, "errors", burst)
				burst = 0
			}
			continue
		}
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return
		}
		a.s.streams.AcceptErrors.Add(1)
		if burst == 0 {
			a.s.log.Warn("accept failing: backing off while it does", "listener", a.leg.Name, "err", err)
		}
		burst++
		lastErr = time.Now()
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			a.shed()
		}
		wait = min(max(2*wait, minAcceptBackoff), maxAcceptBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// shed closes connections waiting in the backlog, with the spare
// descriptor freed for their turn.
func (a *acceptor) shed() {
	if a.spare < 0 {
		a.takeSpare() // perhaps a descriptor came free since
		return
	}
	a.dropSpare()
	a.ln.SetDeadline(time.Now().Add(time.Millisecond))
	for range shedPerRound {
		c, err := a.ln.AcceptTCP()
		if err != nil {
			break
		}
		c.SetLinger(0) // a reset: nothing of this connection is kept
		c.Close()
		a.s.streams.ConnsRefused.Add(1)
	}
	a.ln.SetDeadline(time.Time{})
	a.takeSpare()
}

func (a *acceptor) takeSpare() {
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		a.spare = fd
	}
}

func (a *acceptor) dropSpare() {
	if a.spare >= 0 {
		unix.Close(a.spare)
		a.spare = -1
	}
}

// acceptMeta travels with an accepted connection through gnet's Register
// to OnOpen.
type acceptMeta struct {
	leg *Leg
	o   connOrigin // the source a PROXY header named, or whether to look for one
}

// openTCP opens the listeners of the TCP legs; their accept loops start
// once the event loops run (startAccepting) and end when ctx is done.
func (s *Server) openTCP(ctx context.Context) error {
	for _, l := range s.f.legs {
		if l.Transport != balance.TCP {
			continue
		}
		// tcp4 or tcp6 by the address, as gnet listened.
		network := "tcp4"
		if a := l.Addr.Addr(); a.Is6() && !a.Is4In6() {
			network = "tcp6"
		}
		ln, err := s.listenTCP(ctx, network, l)
		if err != nil {
			s.closeTCP()
			return err
		}
		a := s.newAcceptor(l, ln, func(c *net.TCPConn, o connOrigin) error { return s.enrollTCP(ctx, l, c, o) })
		s.lnMu.Lock()
		s.tcpLns = append(s.tcpLns, a)
		s.lnMu.Unlock()
	}
	return nil
}

// startAccepting runs the accept loops of the TCP listeners.
func (s *Server) startAccepting(ctx context.Context) {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	for _, a := range s.tcpLns {
		go a.run(ctx)
	}
}

func (s *Server) closeTCP() {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	for _, a := range s.tcpLns {
		a.ln.Close()
	}
}

// closeListeners closes the TCP and TLS listeners: a connect is refused
// from now on, and the accept loops end (Drain).
func (s *Server) closeListeners() {
	s.closeTCP()
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	for _, a := range s.tlsLns {
		a.ln.Close()
	}
}

// enrollTCP hands an accepted connection to a gnet loop and waits until the
// loop has opened it (OnOpen), so the loops set the pace of accepting and
// at most one connection per listener is in flight (and one per PROXY
// header slot), holding two descriptors
// (gnet duplicates the descriptor and closes the original). An error (most
// likely EMFILE, no descriptor for the duplicate) means c is closed.
func (s *Server) enrollTCP(ctx context.Context, l *Leg, c *net.TCPConn, o connOrigin) error {
	gctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), &acceptMeta{leg: l, o: o}), c)
	ch, err := s.eng.Register(gctx)
	if err != nil {
		c.Close()
		return err
	}
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done(): // stopping: the loops may never open it
		return nil
	}
}
