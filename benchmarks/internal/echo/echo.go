// Package echo is a SIP backend emulator over UDP and TCP: a UAS that answers
// every request at once, without dialog or transaction state, so that a load
// balancer can be measured against backends that cost next to nothing.
//
// What it answers (each response copies all Via values in order, From, To,
// Call-ID and CSeq, and goes to the source address of the datagram, or back
// on the TCP connection the request came in on):
//
//	OPTIONS                    200 OK
//	INVITE                     100 Trying, 180 Ringing, 200 OK with SDP; the
//	                           18x/2xx carry a To tag, a Contact naming the
//	                           socket that received the INVITE and the
//	                           request's Record-Route values
//	ACK                        nothing
//	BYE                        200 OK
//	CANCEL                     200 OK, then 487 Request Terminated for the
//	                           INVITE (same Via branch, CSeq method INVITE)
//	REGISTER                   200 OK with the Contact echoed and Expires
//	                           (the request's, else 3600)
//	other RFC methods          200 OK (PRACK, UPDATE, INFO, MESSAGE, NOTIFY,
//	                           SUBSCRIBE, PUBLISH, REFER)
//	unknown methods            501 Not Implemented
//	responses, garbage         dropped, counted as "response" / "invalid"
//
// A request whose Call-ID starts with FloodMark, and a datagram that is not
// SIP but holds FloodMark anywhere, is also counted as "flood": the share of
// a flood (benchmarks/cmd/sipflood) that got through a load balancer.
//
// Over TCP the stream is framed by Content-Length (RFC 3261 §18.3, with the
// product's parser.Frame); a keep-alive ping ("\r\n\r\n", RFC 5626 §3.5.1)
// is answered with a pong, and the Contact says ";transport=tcp" so that a
// proxy sends the in-dialog requests over TCP too.
//
// Every response also carries "Server: sipecho (IP:PORT)" naming the socket,
// so a client can tell which backend answered even where the Contact is the
// client's own (REGISTER). The To tag is derived from the Call-ID, so a
// retransmitted INVITE gets the same tag.
//
// Concurrency: one goroutine per UDP socket and per TCP connection owns its
// buffers; the counters are atomic and may be read by Stats at any time.
package echo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/siplb/siplb/benchmarks/internal/sipwire"
)

// FloodMark starts the Call-ID of every message sipflood sends, and appears
// near the start of its garbage, so that a backend can count what reached it.
const FloodMark = "flood-"

// maxDatagram is the largest UDP payload read; SIP over UDP stays far below.
const maxDatagram = 65535

// batchSize is how many datagrams one batched read takes (recvmmsg).
const batchSize = 32

// Server is a set of listening UDP sockets and TCP listeners, each UDP
// socket and each TCP connection answered by its own goroutine. Create it
// with Listen; the zero value is not usable.
type Server struct {
	socks   []*socket
	tcps    []*tcpListener
	closing atomic.Bool
	wg      sync.WaitGroup
}

// Listen binds one listener per address: "127.0.0.1:5070" or
// "udp://127.0.0.1:5070" is a UDP socket, "tcp://127.0.0.1:5070" a TCP
// listener; port 0 picks a free one. Nothing is answered until Serve.
func Listen(addrs []string) (*Server, error) {
	if len(addrs) == 0 {
		return nil, errors.New("echo: no listen address")
	}
	s := &Server{}
	for _, a := range addrs {
		if err := s.listen(a); err != nil {
			s.Close()
			return nil, fmt.Errorf("echo: listen %q: %w", a, err)
		}
	}
	return s, nil
}

// listen binds the one listener that a names.
func (s *Server) listen(a string) error {
	if hp, ok := strings.CutPrefix(a, "tcp://"); ok {
		ta, err := net.ResolveTCPAddr("tcp", hp)
		if err != nil {
			return err
		}
		ln, err := net.ListenTCP("tcp", ta)
		if err != nil {
			return err
		}
		s.tcps = append(s.tcps, newTCPListener(ln))
		return nil
	}
	ua, err := net.ResolveUDPAddr("udp", strings.TrimPrefix(a, "udp://"))
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return err
	}
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	s.socks = append(s.socks, newSocket(c))
	return nil
}

// Addrs returns the bound UDP addresses, in the order given to Listen.
func (s *Server) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.socks))
	for i, k := range s.socks {
		out[i] = k.local
	}
	return out
}

// TCPAddrs returns the bound TCP addresses, in the order given to Listen.
func (s *Server) TCPAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.tcps))
	for i, l := range s.tcps {
		out[i] = l.local
	}
	return out
}

// Serve answers on every listener until ctx is done or Close is called,
// then closes them (and every TCP connection) and returns nil. A read or
// accept error other than the close ends Serve with that error; an error on
// one TCP connection closes only that connection.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.socks)+len(s.tcps))
	for _, k := range s.socks {
		s.wg.Go(func() {
			if err := k.serve(); err != nil && !s.closing.Load() {
				errc <- err
			}
		})
	}
	for _, l := range s.tcps {
		s.wg.Go(func() {
			if err := l.serve(&s.wg, &s.closing); err != nil && !s.closing.Load() {
				errc <- err
			}
		})
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-ctx.Done():
	case <-done:
	case err = <-errc:
	}
	s.Close()
	<-done
	return err
}

// Close closes all sockets, listeners and TCP connections; Serve returns
// once their goroutines have ended. It is safe to call more than once.
func (s *Server) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	for _, k := range s.socks {
		k.conn.Close()
	}
	for _, l := range s.tcps {
		l.close()
	}
	return nil
}

// counters are the messages received per method on one listener.
type counters [numMethods]atomic.Uint64

// answerer turns requests received on one listening address into answers.
// There is one per UDP socket and one per TCP connection, owned by the
// goroutine that serves it.
type answerer struct {
	localStr string    // IP:PORT of the listener, for the Server header
	contact  string    // the Contact URI's host part: IP:PORT, and ";transport=tcp" on TCP
	counts   *counters // of the listener, shared by its connections

	msg  sipwire.Msg
	sdp  []byte
	out  []byte // responses to the message(s) being answered, back to back
	ends []int  // end offset of each response in out
}

func newAnswerer(local netip.AddrPort, transportParam string, counts *counters) answerer {
	a := answerer{
		localStr: local.String(),
		contact:  local.String() + transportParam,
		counts:   counts,
		out:      make([]byte, 0, 8192),
		ends:     make([]int, 0, 3*batchSize),
		sdp:      appendSDP(nil, local.Addr()),
	}
	a.msg.Vias = make([][]byte, 0, 16)
	a.msg.RecordRoutes = make([][]byte, 0, 8)
	return a
}

// socket is one listening UDP socket and what its goroutine owns.
type socket struct {
	conn  *net.UDPConn
	local netip.AddrPort
	stats counters
	answerer
	in []byte
	mm *mmsg // batched I/O, nil where the platform has none
}

func newSocket(c *net.UDPConn) *socket {
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	k := &socket{conn: c, local: local, in: make([]byte, maxDatagram)}
	k.answerer = newAnswerer(local, "", &k.stats)
	k.mm = newMmsg(c)
	return k
}

// serve reads and answers datagrams until the socket is closed, in batches
// where the platform has them.
func (k *socket) serve() error {
	if k.mm != nil {
		return k.serveBatch()
	}
	return k.servePlain()
}

// servePlain reads and answers one datagram per system call.
func (k *socket) servePlain() error {
	for {
		n, src, err := k.conn.ReadFromUDPAddrPort(k.in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP port unreachable from an earlier send shows up here on
			// some systems; it says nothing about this socket.
			if isTransient(err) {
				continue
			}
			return err
		}
		k.handle(k.in[:n], src)
	}
}

// handle answers one datagram from src with plain sends.
func (k *socket) handle(b []byte, src netip.AddrPort) {
	k.out, k.ends = k.out[:0], k.ends[:0]
	k.answer(b)
	start := 0
	for _, end := range k.ends {
		// A failed send is a lost response; the client's timeout counts it.
		_, _ = k.conn.WriteToUDPAddrPort(k.out[start:end], src)
		start = end
	}
}

// answer scans one message, counts it and appends its responses to k.out,
// recording where each ends in k.ends. It is the hot path: it allocates
// nothing once the buffers have grown.
func (k *answerer) answer(b []byte) {
	m := &k.msg
	if !sipwire.Scan(m, b) {
		k.counts[mInvalid].Add(1)
		if bytes.Contains(b, []byte(FloodMark)) {
			k.counts[mFlood].Add(1)
		}
		return
	}
	if !m.Request {
		k.counts[mResponse].Add(1)
		return
	}
	id := methodOf(m.Method)
	k.counts[id].Add(1)
	if bytes.HasPrefix(m.CallID, []byte(FloodMark)) {
		k.counts[mFlood].Add(1)
	}
	switch id {
	case mACK:
	case mINVITE:
		k.respond(m, 100, "Trying", 0)
		k.respond(m, 180, "Ringing", withTag|withContact|withRR)
		k.respond(m, 200, "OK", withTag|withContact|withRR|withSDP)
	case mCANCEL:
		k.respond(m, 200, "OK", withTag)
		k.respond(m, 487, "Request Terminated", withTag|cseqInvite)
	case mREGISTER:
		k.respond(m, 200, "OK", withTag|withBinding)
	case mOther:
		k.respond(m, 501, "Not Implemented", withTag)
	default:
		k.respond(m, 200, "OK", withTag|withContact)
	}
}

// respond appends one response to k.out.
func (k *answerer) respond(m *sipwire.Msg, code int, reason string, o respOpt) {
	k.out = k.appendResponse(k.out, m, code, reason, o)
	k.ends = append(k.ends, len(k.out))
}
