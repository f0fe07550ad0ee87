package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// maxFD bounds the listener descriptors the server keeps per-socket state
// for; listeners are opened at start, so their descriptors are small.
const maxFD = 1 << 14

// Server runs the forwarding rules in gnet event loops: one SO_REUSEPORT
// socket per UDP leg and loop, so the kernel spreads datagrams over the loops
// and no loop waits for another; TCP listeners whose accepted connections and
// the outgoing connections to backends each belong to one loop.
type Server struct {
	gnet.BuiltinEventEngine

	f     *Forwarder
	loops int
	log   *slog.Logger
	lim   pool.Limits
	reg   *pool.Registry[streamConn]

	// socks holds the per-socket state of UDP listeners, indexed by
	// descriptor, created on a socket's first datagram by its loop.
	socks [maxFD]atomic.Pointer[sockState]
	legFD []atomic.Int64 // a UDP descriptor per leg, to send out of a leg other than the receiving one
	// batchOut holds, by descriptor, what a batched UDP socket's goroutine
	// writes to streams during one recvmmsg batch (directwrite.go).
	batchOut [maxFD]atomic.Pointer[streamBatch]

	mu      sync.Mutex
	byLoop  map[gnet.EventLoop]*loopState
	all     []*loopState
	eng     gnet.Engine
	booted  chan struct{}
	now     atomic.Int64 // coarse clock (UnixNano), advanced by the sweeper
	tls     *tlsHub
	dnsSem  chan struct{} // bounds the messages waiting for DNS at once
	batched bool          // UDP legs served by recvmmsg/sendmmsg sockets, not gnet

	outMu      sync.Mutex                   // guards outDialing
	outDialing map[netip.AddrPort]*dialMeta // dials started before any loop ran
	batch      []*batchSock
	kfilter    *kernelFilter // the batched UDP sockets' filter of blocked sources; nil without a flood detector
	onDrop     func(netip.AddrPort, balance.Hint)
	streams    Counters // stream-level counts: refused, expired, slow clients, connect failures

	mem        *memBudget  // bytes held in partial stream messages and TLS handshakes
	maxMsg     int         // the largest message the parser limits allow, header and body
	lnMu       sync.Mutex  // guards tcpLns and tlsLns
	tcpLns     []*acceptor // the TCP listeners, accepted by siplb (accept.go)
	tlsLns     []*acceptor // the TLS and WebSocket listeners
	acceptFail func() error
	draining   atomic.Bool   // Drain was called (drain.go)
	drainIdle  atomic.Int64  // DrainOptions.Idle, in nanoseconds
	started    chan struct{} // closed by the first OnTick: every loop is registered
	tickOnce   sync.Once
	listenFn   ListenFunc       // Options.Listen; nil: lc.Listen
	listenPkt  ListenPacketFunc // Options.ListenPacket; nil: lc.ListenPacket

	relay atomic.Pointer[relay] // a hand-over's relay to the other process (handover_relay.go); nil: none
}

// Options configures a Server beyond its Forwarder. The zero value means
// one loop per CPU, default limits and no logging.
type Options struct {
	Loops  int
	Limits pool.Limits
	Log    *slog.Logger
	// Unreachable, if set, is given hints that a destination may be
	// unreachable: a connection it refused or that failed, or (batched UDP)
	// an ICMP destination unreachable sent by the destination itself. It is
	// called from data-path goroutines and must not block.
	Unreachable func(netip.AddrPort, balance.Hint)
	// GnetUDP serves UDP legs with gnet's one-datagram-per-syscall path
	// instead of the default recvmmsg/sendmmsg batches.
	GnetUDP bool
	// Listen and ListenPacket, if set, open the listening sockets in place
	// of lc (handover.go): cmd/siplb passes sockets a predecessor handed
	// over in an upgrade.
	Listen       ListenFunc
	ListenPacket ListenPacketFunc
}

type sockState struct {
	loop *loopState
	leg  *Leg
}

// loopState is what one event loop owns: the Scratch of its hot path, its
// outgoing connections by destination, the messages waiting for a
// connection being opened, and its open streams for the sweeper.
type loopState struct {
	srv     *Server
	el      gnet.EventLoop
	s       *Scratch
	dests   *pool.Dests[streamConn]
	dialing map[netip.AddrPort]*dialMeta
	backoff map[netip.AddrPort]dialBackoff
	dirty   []*streamConn // connections with writes gathered in this event
	conns   map[*streamConn]struct{}
	mail    mailbox     // stream writes from outside the loop (mailbox.go)
	foreign streamBatch // writes to other loops' streams in this event, written at its end (directwrite.go)
	udp     udpQueue    // datagrams sent in this event, flushed at its end (udpsend_linux.go)
	wq      writeBudget // what its streams leave in gnet's outbound buffers (writequeue.go)
}

// NewServer returns a server for f's legs with the given loops (0: one per
// CPU). log may be nil.
func NewServer(f *Forwarder, loops int, log *slog.Logger) *Server {
	return NewServerWith(f, Options{Loops: loops, Log: log})
}

// NewServerWith returns a server for f's legs.
func NewServerWith(f *Forwarder, o Options) *Server {
	if o.Loops <= 0 {
		o.Loops = runtime.NumCPU()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	lim := o.Limits.Defaults()
	s := &Server{
		f: f, loops: o.Loops, log: o.Log, lim: lim,
		reg:     pool.NewRegistry[streamConn](lim),
		byLoop:  make(map[gnet.EventLoop]*loopState),
		booted:  make(chan struct{}),
		onDrop:  o.Unreachable,
		batched: !o.GnetUDP && batchSupported,
	}
	s.listenFn, s.listenPkt = o.Listen, o.ListenPacket
	if s.batched && f.guard.BlockTime() > 0 {
		s.kfilter = newKernelFilter(f.bal)
		k, d := s.kfilter, f.guard.BlockTime()
		f.onBlock = func(ip netip.Addr) { k.block(ip, d) }
	}
	s.tls = newTLSHub(f)
	s.mem = newMemBudget(lim.MemoryBudget, &s.streams.BudgetCloses)
	s.maxMsg = f.limits.MaxHeader
	if s.maxMsg <= 0 {
		s.maxMsg = parser.DefaultMaxHeader
	}
	if f.limits.MaxBody <= 0 {
		s.maxMsg += parser.DefaultMaxBody
	} else {
		s.maxMsg += f.limits.MaxBody
	}
	s.started = make(chan struct{})
	s.outDialing = make(map[netip.AddrPort]*dialMeta)
	s.dnsSem = make(chan struct{}, maxDNSWaiting)
	s.legFD = make([]atomic.Int64, len(f.legs))
	for i := range s.legFD {
		s.legFD[i].Store(-1)
	}
	s.now.Store(time.Now().UnixNano())
	return s
}

// Run serves until ctx is done, then stops the loops and returns. It returns
// an error at once if a listener cannot be opened.
//
// TCP listeners are siplb's own (accept.go), not gnet's: gnet runs the
// loops that serve the accepted and outgoing connections (and UDP legs
// under Options.GnetUDP). gnet v2.9.1 starts no engine without a listener
// (Engine.Register and Stop need one), so when no UDP leg is gnet's it is
// given idleListener, a UDP socket on loopback that no leg uses.
func (s *Server) Run(ctx context.Context) error {
	stopClock := make(chan struct{})
	go s.f.runClock(stopClock)
	defer close(stopClock)
	if s.kfilter != nil {
		go s.kfilter.run(ctx)
	}
	addrs := make([]string, 0, len(s.f.legs))
	if err := s.startTLS(ctx); err != nil {
		return err
	}
	if err := s.startWS(ctx); err != nil {
		return err
	}
	if s.batched {
		if err := s.startBatchUDP(ctx); err != nil {
			return err
		}
	}
	for _, l := range s.f.legs {
		if l.Transport != balance.UDP || s.batched {
			continue
		}
		addr, err := gnetAddr(l)
		if err != nil {
			return err
		}
		addrs = append(addrs, addr)
	}
	if err := s.openTCP(ctx); err != nil {
		return err
	}
	if len(addrs) == 0 && len(s.tcpLns) == 0 { // TLS legs only: no event loop to run
		close(s.booted)
		sweepDone := make(chan struct{})
		go s.sweeper(ctx, sweepDone) // no loop to sweep: it keeps the clock
		<-ctx.Done()
		<-sweepDone
		return nil
	}
	if len(addrs) == 0 {
		addrs = append(addrs, idleListener)
	}
	if s.mixesTransports() {
		defer reserveProcs(s.loops)() // the loops' waits must not hold every P (procs.go)
	}
	done := make(chan error, 1)
	go func() {
		done <- gnet.Rotate(s, addrs,
			gnet.WithNumEventLoop(s.loops),
			gnet.WithReusePort(true),
			gnet.WithLockOSThread(true),
			// The loop's read buffer, one per loop: stream connections
			// keep no input buffer of gnet's (streamTraffic takes all).
			gnet.WithReadBufferCap(max(maxDatagram, s.lim.ReadSize)),
			gnet.WithSocketRecvBuffer(socketBuffer),
			gnet.WithSocketSendBuffer(socketBuffer),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithTicker(true), // the first OnTick says the loops are registered
			gnet.WithLogger(gnetLogger{s.log}),
		)
	}()
	select {
	case err := <-done:
		s.closeTCP()
		if err == nil {
			err = errors.New("event loops ended at start")
		}
		return err
	case <-s.started:
	}
	s.startAccepting(ctx)
	close(s.booted)
	sweepDone := make(chan struct{})
	go s.sweeper(ctx, sweepDone)
	select {
	case err := <-done:
		s.closeTCP()
		return err
	case <-ctx.Done():
	}
	s.closeTCP()
	<-sweepDone
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.eng.Stop(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("stopping event loops", "err", err)
	}
	return <-done
}

func gnetAddr(l *Leg) (string, error) {
	v6 := l.Addr.Addr().Is6() && !l.Addr.Addr().Is4In6()
	switch l.Transport {
	case balance.UDP:
		if v6 {
			return "udp6://" + l.Addr.String(), nil
		}
		return "udp4://" + l.Addr.String(), nil
	case balance.TCP:
		if v6 {
			return "tcp6://" + l.Addr.String(), nil
		}
		return "tcp4://" + l.Addr.String(), nil
	}
	return "", fmt.Errorf("listener %s: transport %s is not served by the gnet engine", l.Name, l.Transport)
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// idleListener is the listener gnet is given when no leg is its own: a UDP
// socket per loop on a loopback port of the kernel's choice, which no leg
// uses; what arrives on it is dropped (sock).
const idleListener = "udp4://127.0.0.1:0"

// OnTick implements gnet.EventHandler. gnet calls it first once every loop
// is registered, which is when accepted connections may be enrolled.
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	s.tickOnce.Do(func() { close(s.started) })
	return time.Hour, gnet.None
}

// Ready is closed once the loops serve.
func (s *Server) Ready() <-chan struct{} { return s.booted }

// OnBoot implements gnet.EventHandler: it keeps a descriptor of every UDP
// leg, so a message may leave by a UDP leg before that leg received one.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	for _, l := range s.f.legs {
		if l.Transport != balance.UDP || s.batched {
			continue
		}
		addr, _ := gnetAddr(l)
		_, a, _ := cutScheme(addr)
		// gnet names its listeners by the plain network ("udp", not "udp4").
		if fd, err := eng.DupListener("udp", a); err == nil {
			s.legFD[l.Index].Store(int64(fd))
		} else {
			s.log.Warn("no descriptor for leg", "leg", l.Name, "err", err)
		}
	}
	return gnet.None
}

func cutScheme(s string) (scheme, rest string, ok bool) {
	for i := 0; i+3 <= len(s); i++ {
		if s[i:i+3] == "://" {
			return s[:i], s[i+3:], true
		}
	}
	return "", s, false
}

// OnTraffic implements gnet.EventHandler.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	if sc, ok := c.Context().(*streamConn); ok {
		return s.streamTraffic(sc)
	}
	return s.datagram(c)
}

// datagram handles one UDP datagram: one decision, at most one send.
func (s *Server) datagram(c gnet.Conn) gnet.Action {
	fd := c.Fd()
	st := s.sock(fd, c)
	buf, _ := c.Next(-1)
	if st == nil || st.leg == nil {
		return gnet.None
	}
	ua, ok := c.RemoteAddr().(*net.UDPAddr)
	if !ok {
		return gnet.None
	}
	src := ua.AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	r := s.f.Process(st.loop.s, buf, src, st.leg)
	if r.Out != nil {
		s.deliver(st.loop, &st.loop.s.Counters, &r, fd, st.leg)
		st.loop.flush()
	} else if r.Resolve != nil {
		s.resolveLater(&st.loop.s.Counters, buf, src, st.leg, 0, r.Resolve)
	}
	return gnet.None
}

// deliver sends a Result: a datagram from a UDP leg's socket, or a write on
// a stream, reusing a connection to the destination before opening one.
// loop is the calling event loop (nil for a TLS goroutine), cnt the counters
// to charge; fd and leg are the receiving UDP socket and its leg, if any.
// An event loop's datagrams and stream writes leave when it flushes, at
// the end of its event (loopState.flush): a caller with a loop flushes it.
// With no loop and a socket (fd >= 0), the caller is that batched UDP
// socket's goroutine: its stream writes leave at the end of its recvmmsg
// batch, when it calls flushStreams.
func (s *Server) deliver(loop *loopState, cnt *Counters, r *Result, fd int, leg *Leg) {
	switch r.Leg.Transport {
	case balance.UDP:
		out := fd
		if r.Leg != leg || fd < 0 {
			out = int(s.legFD[r.Leg.Index].Load())
		}
		if out < 0 {
			cnt.Drops[DropSendError].Add(1)
			return
		}
		if loop != nil && loop.udp.add(out, r.Out, r.To) {
			return
		}
		if err := sendto(out, r.Out, r.Sockaddr); err != nil {
			cnt.Drops[DropSendError].Add(1)
		}
		return
	}
	if r.Conn != 0 {
		if sc := s.reg.Get(r.Conn); sc != nil {
			if loop == nil && fd >= 0 && fd < maxFD && sc.c != nil {
				sc.tx.carry(r.Out, s.now.Load())
				s.gatherBatched(fd, sc, r.Out)
				return
			}
			s.write(loop, cnt, sc, r.Out)
			return
		}
		if s.relayOut(cnt, r.Conn, r.Out) { // the other process's, during a hand-over
			return
		}
	}
	if !r.To.IsValid() {
		cnt.Drops[DropConnGone].Add(1)
		return
	}
	switch {
	case r.Leg.Transport.WebSocket():
		// siplb opens no WebSocket: the browser's connection has closed.
		cnt.Drops[DropConnGone].Add(1)
	case r.Leg.Transport == balance.TLS:
		s.sendTLS(cnt, r.Leg, r.To, r.Out)
	case loop != nil:
		s.sendStream(loop, r.Leg, r.To, r.Out)
	default:
		s.sendStreamOutside(cnt, r.Leg, r.To, r.Out)
	}
}

// sendto sends one datagram. An ICMP error queued on the socket
// (IP_RECVERR) fails the next send on it, unsent; the error is about an
// earlier datagram and may be forged, so it must not cost this one: send
// again, a few times.
func sendto(fd int, p []byte, sa unix.Sockaddr) error {
	for range 8 {
		if err := unix.Sendto(fd, p, 0, sa); err != unix.ECONNREFUSED && err != unix.EHOSTUNREACH && err != unix.ENETUNREACH {
			return err
		}
	}
	return errors.New("socket error queue kept failing the send")
}

// maxDNSWaiting bounds the messages held while their next hop is resolved.
const maxDNSWaiting = 256

// dnsTimeout bounds one resolution off the data path.
const dnsTimeout = 5 * time.Second

// resolveLater resolves q off the event loop, then processes a copy of the
// message again, now answered from the DNS cache, and sends it.
func (s *Server) resolveLater(cnt *Counters, msg []byte, src netip.AddrPort, leg *Leg, conn pool.ConnID, q *DNSQuestion) {
	select {
	case s.dnsSem <- struct{}{}:
	default:
		cnt.Drops[DropDNSBusy].Add(1)
		return
	}
	m := bytes.Clone(msg)
	go func() {
		defer func() { <-s.dnsSem }()
		ctx, cancel := context.WithTimeout(context.Background(), dnsTimeout)
		_, err := s.f.resolver.Resolve(ctx, q.Host, q.Port, q.Transport, q.Secure)
		cancel()
		if err != nil {
			s.log.Debug("next hop unresolvable", "host", q.Host, "err", err)
		}
		scr := <-s.tls.scratch
		defer func() { s.tls.scratch <- scr }()
		r := s.f.ProcessConn(scr, m, src, leg, conn)
		switch {
		case r.Out != nil:
			s.deliver(nil, &scr.Counters, &r, -1, nil)
		case r.Resolve != nil:
			scr.drop(DropUnresolvable)
		}
	}()
}

// sock returns the state of the UDP socket fd, making it on the first datagram.
func (s *Server) sock(fd int, c gnet.Conn) *sockState {
	if fd < 0 || fd >= maxFD {
		return nil
	}
	if st := s.socks[fd].Load(); st != nil {
		return st
	}
	la, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil
	}
	leg := s.legAt(balance.UDP, la.AddrPort())
	if leg == nil {
		// idleListener: remembered with no leg, so its datagrams are
		// dropped without a word each.
		s.log.Debug("datagram on a socket of no leg", "local", la.String())
	}
	st := &sockState{loop: s.loopOf(c.EventLoop()), leg: leg}
	s.socks[fd].Store(st)
	return st
}

// legAt finds the leg of a transport bound to local.
func (s *Server) legAt(t balance.Transport, local netip.AddrPort) *Leg {
	for _, l := range s.f.legs {
		if l.Transport == t && l.Addr.Port() == local.Port() &&
			(l.Addr.Addr().Unmap() == local.Addr().Unmap() || l.Addr.Addr().IsUnspecified()) {
			return l
		}
	}
	return nil
}

// loopOf returns the state of an event loop, making it on first use.
func (s *Server) loopOf(el gnet.EventLoop) *loopState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls, ok := s.byLoop[el]; ok {
		return ls
	}
	ls := &loopState{
		srv:     s,
		el:      el,
		s:       s.f.NewScratch(),
		dests:   pool.NewDests[streamConn](),
		dialing: make(map[netip.AddrPort]*dialMeta),
		backoff: make(map[netip.AddrPort]dialBackoff),
		conns:   make(map[*streamConn]struct{}),
	}
	s.newMailbox(ls)
	ls.udp.init(&ls.s.Counters, s.onDrop)
	ls.wq.limit = s.lim.WriteBudget / int64(max(s.loops, 1))
	s.byLoop[el] = ls
	s.all = append(s.all, ls)
	return ls
}

// Stats sums the counters of every loop.
func (s *Server) Stats() Snapshot {
	var snap Snapshot
	snap.Replies = make(map[int]uint64)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ls := range s.all {
		snap.add(&ls.s.Counters)
	}
	snap.add(&s.streams)
	for _, sc := range s.tls.all {
		snap.add(&sc.Counters)
	}
	for _, b := range s.batch {
		snap.add(&b.scr.Counters)
	}
	snap.Conns = s.reg.Len()
	snap.ConnsBy = make(map[ConnKind]int)
	s.reg.Range(func(_ pool.ConnID, sc *streamConn) bool {
		if sc.leg != nil {
			snap.ConnsBy[ConnKind{Transport: sc.leg.Transport, Inbound: sc.inbound}]++
		}
		return true
	})
	snap.FloodBlocks = s.f.GuardStats().NewlyBlocked
	snap.StreamBytes = s.mem.Held()
	return snap
}

// gnetLogger sends gnet's own logging to slog.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) {}
func (g gnetLogger) Infof(format string, args ...any)  {}
func (g gnetLogger) Warnf(format string, args ...any) {
	g.l.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Errorf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}

var _ gnet.EventHandler = (*Server)(nil)

// SendProbe implements balance.ProbeSender: a health probe leaves from the
// socket of a leg of the backend's transport, as the data path's requests do.
func (s *Server) SendProbe(to *balance.Backend, msg []byte) error {
	leg := s.f.byTransport[to.Transport]
	if leg == nil {
		return fmt.Errorf("no %s listener to probe %s from", to.Transport, to.Addr)
	}
	if to.Transport == balance.UDP {
		fd := s.legFD[leg.Index].Load()
		if fd < 0 {
			return errors.New("listener not ready")
		}
		var sa unix.Sockaddr
		if a := to.Addr.Addr().Unmap(); a.Is4() {
			sa = &unix.SockaddrInet4{Addr: a.As4(), Port: int(to.Addr.Port())}
		} else {
			sa = &unix.SockaddrInet6{Addr: a.As16(), Port: int(to.Addr.Port())}
		}
		return sendto(int(fd), msg, sa)
	}
	// A stream probe goes over a connection of its own, which also proves
	// that the backend accepts connections; its answer is read here.
	m := bytes.Clone(msg)
	go s.probeStream(leg, to.Addr, m)
	return nil
}

func (s *Server) probeStream(leg *Leg, dst netip.AddrPort, msg []byte) {
	var c net.Conn
	var err error
	if leg.Transport == balance.TLS {
		c, err = siptls.Dial(context.Background(), "tcp", dst.String(), leg.tls, "", s.lim.ConnectTimeout)
	} else {
		c, err = net.DialTimeout("tcp", dst.String(), s.lim.ConnectTimeout)
	}
	if err != nil {
		if s.onDrop != nil {
			s.onDrop(dst, balance.ConnectHint(err))
		}
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.lim.ConnectTimeout))
	if _, err := c.Write(msg); err != nil {
		return
	}
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	var m parser.Message
	for {
		n, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		for {
			k, kind, err := parser.Frame(buf, parser.Limits{})
			if err != nil {
				return
			}
			if k == 0 {
				break
			}
			if kind == parser.FrameMessage && parser.Parse(&m, buf[:k]) == nil && !m.IsRequest() && m.StatusCode() >= 200 {
				if top, err := m.Via(0); err == nil && s.f.probes != nil {
					s.f.probes.Response(top.Branch, m.StatusCode())
				}
				return
			}
			buf = buf[k:]
		}
	}
}
