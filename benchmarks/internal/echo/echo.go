// Package echo is a SIP backend emulator over UDP: a UAS that answers every
// request at once, without dialog or transaction state, so that a load
// balancer can be measured against backends that cost next to nothing.
//
// What it answers (each response copies all Via values in order, From, To,
// Call-ID and CSeq, and goes to the source address of the datagram):
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
// Every response also carries "Server: sipecho (IP:PORT)" naming the socket,
// so a client can tell which backend answered even where the Contact is the
// client's own (REGISTER). The To tag is derived from the Call-ID, so a
// retransmitted INVITE gets the same tag.
//
// Concurrency: one goroutine per socket owns that socket's buffers; the
// counters are atomic and may be read by Stats at any time.
package echo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/siplb/siplb/benchmarks/internal/sipwire"
)

// maxDatagram is the largest UDP payload read; SIP over UDP stays far below.
const maxDatagram = 65535

// batchSize is how many datagrams one batched read takes (recvmmsg).
const batchSize = 32

// Server is a set of listening UDP sockets, each answered by its own
// goroutine. Create it with Listen; the zero value is not usable.
type Server struct {
	socks   []*socket
	closing atomic.Bool
	wg      sync.WaitGroup
}

// Listen binds one UDP socket per address ("127.0.0.1:5070"; port 0 picks a
// free one). Nothing is answered until Serve.
func Listen(addrs []string) (*Server, error) {
	if len(addrs) == 0 {
		return nil, errors.New("echo: no listen address")
	}
	s := &Server{}
	for _, a := range addrs {
		ua, err := net.ResolveUDPAddr("udp", a)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("echo: listen %q: %w", a, err)
		}
		c, err := net.ListenUDP("udp", ua)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("echo: listen %q: %w", a, err)
		}
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		s.socks = append(s.socks, newSocket(c))
	}
	return s, nil
}

// Addrs returns the bound addresses, in the order given to Listen.
func (s *Server) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.socks))
	for i, k := range s.socks {
		out[i] = k.local
	}
	return out
}

// Serve answers on every socket until ctx is done or Close is called, then
// closes the sockets and returns nil. A read error other than the close
// ends Serve with that error.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.socks))
	for _, k := range s.socks {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := k.serve(); err != nil && !s.closing.Load() {
				errc <- err
			}
		}()
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

// Close closes all sockets; Serve returns once their goroutines have ended.
// It is safe to call more than once.
func (s *Server) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	for _, k := range s.socks {
		k.conn.Close()
	}
	return nil
}

// socket is one listening UDP socket and what its goroutine owns.
type socket struct {
	conn     *net.UDPConn
	local    netip.AddrPort
	localStr string
	counts   [numMethods]atomic.Uint64

	// Owned by the serving goroutine.
	in   []byte
	out  []byte // responses to the datagram(s) being answered, back to back
	ends []int  // end offset of each response in out
	msg  sipwire.Msg
	sdp  []byte
	mm   *mmsg // batched I/O, nil where the platform has none
}

func newSocket(c *net.UDPConn) *socket {
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	k := &socket{
		conn:     c,
		local:    local,
		localStr: local.String(),
		in:       make([]byte, maxDatagram),
		out:      make([]byte, 0, 8192),
		ends:     make([]int, 0, 3*batchSize),
	}
	k.msg.Vias = make([][]byte, 0, 16)
	k.msg.RecordRoutes = make([][]byte, 0, 8)
	k.sdp = appendSDP(nil, local.Addr())
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

// answer scans one datagram, counts it and appends its responses to k.out,
// recording where each ends in k.ends. It is the hot path: it allocates
// nothing once the buffers have grown.
func (k *socket) answer(b []byte) {
	m := &k.msg
	if !sipwire.Scan(m, b) {
		k.counts[mInvalid].Add(1)
		return
	}
	if !m.Request {
		k.counts[mResponse].Add(1)
		return
	}
	id := methodOf(m.Method)
	k.counts[id].Add(1)
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
func (k *socket) respond(m *sipwire.Msg, code int, reason string, o respOpt) {
	k.out = k.appendResponse(k.out, m, code, reason, o)
	k.ends = append(k.ends, len(k.out))
}
