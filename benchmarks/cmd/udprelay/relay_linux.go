//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/internal/mmsg"
)

// batchSize is the number of datagrams one recvmmsg/sendmmsg moves.
const batchSize = 32

// slotSize is the room for one datagram; a longer one is truncated by the
// kernel and dropped. SIP over UDP stays under the path MTU (RFC 3261
// §18.1.1), far below this.
const slotSize = 16 << 10

// sockBuf is SO_RCVBUF/SO_SNDBUF asked for every socket, so that a burst of
// a closed-loop window does not overflow the default buffer; the kernel caps
// it at net.core.rmem_max.
const sockBuf = 4 << 20

// Config is one relay. Both fields are required.
type Config struct {
	Listen   netip.AddrPort   // where the clients send to
	Backends []netip.AddrPort // a client is relayed to Backends[hash(client) % len]
}

// Stats are the relay's counters, in datagrams.
type Stats struct {
	Clients uint64 // client addresses seen (one upstream socket each)
	Up      uint64 // relayed from clients to backends
	Down    uint64 // relayed from backends to clients
	Dropped uint64 // truncated on receipt, or refused by sendmmsg
}

// Relay forwards datagrams unchanged between clients and backends. Make one
// with Listen and run it with Serve; Stats and Addr may be called from any
// goroutine.
type Relay struct {
	cfg Config
	ln  *net.UDPConn
	lrc syscall.RawConn
	in  *recvBatch // the listener's; owned by Serve's goroutine

	// clients maps a client address to its upstream; owned by Serve's
	// goroutine, which alone creates upstreams.
	clients map[netip.AddrPort]*upstream
	touched []*upstream // upstreams with datagrams queued in this batch

	mu     sync.Mutex // guards ups and closed against shutdown
	ups    []*upstream
	closed bool
	wg     sync.WaitGroup

	nClients, up, down, dropped atomic.Uint64
}

// upstream is the socket connected to one client's backend. Its goroutine
// reads what the backend sends and writes it to the client through the
// listening socket; Serve's goroutine writes the client's datagrams on it.
type upstream struct {
	c      *net.UDPConn
	rc     syscall.RawConn
	client unix.RawSockaddrInet6 // the client, as sendmmsg takes it
	clen   uint32
	toBack outQueue   // filled and flushed by Serve's goroutine
	in     *recvBatch // owned by the upstream's goroutine
	toCli  outQueue   // owned by the upstream's goroutine
}

// Listen binds the listening socket. The upstream sockets are opened as
// clients appear.
func Listen(cfg Config) (*Relay, error) {
	if len(cfg.Backends) == 0 {
		return nil, errors.New("relay: no backends")
	}
	ln, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(cfg.Listen))
	if err != nil {
		return nil, fmt.Errorf("relay: listen %s: %w", cfg.Listen, err)
	}
	_ = ln.SetReadBuffer(sockBuf)
	_ = ln.SetWriteBuffer(sockBuf)
	lrc, err := ln.SyscallConn()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("relay: listen %s: %w", cfg.Listen, err)
	}
	return &Relay{
		cfg:     cfg,
		ln:      ln,
		lrc:     lrc,
		in:      newRecvBatch(),
		clients: make(map[netip.AddrPort]*upstream),
		touched: make([]*upstream, 0, batchSize),
	}, nil
}

// Addr is the listening address (with the port the kernel chose for :0).
func (r *Relay) Addr() netip.AddrPort {
	return r.ln.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Stats returns the counters so far.
func (r *Relay) Stats() Stats {
	return Stats{Clients: r.nClients.Load(), Up: r.up.Load(), Down: r.down.Load(), Dropped: r.dropped.Load()}
}

// Serve relays until ctx is done, then closes every socket and returns nil
// once every goroutine has ended; an error means a socket failed.
func (r *Relay) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, r.close)
	defer stop()
	err := r.serveClients()
	r.close()
	r.wg.Wait()
	return err
}

// close closes every socket, which ends every goroutine.
func (r *Relay) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	r.ln.Close()
	for _, u := range r.ups {
		u.c.Close()
	}
}

// serveClients reads batches from the clients and sends each datagram on
// its client's upstream socket, one sendmmsg per upstream and batch.
func (r *Relay) serveClients() error {
	b := r.in
	for {
		if err := r.lrc.Read(b.fn); err != nil {
			return closedOK(err)
		}
		if b.errno != 0 {
			if transient(b.errno) {
				continue
			}
			return fmt.Errorf("relay: recvmmsg: %w", b.errno)
		}
		var drops uint64
		for i := range b.n {
			h := &b.hdr[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				drops++
				continue
			}
			from, ok := mmsg.AddrPort(&b.addr[i])
			if !ok {
				drops++
				continue
			}
			u := r.clients[from]
			if u == nil {
				var err error
				if u, err = r.newUpstream(from, &b.addr[i], h.Hdr.Namelen); err != nil {
					return err
				}
				if u == nil { // closed meanwhile
					return nil
				}
			}
			if u.toBack.n == 0 {
				r.touched = append(r.touched, u)
			}
			u.toBack.add(b.slot(i), nil, 0)
		}
		var sent uint64
		for _, u := range r.touched {
			err := u.rc.Write(u.toBack.fn)
			sent += uint64(u.toBack.sent - u.toBack.drops)
			drops += uint64(u.toBack.drops)
			u.toBack.reset()
			if err != nil && !errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("relay: sendmmsg to backend: %w", err)
			}
		}
		clear(r.touched)
		r.touched = r.touched[:0]
		r.up.Add(sent)
		if drops > 0 {
			r.dropped.Add(drops)
		}
	}
}

// newUpstream opens the socket for a new client and starts its goroutine;
// nil, nil when the relay is closing.
func (r *Relay) newUpstream(from netip.AddrPort, sa *unix.RawSockaddrInet6, salen uint32) (*upstream, error) {
	back := r.cfg.Backends[pick(from, len(r.cfg.Backends))]
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(back))
	if err != nil {
		return nil, fmt.Errorf("relay: upstream to %s for %s: %w", back, from, err)
	}
	_ = c.SetReadBuffer(sockBuf)
	_ = c.SetWriteBuffer(sockBuf)
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("relay: upstream to %s for %s: %w", back, from, err)
	}
	u := &upstream{c: c, rc: rc, client: *sa, clen: salen, in: newRecvBatch()}
	u.toBack.init()
	u.toCli.init()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.Close()
		return nil, nil
	}
	r.ups = append(r.ups, u)
	r.wg.Add(1)
	r.mu.Unlock()
	r.clients[from] = u
	r.nClients.Add(1)
	go r.serveBackend(u)
	return u, nil
}

// serveBackend reads batches from u's backend and sends them to u's client
// from the listening socket.
func (r *Relay) serveBackend(u *upstream) {
	defer r.wg.Done()
	b := u.in
	name := (*byte)(unsafe.Pointer(&u.client))
	for {
		if err := u.rc.Read(b.fn); err != nil {
			return // closed
		}
		if b.errno != 0 {
			// A refused port (ICMP) and the like belong to one datagram;
			// anything else ends this upstream only.
			if transient(b.errno) {
				continue
			}
			return
		}
		var drops uint64
		for i := range b.n {
			if b.hdr[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
				drops++
				continue
			}
			u.toCli.add(b.slot(i), name, u.clen)
		}
		if u.toCli.n > 0 {
			err := r.lrc.Write(u.toCli.fn)
			r.down.Add(uint64(u.toCli.sent - u.toCli.drops))
			drops += uint64(u.toCli.drops)
			u.toCli.reset()
			if err != nil {
				return // the listener is closed
			}
		}
		if drops > 0 {
			r.dropped.Add(drops)
		}
	}
}

// recvBatch is the state of one recvmmsg: batchSize slots of slotSize bytes
// and the source address of each.
type recvBatch struct {
	buf   []byte
	hdr   [batchSize]unix.Mmsghdr
	iov   [batchSize]unix.Iovec
	addr  [batchSize]unix.RawSockaddrInet6 // room for either family
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // recv, bound once so that Read allocates no closure
}

func newRecvBatch() *recvBatch {
	b := &recvBatch{buf: make([]byte, batchSize*slotSize)}
	for i := range b.hdr {
		b.iov[i].Base = &b.buf[i*slotSize]
		b.iov[i].SetLen(slotSize)
		h := &b.hdr[i].Hdr
		h.Iov = &b.iov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&b.addr[i]))
	}
	b.fn = b.recv
	return b
}

// slot is datagram i of the last batch; valid until the next recv.
func (b *recvBatch) slot(i int) []byte {
	return b.buf[i*slotSize : i*slotSize+int(b.hdr[i].Len)]
}

// recv is the RawConn.Read callback: false asks the poller to wait.
func (b *recvBatch) recv(fd uintptr) bool {
	n, e := mmsg.Recv(fd, b.hdr[:])
	if e == unix.EAGAIN {
		return false
	}
	b.n, b.errno = n, e
	return true
}

// outQueue is up to batchSize datagrams for one sendmmsg. The datagrams are
// not copied: they stay in the recvBatch they came from until sent.
type outQueue struct {
	hdr     [batchSize]unix.Mmsghdr
	iov     [batchSize]unix.Iovec
	n, sent int
	drops   int                   // of the sent ones, refused by the kernel
	fn      func(fd uintptr) bool // send, bound once
}

func (q *outQueue) init() {
	for i := range q.hdr {
		q.hdr[i].Hdr.Iov = &q.iov[i]
		q.hdr[i].Hdr.SetIovlen(1)
	}
	q.fn = q.send
}

// add queues p for name (nil on a connected socket). p must not be empty:
// a zero-length datagram is dropped rather than queued.
func (q *outQueue) add(p []byte, name *byte, namelen uint32) {
	if len(p) == 0 {
		return
	}
	q.iov[q.n].Base = &p[0]
	q.iov[q.n].SetLen(len(p))
	q.hdr[q.n].Hdr.Name = name
	q.hdr[q.n].Hdr.Namelen = namelen
	q.n++
}

func (q *outQueue) reset() { q.n, q.sent, q.drops = 0, 0, 0 }

// send is the RawConn.Write callback: it sends hdr[sent:n], and false asks
// the poller to wait for room.
func (q *outQueue) send(fd uintptr) bool {
	for q.sent < q.n {
		n, e := mmsg.Send(fd, q.hdr[q.sent:q.n])
		switch e {
		case 0:
			q.sent += n
		case unix.EAGAIN:
			return false
		default:
			// The first datagram failed (a queued ICMP error, say): drop it
			// as a plain sendto would, and go on with the rest.
			q.sent++
			q.drops++
		}
	}
	return true
}

// pick is the backend index for a client: FNV-1a 64 over the address and
// port, so the same client always reaches the same backend.
func pick(a netip.AddrPort, n int) int {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	ip := a.Addr().As16()
	for _, c := range ip {
		h = (h ^ uint64(c)) * prime
	}
	p := a.Port()
	h = (h ^ uint64(p>>8)) * prime
	h = (h ^ uint64(p&0xff)) * prime
	return int(h % uint64(n))
}

// transient reports whether a socket error belongs to one datagram (an ICMP
// error queued by an earlier send, a full buffer) rather than the socket.
func transient(e syscall.Errno) bool {
	switch e {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ENOBUFS, unix.ENOMEM, unix.EMSGSIZE:
		return true
	}
	return false
}

// closedOK turns the error of a socket closed by shutdown into nil.
func closedOK(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
