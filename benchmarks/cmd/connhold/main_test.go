package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// selfSigned is a throwaway certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "connhold test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// server accepts on 127.0.0.1:0 until the test ends and counts the
// connections that opened (TLS: whose handshake completed).
func server(t *testing.T, useTLS bool) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	accepted = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if useTLS {
					tc := tls.Server(c, cfg)
					if tc.Handshake() != nil {
						return
					}
					c = tc
				}
				accepted.Add(1)
				c.Read(make([]byte, 1)) // until the client closes
			}()
		}
	}()
	return ln.Addr().String(), accepted
}

func TestRun(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name     string
		tls      bool
		args     []string // after -target
		target   string   // "": the test server
		wantCode int
		wantConn int64
	}{
		{name: "tcp", args: []string{"-n", "200", "-hold", "0"}, wantCode: 0, wantConn: 200},
		{name: "tls", tls: true, args: []string{"-tls", "-n", "50", "-hold", "0", "-parallel", "8"}, wantCode: 0, wantConn: 50},
		{name: "nothing listening", target: refused, args: []string{"-n", "3", "-hold", "0"}, wantCode: 1},
		{name: "bad n", args: []string{"-n", "0"}, wantCode: 2},
		{name: "bad flag", args: []string{"-frobnicate"}, wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, accepted := server(t, tc.tls)
			if tc.target != "" {
				addr = tc.target
			}
			args := append([]string{"-target", addr, "-timeout", "10s"}, tc.args...)
			if got := run(args); got != tc.wantCode {
				t.Fatalf("run(%q) = %d, want %d", args, got, tc.wantCode)
			}
			if tc.wantConn == 0 {
				return
			}
			deadline := time.Now().Add(3 * time.Second)
			for accepted.Load() < tc.wantConn && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := accepted.Load(); got != tc.wantConn {
				t.Errorf("server saw %d connections, want %s", got, strconv.FormatInt(tc.wantConn, 10))
			}
		})
	}
}
