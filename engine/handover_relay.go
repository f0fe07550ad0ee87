package engine

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/siplb/siplb/pool"
)

// The relay of a hand-over: both processes read the same UDP sockets until
// the new one is ready, and from then on only the new one does, but a
// TCP/TLS/WebSocket connection a client opened stays with the process that
// accepted it until it closes. A message for such a connection that
// arrives over UDP (a UDP backend's response to a TCP client, or its
// request in a dialog, through a flow token) may so land in the process
// that does not hold the connection: its ConnID names no connection here.
// For as long as the hand-over lasts, the two processes are joined by a
// pair of SOCK_SEQPACKET unix sockets (NewRelayPair, one end passed across
// exec): a process that is to write on a connection it accepted does not
// know sends the message over the relay instead of dropping it, and the
// other writes it on its connection if it holds it (else drops it,
// counted conn_gone; a relayed message is never relayed back). Only
// connections accepted from a peer are relayed: one siplb opened (to a
// backend) is opened again by whichever process sends, as without a
// hand-over. The relay ends when the other process closes its end (it
// exited) or EndRelay. Without a relay, the data path pays one atomic
// load, and only when a connection is missing.

// relayHeader is what precedes a relayed message: the ConnID, big-endian.
const relayHeader = 8

// ErrRelayUnsupported is NewRelayPair where there are no unix
// SOCK_SEQPACKET sockets.
var ErrRelayUnsupported = errors.New("engine: relays need unix seqpacket sockets")

// relay is one end of a relay pair.
type relay struct {
	f  *os.File
	fd int

	mu     sync.RWMutex // held for reading by each send; for writing by close
	closed bool

	sent, taken, dropped atomic.Uint64
}

// Relay makes f (this process's end of a NewRelayPair, or the other end
// inherited from the process that made it) this Server's relay: it takes
// over f (closes it, keeping a non-blocking copy: sends must never block
// a loop), replacing (and closing) any relay before, and serves what
// arrives on it until the other end closes or EndRelay. It may be called
// from any goroutine, before or after Run.
func (s *Server) Relay(f *os.File) error {
	pf, fd, err := relayFile(f)
	if err != nil {
		return err
	}
	r := &relay{f: pf, fd: fd}
	if old := s.relay.Swap(r); old != nil {
		old.close()
	}
	go s.readRelay(r)
	return nil
}

// EndRelay ends the relay, if any (an upgrade that failed).
func (s *Server) EndRelay() {
	if r := s.relay.Swap(nil); r != nil {
		r.close()
	}
}

// Relaying reports whether a relay is open.
func (s *Server) Relaying() bool { return s.relay.Load() != nil }

// relayOut sends out, meant for the connection conn that this process does
// not hold, to the other process, and reports whether a relay took it (or
// counted its loss as a send error in cnt). Called by deliver on a miss.
func (s *Server) relayOut(cnt *Counters, conn pool.ConnID, out []byte) bool {
	r := s.relay.Load()
	if r == nil || conn.Outbound() || len(out) == 0 {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return false
	}
	if len(out) > 2*s.maxMsg || writeRelayed(r.fd, uint64(conn), out) != nil {
		r.dropped.Add(1)
		cnt.Drops[DropSendError].Add(1)
		return true
	}
	r.sent.Add(1)
	return true
}

// readRelay serves what the other process relays: each message is written
// on the connection it names, if this process holds it.
func (s *Server) readRelay(r *relay) {
	buf := make([]byte, relayHeader+2*s.maxMsg)
	var err error
	for {
		var n int
		n, err = r.f.Read(buf)
		if err != nil {
			break
		}
		if n <= relayHeader {
			r.dropped.Add(1)
			continue
		}
		id := pool.ConnID(binary.BigEndian.Uint64(buf))
		sc := s.reg.Get(id)
		if sc == nil || id.Outbound() {
			r.dropped.Add(1)
			s.streams.Drops[DropConnGone].Add(1)
			continue
		}
		s.write(nil, &s.streams, sc, buf[relayHeader:n])
		r.taken.Add(1)
	}
	s.relay.CompareAndSwap(r, nil)
	why := "the other process closed its end"
	if !r.close() {
		why = "ended here"
	} else if !errors.Is(err, io.EOF) {
		why = err.Error()
	}
	s.log.Info("relay of the hand-over ended", "relayed_out", r.sent.Load(), "relayed_in", r.taken.Load(), "dropped", r.dropped.Load(), "why", why)
}

// close closes r's socket and reports whether it was open.
func (r *relay) close() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.closed = true
	r.f.Close()
	return true
}
