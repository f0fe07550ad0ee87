package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// The PROXY protocol (HAProxy's, versions 1 and 2) on TCP, TLS and WS/WSS
// legs: a load balancer in front of siplb opens each connection with a
// header that names the client it carries. A leg takes headers only from
// the sources of its proxy list (LegConfig.ProxyFrom); from those, the
// connection must start with one, and its source replaces the
// connection's peer everywhere siplb uses an address: the flood detector
// and the listener's ACL (AdmitConn runs again on it), the per-IP caps of
// the registry, received/rport and the flow token (ProcessConn's src), and
// the logs. The proxy's own address is checked first (AdmitConn at
// accept, as for any connection): a denied proxy is closed at once.
//
// The header is read by a goroutine of the acceptor's (at most
// proxyHeaderSlots per listener at once), within streams.header_deadline,
// before anything else: before the TLS handshake of a TLS or WSS leg,
// before the HTTP upgrade of a WebSocket one. Exactly the header's bytes
// are taken from the socket (v1: up to its line feed, found with
// MSG_PEEK; v2: its 16 bytes, then the length they give), so what follows
// stays in the kernel for gnet, crypto/tls or net/http to read; the bytes
// are then parsed by go-proxyproto. A header with the LOCAL command (the
// proxy's own health check), an UNKNOWN (v1) or unspecified (v2) family,
// or a family that is not TCP over IPv4 or IPv6 keeps the proxy's address.
// No header, a malformed one, or none within the deadline: the connection
// is closed, counted as drops{reason="proxy_protocol"}.
//
// A header from a source not in the list is refused too, and counted the
// same: a client must not be able to claim another's address. siplb does
// not wait for it: it looks at the first bytes the connection's first read
// returns (streamTraffic on a TCP leg; sniffConn under the TLS handshake or
// the HTTP server on a TLS or WS leg), and closes the connection when they
// begin with "PROXY " or the v2 signature. A SIP client speaks first, so
// nothing is delayed; a first read of fewer than 6 bytes is not looked at.

// The sizes of a PROXY header: v1's line is at most 107 bytes with its
// CRLF; v2's is 16 bytes and up to proxyV2Extra more (addresses and TLVs).
const (
	proxyV1Max   = 107
	proxyV2Fixed = 16
	proxyV2Extra = 520
)

// proxyHeaderSlots bounds the PROXY headers one listener reads at once;
// a connection from a trusted proxy beyond it is closed and counted.
const proxyHeaderSlots = 1024

// defaultProxyWait is the time a header has to arrive when
// streams.header_deadline is not set.
const defaultProxyWait = 5 * time.Second

// The reasons a PROXY header is refused.
var (
	errNoProxyHeader      = errors.New("no PROXY header from a source that must send one")
	errProxyHeaderTooLong = errors.New("PROXY header too long")
	errUntrustedProxy     = errors.New("a PROXY header from a source not trusted to send one")
)

// connOrigin is what the acceptor hands on with a connection: where it
// really comes from.
type connOrigin struct {
	// peer is the source a PROXY header named; zero: the connection's own
	// address (no header expected, or a LOCAL or UNKNOWN one).
	peer netip.AddrPort
	// sniff: the leg takes PROXY headers but not from this source, so a
	// header in the first bytes closes the connection.
	sniff bool
}

// conn is c as a TLS handshake or the HTTP server reads it: wrapped in a
// sniffConn, counting in cnt, when o.sniff.
func (o connOrigin) conn(c *net.TCPConn, cnt *Counters) net.Conn {
	if o.sniff {
		return &sniffConn{TCPConn: c, cnt: cnt}
	}
	return c
}

// looksLikeProxyHeader reports whether the first bytes of a connection
// begin a PROXY header: "PROXY " (v1) or the v2 signature, of which at
// least 6 bytes must be there.
func looksLikeProxyHeader(b []byte) bool {
	if len(b) >= 6 && string(b[:6]) == "PROXY " {
		return true
	}
	k := min(len(b), len(proxyproto.SIGV2))
	return k >= 6 && bytes.Equal(b[:k], proxyproto.SIGV2[:k])
}

// sniffConn is a TCP connection from a source that may not send a PROXY
// header: its first read that returns one is refused (errUntrustedProxy,
// counted in cnt) and the connection closed. Only its reader calls Read.
type sniffConn struct {
	*net.TCPConn
	cnt    *Counters
	looked bool
}

func (c *sniffConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	if !c.looked && n > 0 {
		c.looked = true
		if looksLikeProxyHeader(b[:n]) {
			c.cnt.Drops[DropProxyProtocol].Add(1)
			c.TCPConn.Close()
			return 0, errUntrustedProxy
		}
	}
	return n, err
}

// proxyWait is how long a trusted proxy has to send its header.
func (s *Server) proxyWait() time.Duration {
	if w := s.lim.HeaderDeadline; w > 0 {
		return w
	}
	return defaultProxyWait
}

// proxied reads the PROXY header of c, from a trusted proxy, in a goroutine
// of its own, then admits the source it names and hands c on; anything
// wrong closes c, counted.
func (a *acceptor) proxied(ctx context.Context, c *net.TCPConn) {
	select {
	case a.headers <- struct{}{}:
	default:
		a.s.streams.Drops[DropProxyProtocol].Add(1)
		c.Close()
		return
	}
	go func() {
		defer func() { <-a.headers }()
		peer, err := readProxyHeader(c, time.Now().Add(a.s.proxyWait()))
		if err != nil {
			a.s.streams.Drops[DropProxyProtocol].Add(1)
			a.s.log.Debug("PROXY header refused", "listener", a.leg.Name, "proxy", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		if peer.IsValid() && !a.s.f.AdmitConn(&a.s.streams, peer, a.leg) {
			c.Close() // the source the proxy speaks for is refused
			return
		}
		err = a.serve(c, connOrigin{peer: peer})
		if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
			a.s.streams.AcceptErrors.Add(1)
		}
	}()
}

// readProxyHeader reads one PROXY header from c before deadline, taking
// from the socket exactly its bytes, and returns the source it names
// (unmapped), or the zero AddrPort when the proxy's own address stands
// (LOCAL, UNKNOWN, an unspecified or non-TCP family).
func readProxyHeader(c *net.TCPConn, deadline time.Time) (netip.AddrPort, error) {
	c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	var buf [proxyV2Fixed + proxyV2Extra]byte
	if _, err := io.ReadFull(c, buf[:6]); err != nil {
		return netip.AddrPort{}, err
	}
	var hdr []byte
	switch {
	case string(buf[:6]) == "PROXY ":
		var err error
		if hdr, err = readProxyV1(c, buf[:proxyV1Max], 6); err != nil {
			return netip.AddrPort{}, err
		}
	case bytes.Equal(buf[:6], proxyproto.SIGV2[:6]):
		if _, err := io.ReadFull(c, buf[6:proxyV2Fixed]); err != nil {
			return netip.AddrPort{}, err
		}
		if !bytes.Equal(buf[:12], proxyproto.SIGV2) {
			return netip.AddrPort{}, errNoProxyHeader
		}
		n := int(binary.BigEndian.Uint16(buf[14:16]))
		if n > proxyV2Extra {
			return netip.AddrPort{}, errProxyHeaderTooLong
		}
		if _, err := io.ReadFull(c, buf[proxyV2Fixed:proxyV2Fixed+n]); err != nil {
			return netip.AddrPort{}, err
		}
		hdr = buf[:proxyV2Fixed+n]
	default:
		return netip.AddrPort{}, errNoProxyHeader
	}
	return parseProxyHeader(hdr)
}

// readProxyV1 reads the rest of a v1 line into buf, whose first n bytes
// are read: it peeks at what has arrived and takes up to the line feed,
// so nothing after the header leaves the socket.
func readProxyV1(c *net.TCPConn, buf []byte, n int) ([]byte, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	for n < len(buf) {
		var k int
		var perr error
		err := rc.Read(func(fd uintptr) bool {
			for {
				k, _, perr = unix.Recvfrom(int(fd), buf[n:], unix.MSG_PEEK)
				if perr != unix.EINTR {
					return perr != unix.EAGAIN
				}
			}
		})
		switch {
		case err != nil:
			return nil, err
		case perr != nil:
			return nil, perr
		case k == 0:
			return nil, io.ErrUnexpectedEOF
		}
		if i := bytes.IndexByte(buf[n:n+k], '\n'); i >= 0 {
			k = i + 1
		}
		if _, err := io.ReadFull(c, buf[n:n+k]); err != nil {
			return nil, err
		}
		n += k
		if buf[n-1] == '\n' {
			return buf[:n], nil
		}
	}
	return nil, errProxyHeaderTooLong
}

// parseProxyHeader parses one whole header with go-proxyproto and returns
// the source it names, or the zero AddrPort for the proxy's own.
func parseProxyHeader(hdr []byte) (netip.AddrPort, error) {
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(hdr), proxyV2Fixed+proxyV2Extra))
	if err != nil {
		return netip.AddrPort{}, err
	}
	if h.Command.IsLocal() || !h.TransportProtocol.IsStream() {
		return netip.AddrPort{}, nil
	}
	src, _, ok := h.TCPAddrs()
	if !ok {
		return netip.AddrPort{}, nil
	}
	ap := src.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !ap.Addr().IsValid() {
		return netip.AddrPort{}, nil
	}
	return ap, nil
}
