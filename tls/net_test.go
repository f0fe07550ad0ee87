package tls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientAuth(t *testing.T) {
	p := newPKI(t)
	other := newCA(t, t.TempDir(), "other")
	stranger := other.issue(t, leafSpec{name: "stranger", dns: []string{"stranger.test"}, client: true})

	tests := []struct {
		name       string
		auth       ClientAuth
		clientCert *issued // nil: the client has no certificate
		wantOK     bool
		wantAsked  bool     // the server sent a CertificateRequest
		wantPeer   *big.Int // serial of PeerCertificate on the server; nil: none
	}{
		{name: "none/no cert", auth: ClientAuthNone, wantOK: true},
		{name: "none/cert not asked", auth: ClientAuthNone, clientCert: &p.client, wantOK: true},
		{name: "optional/no cert", auth: ClientAuthOptional, wantOK: true, wantAsked: true},
		{name: "optional/cert", auth: ClientAuthOptional, clientCert: &p.client, wantOK: true, wantAsked: true, wantPeer: p.client.serial},
		{name: "optional/unknown CA", auth: ClientAuthOptional, clientCert: &stranger, wantAsked: true},
		{name: "required/no cert", auth: ClientAuthRequired, wantAsked: true},
		{name: "required/cert", auth: ClientAuthRequired, clientCert: &p.client, wantOK: true, wantAsked: true, wantPeer: p.client.serial},
		{name: "required/unknown CA", auth: ClientAuthRequired, clientCert: &stranger, wantAsked: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mustStore(t, Config{
				CertFile: p.server.certFile, KeyFile: p.server.keyFile,
				CAFile: p.ca.file, ClientAuth: tc.auth,
			})
			addr, results := serve(t, srv)

			cc := Config{CAFile: p.ca.file}
			if tc.clientCert != nil {
				cc.CertFile, cc.KeyFile = tc.clientCert.certFile, tc.clientCert.keyFile
			}
			cfg := mustStore(t, cc).ClientConfig("sip.test")
			var asked atomic.Bool
			give := cfg.GetClientCertificate
			cfg.GetClientCertificate = func(r *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				asked.Store(true)
				if give == nil {
					return &tls.Certificate{}, nil // none to send
				}
				return give(r)
			}
			d := tls.Dialer{Config: cfg}
			c, err := d.DialContext(t.Context(), "tcp", addr)
			if err == nil {
				// TLS 1.3: the server judges the client's certificate after the
				// client has finished, so a refusal shows on the first read.
				err = echo(c.(*tls.Conn), "OPTIONS\r\n")
				c.Close()
			}
			r := result(t, results)
			if tc.wantOK {
				if err != nil || r.err != nil {
					t.Fatalf("client err = %v, server err = %v; want success", err, r.err)
				}
			} else {
				if err == nil {
					t.Errorf("client: handshake and echo succeeded, want refusal")
				}
				if r.err == nil {
					t.Errorf("server: handshake succeeded, want refusal")
				}
			}
			if got := asked.Load(); got != tc.wantAsked {
				t.Errorf("server asked for a certificate: %v, want %v", got, tc.wantAsked)
			}
			switch {
			case tc.wantPeer == nil && r.peer != nil:
				t.Errorf("PeerCertificate = serial %v, want nil", r.peer.SerialNumber)
			case tc.wantPeer != nil && (r.peer == nil || r.peer.SerialNumber.Cmp(tc.wantPeer) != 0):
				t.Errorf("PeerCertificate = %v, want serial %v", r.peer, tc.wantPeer)
			}
		})
	}
}

func TestSNI(t *testing.T) {
	p := newPKI(t)
	a := p.ca.issue(t, leafSpec{name: "a", dns: []string{"a.example"}})
	wild := p.ca.issue(t, leafSpec{name: "wild", dns: []string{"*.wild.example"}})
	exact := p.ca.issue(t, leafSpec{name: "exact", dns: []string{"x.wild.example"}})
	srv := mustStore(t, Config{
		CertFile: p.server.certFile, KeyFile: p.server.keyFile,
		Certs: []CertPair{
			{CertFile: a.certFile, KeyFile: a.keyFile},
			{CertFile: wild.certFile, KeyFile: wild.keyFile},
			{CertFile: exact.certFile, KeyFile: exact.keyFile},
		},
	})
	addr, results := serve(t, srv)
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.cert)

	tests := []struct {
		name       string
		serverName string // SNI sent; "" sends none
		want       *big.Int
	}{
		{name: "default name", serverName: "sip.test", want: p.server.serial},
		{name: "exact", serverName: "a.example", want: a.serial},
		{name: "upper case", serverName: "A.Example", want: a.serial},
		{name: "wildcard", serverName: "y.wild.example", want: wild.serial},
		{name: "exact beats wildcard", serverName: "x.wild.example", want: exact.serial},
		{name: "wildcard is one label", serverName: "z.y.wild.example", want: p.server.serial},
		{name: "unknown name gets default", serverName: "nobody.example", want: p.server.serial},
		{name: "no SNI gets default", want: p.server.serial},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got *big.Int
			cfg := &tls.Config{
				ServerName: tc.serverName,
				// Verification is by hand: the default certificate does not
				// name the hosts that fall back to it.
				InsecureSkipVerify: true,
				VerifyConnection: func(cs tls.ConnectionState) error {
					got = cs.PeerCertificates[0].SerialNumber
					_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots})
					return err
				},
			}
			d := tls.Dialer{Config: cfg}
			c, err := d.DialContext(t.Context(), "tcp", addr)
			if err != nil {
				t.Fatalf("dial %q: %v", tc.serverName, err)
			}
			c.Close()
			if r := result(t, results); r.err != nil {
				t.Fatalf("server: %v", r.err)
			}
			if got == nil || got.Cmp(tc.want) != 0 {
				t.Errorf("SNI %q: served serial %v, want %v", tc.serverName, got, tc.want)
			}
		})
	}
}

func TestReload(t *testing.T) {
	p := newPKI(t)
	srv := mustStore(t, Config{CertFile: p.server.certFile, KeyFile: p.server.keyFile})
	addr, results := serve(t, srv)
	cli := mustStore(t, Config{CAFile: p.ca.file, ServerName: "sip.test"})

	dialSerial := func(t *testing.T) (*tls.Conn, *big.Int) {
		t.Helper()
		c, err := Dial(t.Context(), "tcp", addr, cli, "", time.Second)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		if r := result(t, results); r.err != nil {
			t.Fatalf("server: %v", r.err)
		}
		return c, PeerCertificate(c).SerialNumber
	}

	live, first := dialSerial(t)
	if first.Cmp(p.server.serial) != 0 {
		t.Fatalf("first serial %v, want %v", first, p.server.serial)
	}
	if err := echo(live, "before\r\n"); err != nil {
		t.Fatalf("echo before reload: %v", err)
	}

	// Replace the files in place, as a certificate renewal would.
	renewed := p.ca.issue(t, leafSpec{name: "server", dns: []string{"sip.test"}})
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := srv.Leaf().SerialNumber; got.Cmp(renewed.serial) != 0 {
		t.Errorf("Leaf after Reload: serial %v, want %v", got, renewed.serial)
	}
	if err := echo(live, "after\r\n"); err != nil {
		t.Errorf("live connection after reload: %v", err)
	}
	if got := PeerCertificate(live).SerialNumber; got.Cmp(first) != 0 {
		t.Errorf("live connection's certificate changed to serial %v", got)
	}
	if _, got := dialSerial(t); got.Cmp(renewed.serial) != 0 {
		t.Errorf("new connection after reload: serial %v, want %v", got, renewed.serial)
	}

	// A broken file: Reload fails and the store keeps serving what it had.
	if err := os.WriteFile(p.server.certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := srv.Reload()
	if err == nil || !strings.HasPrefix(err.Error(), "tls.cert_file: ") {
		t.Errorf("Reload with broken cert: err = %v, want one under tls.cert_file", err)
	}
	if got := srv.Leaf().SerialNumber; got.Cmp(renewed.serial) != 0 {
		t.Errorf("Leaf after failed Reload: serial %v, want %v", got, renewed.serial)
	}
	if _, got := dialSerial(t); got.Cmp(renewed.serial) != 0 {
		t.Errorf("new connection after failed reload: serial %v, want %v", got, renewed.serial)
	}
	// A key that does not match is blamed on key_file, and also kept out.
	p.ca.issue(t, leafSpec{name: "server", dns: []string{"sip.test"}})
	if err := os.Rename(p.client.keyFile, p.server.keyFile); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err == nil || !strings.HasPrefix(err.Error(), "tls.key_file: ") {
		t.Errorf("Reload with mismatched key: err = %v, want one under tls.key_file", err)
	}
	if _, got := dialSerial(t); got.Cmp(renewed.serial) != 0 {
		t.Errorf("new connection after mismatched key: serial %v, want %v", got, renewed.serial)
	}
}

func TestReloadCA(t *testing.T) {
	p := newPKI(t)
	next := newCA(t, t.TempDir(), "next")
	nextClient := next.issue(t, leafSpec{name: "client", dns: []string{"client.test"}, client: true})
	srv := mustStore(t, Config{
		CertFile: p.server.certFile, KeyFile: p.server.keyFile,
		CAFile: p.ca.file, ClientAuth: ClientAuthRequired,
	})
	addr, results := serve(t, srv)
	cli := mustStore(t, Config{CAFile: p.ca.file, CertFile: nextClient.certFile, KeyFile: nextClient.keyFile})

	try := func() error {
		c, err := Dial(t.Context(), "tcp", addr, cli, "sip.test", time.Second)
		if err == nil {
			err = echo(c, "x")
			c.Close()
		}
		if r := result(t, results); err == nil {
			err = r.err
		}
		return err
	}
	if err := try(); err == nil {
		t.Fatal("client of a CA not yet trusted was accepted")
	}
	writePEM(t, p.ca.file, "CERTIFICATE", next.cert.Raw)
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := try(); err != nil {
		t.Errorf("client of the reloaded CA: %v", err)
	}
}

func TestResumptionEndsAtReload(t *testing.T) {
	p := newPKI(t)
	srv := mustStore(t, Config{CertFile: p.server.certFile, KeyFile: p.server.keyFile})
	addr, results := serve(t, srv)
	cli := mustStore(t, Config{CAFile: p.ca.file})

	resumed := func() bool {
		t.Helper()
		c, err := Dial(t.Context(), "tcp", addr, cli, "sip.test", time.Second)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		if r := result(t, results); r.err != nil {
			t.Fatalf("server: %v", r.err)
		}
		// The TLS 1.3 ticket arrives after the handshake; a round trip reads it.
		if err := echo(c, "x"); err != nil {
			t.Fatalf("echo: %v", err)
		}
		return c.ConnectionState().DidResume
	}
	if resumed() {
		t.Fatal("first connection resumed")
	}
	if !resumed() {
		t.Fatal("second connection did not resume")
	}
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if resumed() {
		t.Error("a ticket from before the reload resumed after it")
	}
}

func TestDialVerify(t *testing.T) {
	p := newPKI(t)
	srv := mustStore(t, Config{CertFile: p.server.certFile, KeyFile: p.server.keyFile})
	addr, results := serve(t, srv)
	other := newCA(t, t.TempDir(), "other")

	tests := []struct {
		name       string
		cfg        Config
		serverName string
		wantErr    any // pointer to the error type errors.As must find; nil: success
		wantPeer   bool
	}{
		{name: "right CA and name", cfg: Config{CAFile: p.ca.file}, serverName: "sip.test", wantPeer: true},
		{name: "name from config", cfg: Config{CAFile: p.ca.file, ServerName: "sip.test"}, wantPeer: true},
		{name: "IP from address", cfg: Config{CAFile: p.ca.file}, wantPeer: true},
		{name: "unknown CA", cfg: Config{CAFile: other.file}, serverName: "sip.test", wantErr: new(x509.UnknownAuthorityError)},
		{name: "wrong name", cfg: Config{CAFile: p.ca.file}, serverName: "other.test", wantErr: new(x509.HostnameError)},
		{name: "system roots", cfg: Config{}, serverName: "sip.test", wantErr: new(*tls.CertificateVerificationError)},
		{name: "insecure", cfg: Config{InsecureSkipVerify: true}, serverName: "other.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(t.Context(), "tcp", addr, mustStore(t, tc.cfg), tc.serverName, time.Second)
			if r := result(t, results); tc.wantErr == nil && r.err != nil {
				t.Errorf("server: %v", r.err)
			}
			if tc.wantErr != nil {
				if err == nil {
					c.Close()
					t.Fatal("Dial succeeded, want a verification error")
				}
				if !errors.As(err, tc.wantErr) {
					t.Errorf("Dial: %v, want errors.As %T", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if err := echo(c, "x"); err != nil {
				t.Errorf("echo: %v", err)
			}
			if got := PeerCertificate(c) != nil; got != tc.wantPeer {
				t.Errorf("PeerCertificate present = %v, want %v", got, tc.wantPeer)
			}
		})
	}
}

func TestVersions(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name      string
		serverMin string
		clientMin uint16
		clientMax uint16
		wantOK    bool
	}{
		{name: "1.1 refused", clientMin: tls.VersionTLS10, clientMax: tls.VersionTLS11},
		{name: "1.0 refused", clientMin: tls.VersionTLS10, clientMax: tls.VersionTLS10},
		{name: "1.2 accepted", clientMax: tls.VersionTLS12, wantOK: true},
		{name: "1.3 accepted", clientMax: tls.VersionTLS13, wantOK: true},
		{name: "1.2 refused by min 1.3", serverMin: "1.3", clientMax: tls.VersionTLS12},
		{name: "1.3 accepted by min 1.3", serverMin: "1.3", clientMax: tls.VersionTLS13, wantOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mustStore(t, Config{CertFile: p.server.certFile, KeyFile: p.server.keyFile, MinVersion: tc.serverMin})
			addr, results := serve(t, srv)
			d := tls.Dialer{Config: &tls.Config{
				ServerName: "sip.test", InsecureSkipVerify: true,
				MinVersion: tc.clientMin, MaxVersion: tc.clientMax,
			}}
			c, err := d.DialContext(t.Context(), "tcp", addr)
			r := result(t, results)
			if tc.wantOK {
				if err != nil || r.err != nil {
					t.Fatalf("client err = %v, server err = %v; want success", err, r.err)
				}
				if got := c.(*tls.Conn).ConnectionState().Version; got != tc.clientMax {
					t.Errorf("version %#x, want %#x", got, tc.clientMax)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Error("client handshake succeeded, want refusal")
			}
			if r.err == nil {
				t.Error("server handshake succeeded, want refusal")
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	p := newPKI(t)
	srv := mustStore(t, Config{CertFile: p.server.certFile, KeyFile: p.server.keyFile})
	ln, err := Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A client that connects and says nothing.
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := Handshake(t.Context(), c, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Handshake with a silent client: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Handshake took %v with a 100ms timeout", d)
	}

	a, b := net.Pipe()
	defer b.Close()
	if _, err := Handshake(t.Context(), a, time.Second); !errors.Is(err, ErrNotTLS) {
		t.Errorf("Handshake on a plain conn: %v, want ErrNotTLS", err)
	}
}

func TestDialTimeout(t *testing.T) {
	// A TCP server that accepts and never answers the ClientHello.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var buf [1]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				return
			}
		}
	}()
	cli := mustStore(t, Config{InsecureSkipVerify: true})
	start := time.Now()
	_, err = Dial(t.Context(), "tcp", ln.Addr().String(), cli, "sip.test", 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial to a silent server: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %v with a 100ms timeout", d)
	}
	ln.Close()
	<-done
}

// TestReloadConcurrent reloads while clients handshake; under -race it checks
// that a handshake never sees a half-built generation.
func TestReloadConcurrent(t *testing.T) {
	p := newPKI(t)
	srv := mustStore(t, Config{
		CertFile: p.server.certFile, KeyFile: p.server.keyFile,
		CAFile: p.ca.file, ClientAuth: ClientAuthOptional,
	})
	addr, results := serve(t, srv)
	cli := mustStore(t, Config{CAFile: p.ca.file, CertFile: p.client.certFile, KeyFile: p.client.keyFile})

	const dials = 20
	stop := make(chan struct{})
	reloaded := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				reloaded <- n
				return
			default:
			}
			if err := srv.Reload(); err != nil {
				t.Errorf("Reload: %v", err)
			}
			n++
		}
	}()
	errs := make(chan error, dials)
	for range dials {
		go func() {
			c, err := Dial(t.Context(), "tcp", addr, cli, "sip.test", 5*time.Second)
			if err == nil {
				err = echo(c, "x")
				c.Close()
			}
			errs <- err
		}()
	}
	for range dials {
		if err := <-errs; err != nil {
			t.Errorf("dial during reloads: %v", err)
		}
		if r := result(t, results); r.err != nil || r.peer == nil {
			t.Errorf("server: err %v, peer %v", r.err, r.peer)
		}
	}
	close(stop)
	if n := <-reloaded; n == 0 {
		t.Error("no reload ran during the dials")
	}
}

// TestSNIKeyType serves one name from an ECDSA and an RSA chain and checks
// that each client gets the one it can verify.
func TestSNIKeyType(t *testing.T) {
	p := newPKI(t)
	ec := p.ca.issue(t, leafSpec{name: "dual-ec", dns: []string{"dual.example"}})
	rs := p.ca.issue(t, leafSpec{name: "dual-rsa", dns: []string{"dual.example"}, rsa: true})
	g := mustStore(t, Config{
		CertFile: p.server.certFile, KeyFile: p.server.keyFile,
		Certs: []CertPair{{CertFile: ec.certFile, KeyFile: ec.keyFile}, {CertFile: rs.certFile, KeyFile: rs.keyFile}},
	}).gen.Load()
	tests := []struct {
		name    string
		schemes []tls.SignatureScheme
		want    *big.Int
	}{
		{name: "ecdsa client", schemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, want: ec.serial},
		{name: "rsa-only client", schemes: []tls.SignatureScheme{tls.PSSWithSHA256}, want: rs.serial},
		{name: "both", schemes: []tls.SignatureScheme{tls.PSSWithSHA256, tls.ECDSAWithP256AndSHA256}, want: ec.serial},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hello := &tls.ClientHelloInfo{
				ServerName:        "dual.example",
				SignatureSchemes:  tc.schemes,
				SupportedVersions: []uint16{tls.VersionTLS13},
				SupportedCurves:   []tls.CurveID{tls.CurveP256, tls.X25519},
				CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256},
			}
			c, err := g.certificate(hello)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Leaf.SerialNumber; got.Cmp(tc.want) != 0 {
				t.Errorf("certificate: serial %v, want %v", got, tc.want)
			}
		})
	}
}

// countingConn counts what a TLS connection reads through it.
type countingConn struct {
	net.Conn
	read int
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read += n
	return n, err
}

// DialWith hands wrap the TCP connection, and the TLS connection reads and
// writes through what wrap returns, handshake included.
func TestDialWith(t *testing.T) {
	p := newPKI(t)
	srv := mustStore(t, Config{CertFile: p.server.certFile, KeyFile: p.server.keyFile})
	addr, results := serve(t, srv)
	cli := mustStore(t, Config{CAFile: p.ca.file, ServerName: "sip.test"})
	var cc *countingConn
	c, err := DialWith(t.Context(), "tcp", addr, cli, "", time.Second, func(tc *net.TCPConn) net.Conn {
		cc = &countingConn{Conn: tc}
		return cc
	})
	if err != nil {
		t.Fatalf("DialWith: %v", err)
	}
	defer c.Close()
	if r := result(t, results); r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	if cc == nil || c.NetConn() != net.Conn(cc) {
		t.Fatalf("the TLS connection is not over wrap's: %T", c.NetConn())
	}
	if cc.read == 0 {
		t.Error("the handshake read nothing through wrap's connection")
	}
	if err := echo(c, "through\r\n"); err != nil {
		t.Errorf("echo: %v", err)
	}
}
