package tls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"
)

// DefaultHandshakeTimeout bounds a TCP connect plus TLS handshake when Dial
// or Handshake is given no timeout (Net::SIP's TCP connect timeout, 10 s).
const DefaultHandshakeTimeout = 10 * time.Second

// ErrNotTLS is returned by Handshake for a connection that is not a *tls.Conn.
var ErrNotTLS = errors.New("tls: connection is not a *tls.Conn")

// Listen listens on network ("tcp", "tcp4", "tcp6") and addr and returns a
// listener whose Accept returns *tls.Conn values configured by s.ServerConfig,
// so reloads of s apply to connections accepted later. The handshake runs on
// the first Read or Write; call Handshake to bound it in time (a client that
// never finishes its ClientHello otherwise holds the connection). The store
// must have a certificate, or Listen returns ErrNoCertificate.
func Listen(network, addr string, s *Store) (net.Listener, error) {
	if s.gen.Load().def == nil {
		return nil, ErrNoCertificate
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, s.ServerConfig()), nil
}

// Handshake runs the server-side handshake of c, a connection accepted from a
// listener returned by Listen, bounded by ctx and timeout (0:
// DefaultHandshakeTimeout). On error it closes c.
func Handshake(ctx context.Context, c net.Conn, timeout time.Duration) (*tls.Conn, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		c.Close()
		return nil, ErrNotTLS
	}
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

// Dial connects to addr over network and completes a client handshake with
// s.ClientConfig, bounding connect plus handshake by ctx and timeout (0:
// DefaultHandshakeTimeout). The name sent as SNI and verified is serverName,
// else the store's ServerName, else the host part of addr (an IP address is
// verified against the certificate's IP SANs). Errors from verification wrap
// *tls.CertificateVerificationError (errors.As).
func Dial(ctx context.Context, network, addr string, s *Store, serverName string, timeout time.Duration) (*tls.Conn, error) {
	return DialWith(ctx, network, addr, s, serverName, timeout, nil)
}

// DialWith is Dial with what the TLS connection reads and writes chosen by
// wrap, given the TCP connection (nil, or a connection that is not TCP:
// the connection itself).
func DialWith(ctx context.Context, network, addr string, s *Store, serverName string, timeout time.Duration, wrap func(*net.TCPConn) net.Conn) (*tls.Conn, error) {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg := s.ClientConfig(serverName)
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg.ServerName = host
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	under := raw
	if tc, ok := raw.(*net.TCPConn); ok && wrap != nil {
		under = wrap(tc)
	}
	c := tls.Client(under, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with %s (%s): %w", addr, cfg.ServerName, err)
	}
	return c, nil
}

// PeerCertificate returns the verified leaf certificate of the peer of c after
// its handshake: on a server-side conn the client's certificate (nil when
// none was sent, or when the policy is none), on a client-side conn the
// server's (nil with InsecureSkipVerify). Unverified certificates are never
// returned.
func PeerCertificate(c *tls.Conn) *x509.Certificate {
	st := c.ConnectionState()
	if !st.HandshakeComplete || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	return st.VerifiedChains[0][0]
}
