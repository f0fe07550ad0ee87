package engine

import (
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
)

// maxFD bounds the listener descriptors the server keeps per-socket state
// for; listeners are opened at start, so their descriptors are small.
const maxFD = 1 << 14

// Server runs the forwarding rules in gnet event loops: one SO_REUSEPORT UDP
// socket per leg and loop, so the kernel spreads datagrams over the loops and
// no loop waits for another.
type Server struct {
	gnet.BuiltinEventEngine

	f     *Forwarder
	loops int
	log   *slog.Logger

	// socks holds the per-socket state, indexed by descriptor, created on a
	// socket's first datagram by the loop that owns it.
	socks  [maxFD]atomic.Pointer[sockState]
	legFD  []atomic.Int64 // one descriptor per leg, to send out of a leg other than the receiving one
	mu     sync.Mutex
	all    []*sockState
	eng    gnet.Engine
	booted chan struct{}
}

type sockState struct {
	s   *Scratch
	leg *Leg
}

// NewServer returns a server for f's legs. log may be nil.
func NewServer(f *Forwarder, loops int, log *slog.Logger) *Server {
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{f: f, loops: loops, log: log, booted: make(chan struct{})}
	s.legFD = make([]atomic.Int64, len(f.legs))
	for i := range s.legFD {
		s.legFD[i].Store(-1)
	}
	return s
}

// Run serves until ctx is done, then stops the loops and returns. It returns
// an error at once if a listener cannot be opened.
func (s *Server) Run(ctx context.Context) error {
	addrs := make([]string, 0, len(s.f.legs))
	for _, l := range s.f.legs {
		if l.Transport != balance.UDP {
			return fmt.Errorf("listener %s: transport %s is not served yet", l.Name, l.Transport)
		}
		network := "udp4"
		if l.Addr.Addr().Is6() && !l.Addr.Addr().Is4In6() {
			network = "udp6"
		}
		addrs = append(addrs, network+"://"+l.Addr.String())
	}
	done := make(chan error, 1)
	go func() {
		done <- gnet.Rotate(s, addrs,
			gnet.WithNumEventLoop(s.loops),
			gnet.WithReusePort(true),
			gnet.WithLockOSThread(true),
			gnet.WithReadBufferCap(maxDatagram),
			gnet.WithSocketRecvBuffer(4<<20),
			gnet.WithSocketSendBuffer(4<<20),
			gnet.WithLogger(gnetLogger{s.log}),
		)
	}()
	select {
	case err := <-done:
		return err
	case <-s.booted:
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.eng.Stop(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("stopping event loops", "err", err)
	}
	return <-done
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// Ready is closed once the loops serve.
func (s *Server) Ready() <-chan struct{} { return s.booted }

// OnBoot implements gnet.EventHandler.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	close(s.booted)
	return gnet.None
}

// OnTraffic implements gnet.EventHandler: one datagram, one decision, at most
// one send, from the socket of the leg the decision names.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	fd := c.Fd()
	st := s.sock(fd, c)
	buf, _ := c.Next(-1)
	if st == nil {
		return gnet.None
	}
	ua, ok := c.RemoteAddr().(*net.UDPAddr)
	if !ok {
		return gnet.None
	}
	src := ua.AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	r := s.f.Process(st.s, buf, src, st.leg)
	if r.Out == nil {
		return gnet.None
	}
	out := fd
	if r.Leg != st.leg {
		if o := s.legFD[r.Leg.Index].Load(); o >= 0 {
			out = int(o)
		}
	}
	if err := unix.Sendto(out, r.Out, 0, r.Sockaddr); err != nil {
		st.s.drop(DropSendError)
	}
	return gnet.None
}

// sock returns the state of the socket fd, making it on the first datagram.
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
	local := la.AddrPort()
	var leg *Leg
	for _, l := range s.f.legs {
		if l.Addr.Port() == local.Port() && (l.Addr.Addr().Unmap() == local.Addr().Unmap() || l.Addr.Addr().IsUnspecified()) {
			leg = l
			break
		}
	}
	if leg == nil {
		s.log.Error("datagram on a socket of no leg", "local", local)
		return nil
	}
	st := &sockState{s: s.f.NewScratch(), leg: leg}
	s.socks[fd].Store(st)
	s.legFD[leg.Index].CompareAndSwap(-1, int64(fd))
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
	return st
}

// Stats sums the counters of every socket.
func (s *Server) Stats() Snapshot {
	var snap Snapshot
	snap.Replies = make(map[int]uint64)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.all {
		snap.add(&st.s.Counters)
	}
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
