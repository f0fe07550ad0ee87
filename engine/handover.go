package engine

import (
	"context"
	"errors"
	"net"
	"time"
)

// A hand-over of the listening sockets to a new process (a hitless upgrade,
// cmd/siplb): the new process opens its sockets through Options.Listen and
// Options.ListenPacket, which return the very sockets the old process had
// open (descriptors passed across exec) instead of binding new ones, so the
// kernel's accept queues and datagram queues are shared and nothing queued
// is lost. Both processes serve the same sockets until the new one is
// ready; then the old one calls StopReading (it reads no datagram from then
// on, so every datagram queued or arriving is the new one's) and Drain (its
// stream listeners close, its connections finish what they carry).

// ListenFunc opens a stream listener on addr ("tcp4", "tcp6" or "tcp") as
// lc.Listen would; lc carries the socket options the engine sets, which a
// socket handed over already has. The listener must be a *net.TCPListener.
type ListenFunc func(ctx context.Context, lc *net.ListenConfig, network, addr string) (net.Listener, error)

// ListenPacketFunc opens the UDP socket number index (0 up, one per event
// loop: SO_REUSEPORT sockets of one address) of addr as lc.ListenPacket
// would. It must return a *net.UDPConn. A hand-over keys sockets by
// network, address and index, so each of a predecessor's sockets, and the
// datagrams queued in it, is taken over. Past the loops the engine asks on
// with handedOnly set, for a socket handed over only, until it gets nil
// and no error: a predecessor that ran more loops had more sockets, which
// the kernel keeps giving datagrams to while any process holds them, so
// each is served (by a reader of its own) rather than left to fill.
type ListenPacketFunc func(ctx context.Context, lc *net.ListenConfig, network, addr string, index int, handedOnly bool) (net.PacketConn, error)

// listen opens a stream listener through Options.Listen, or lc.
func (s *Server) listen(ctx context.Context, lc *net.ListenConfig, network, addr string) (net.Listener, error) {
	if s.listenFn != nil {
		return s.listenFn(ctx, lc, network, addr)
	}
	return lc.Listen(ctx, network, addr)
}

// listenPacket opens a UDP socket through Options.ListenPacket, or lc; nil
// and no error when handedOnly and none was handed over.
func (s *Server) listenPacket(ctx context.Context, lc *net.ListenConfig, network, addr string, index int, handedOnly bool) (net.PacketConn, error) {
	if s.listenPkt != nil {
		return s.listenPkt(ctx, lc, network, addr, index, handedOnly)
	}
	if handedOnly {
		return nil, nil
	}
	return lc.ListenPacket(ctx, network, addr)
}

// stopReadingWait bounds how long StopReading waits for the readers to
// end: one batch takes microseconds, so only a stalled machine reaches it.
const stopReadingWait = 2 * time.Second

// errNotTCP is a listener handed over that is not a TCP socket.
var errNotTCP = errors.New("the listener handed over is not a TCP socket")

func tcpListener(ln net.Listener) (*net.TCPListener, error) {
	if tl, ok := ln.(*net.TCPListener); ok {
		return tl, nil
	}
	ln.Close()
	return nil, errNotTCP
}

// StopReading makes the batched UDP sockets read no more datagrams: each
// reader finishes the batch it holds (decides and sends every datagram of
// it) and ends, and what the kernel queues from then on is left to the
// other process that holds the same sockets (a successor after a
// hand-over). The sockets stay open for sending until Run returns, so
// messages still decided here (on stream connections, DNS answers) leave
// as before. The kernel filter of blocked sources (kfilter_linux.go) is
// taken off the sockets and no longer kept. Call it once the successor is
// ready, before Drain. It returns once every reader has ended (or after
// stopReadingWait), so that no datagram is decided after it: a Drain that
// rejects new dialogs must not answer 503 to the last batch a reader
// held, which the successor would have forwarded. UDP legs
// served by gnet (Options.GnetUDP) go on reading: their sockets are gnet's
// and are not handed over. It may be called from any goroutine, once Ready
// is closed.
func (s *Server) StopReading() {
	s.mu.Lock()
	bs := append([]*batchSock(nil), s.batch...)
	s.mu.Unlock()
	for _, b := range bs {
		b.stopReading()
	}
	limit := time.NewTimer(stopReadingWait)
	defer limit.Stop()
	for _, b := range bs {
		select {
		case <-b.done:
		case <-limit.C:
			s.log.Warn("upgrade: a UDP reader did not end in time; going on", "wait", stopReadingWait)
			return
		}
	}
	if s.kfilter != nil {
		s.kfilter.releaseSockets()
	}
}
