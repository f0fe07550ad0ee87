package echo

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/siplb/siplb/parser"
)

// Sizes of a TCP connection's read buffer: it starts at streamBufSize and
// grows, up to what one message may be under parser's default limits, only
// when a message does not fit.
const (
	streamBufSize = 64 << 10
	maxStreamBuf  = parser.DefaultMaxHeader + parser.DefaultMaxBody
)

// pong answers a keep-alive ping (RFC 5626 §3.5.1).
const pong = "\r\n"

// tcpListener is one TCP listening socket; each accepted connection is
// served by its own goroutine with its own answerer, and all of them count
// into the listener's counters.
type tcpListener struct {
	ln       *net.TCPListener
	local    netip.AddrPort
	localStr string // "tcp://IP:PORT", its key in Stats
	stats    counters

	mu     sync.Mutex
	conns  map[*net.TCPConn]struct{} // open connections, closed by close
	closed bool
}

func newTCPListener(ln *net.TCPListener) *tcpListener {
	local := ln.Addr().(*net.TCPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	return &tcpListener{ln: ln, local: local, localStr: "tcp://" + local.String(), conns: map[*net.TCPConn]struct{}{}}
}

// serve accepts connections until the listener is closed; each connection
// is served on a goroutine counted in wg.
func (l *tcpListener) serve(wg *sync.WaitGroup, closing *atomic.Bool) error {
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !l.track(c) {
			c.Close()
			return nil
		}
		wg.Go(func() {
			defer l.untrack(c)
			l.serveConn(c)
		})
	}
}

// track records an open connection; false once the listener is closed.
func (l *tcpListener) track(c *net.TCPConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *tcpListener) untrack(c *net.TCPConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}

// close closes the listener and every open connection.
func (l *tcpListener) close() {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.ln.Close()
}

// serveConn reads c until it ends, frames what it reads by Content-Length
// and writes the answers to everything one read brought in a single write.
// A stream that cannot be framed is closed.
func (l *tcpListener) serveConn(c *net.TCPConn) {
	s := newStream(l.local, &l.stats)
	for {
		if s.have == len(s.in) && !s.grow() {
			return
		}
		n, err := c.Read(s.in[s.have:])
		s.have += n
		if n > 0 {
			ok := s.process()
			if len(s.out) > 0 {
				if _, werr := c.Write(s.out); werr != nil {
					return
				}
			}
			if !ok {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stream is the state of one TCP connection, owned by its goroutine.
type stream struct {
	answerer
	in   []byte
	have int // bytes buffered in in
}

func newStream(local netip.AddrPort, counts *counters) *stream {
	return &stream{answerer: newAnswerer(local, ";transport=tcp", counts), in: make([]byte, streamBufSize)}
}

// process answers every complete message buffered, appending the answers to
// s.out, and keeps the incomplete tail at the front of s.in. False when the
// stream is broken (parser.Frame's errors) and must be closed.
func (s *stream) process() bool {
	s.out, s.ends = s.out[:0], s.ends[:0]
	off, ok := 0, true
	for off < s.have {
		n, kind, err := parser.Frame(s.in[off:s.have], parser.Limits{})
		if err != nil {
			s.counts[mInvalid].Add(1)
			ok = false
			break
		}
		if n == 0 {
			break
		}
		switch kind {
		case parser.FrameMessage:
			s.answer(s.in[off : off+n])
		case parser.FramePing:
			s.out = append(s.out, pong...)
		}
		off += n
	}
	s.have = copy(s.in, s.in[off:s.have])
	return ok
}

// grow doubles the read buffer of a stream whose buffered message does not
// fit; false when it is already as large as a message may be.
func (s *stream) grow() bool {
	if len(s.in) >= maxStreamBuf {
		return false
	}
	in := make([]byte, min(2*len(s.in), maxStreamBuf))
	copy(in, s.in[:s.have])
	s.in = in
	return true
}
