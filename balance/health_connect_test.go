package balance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	siptls "github.com/siplb/siplb/tls"
)

// TestConnectHintReal: ConnectHint names what really failed for the dials
// the engine makes (net.Dialer for TCP, siptls.Dial for TLS) against real
// loopback servers: a closed port, a server that speaks something other
// than TLS, one that never answers the handshake, one that hangs up, one
// whose certificate does not verify.
func TestConnectHintReal(t *testing.T) {
	closed := func(t *testing.T) string {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	serve := func(t *testing.T, handle func(net.Conn)) string {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go handle(c)
			}
		}()
		t.Cleanup(func() { l.Close(); <-done })
		return l.Addr().String()
	}
	hold := func(t *testing.T) func(net.Conn) {
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) })
		return func(c net.Conn) { <-stop; c.Close() }
	}
	selfSigned := tlsSelfSigned(t)
	store, err := siptls.NewStore(siptls.Config{}) // the system's roots
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tls    bool
		server func(t *testing.T) string
		want   Hint
	}{
		{name: "tcp refused", server: closed, want: HintConnectRefused},
		{name: "tls refused", tls: true, server: closed, want: HintConnectRefused},
		{name: "tls to a server that is not TLS", tls: true, want: HintTLSHandshake, server: func(t *testing.T) string {
			return serve(t, func(c net.Conn) {
				c.Write([]byte("SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
				time.Sleep(time.Second)
				c.Close()
			})
		}},
		{name: "tls handshake unanswered", tls: true, want: HintTLSHandshake, server: func(t *testing.T) string { return serve(t, hold(t)) }},
		{name: "tls server hangs up", tls: true, want: HintTLSHandshake, server: func(t *testing.T) string {
			return serve(t, func(c net.Conn) { c.Close() })
		}},
		{name: "tls certificate not trusted", tls: true, want: HintTLSHandshake, server: func(t *testing.T) string {
			return serve(t, func(c net.Conn) {
				s := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{selfSigned}})
				s.HandshakeContext(context.Background())
				s.Close()
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.server(t)
			var err error
			if tc.tls {
				var c *tls.Conn
				c, err = siptls.Dial(t.Context(), "tcp", addr, store, "", 300*time.Millisecond)
				if c != nil {
					c.Close()
				}
			} else {
				var c net.Conn
				c, err = net.DialTimeout("tcp", addr, 300*time.Millisecond)
				if c != nil {
					c.Close()
				}
			}
			if err == nil {
				t.Fatal("dial succeeded")
			}
			if got := ConnectHint(err); got != tc.want {
				t.Errorf("ConnectHint(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}

// tlsSelfSigned returns a certificate for 127.0.0.1 that no root signed.
func tlsSelfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "siplb test backend"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
