package tls

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	file    string // PEM bundle holding cert
	dir     string
	serials int64
}

// newCA makes a self-signed ECDSA P-256 CA and writes it to dir/name.pem.
func newCA(t testing.TB, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, dir: dir, file: filepath.Join(dir, name+".pem"), serials: 100}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// leafSpec describes a certificate for issue.
type leafSpec struct {
	name   string   // file stem and common name
	dns    []string // DNS SANs
	ips    []net.IP // IP SANs
	client bool     // client auth usage instead of server auth
	rsa    bool     // an RSA 2048 key instead of ECDSA P-256
}

// issued is a certificate issue wrote to disk.
type issued struct {
	certFile, keyFile string
	serial            *big.Int
}

// issue signs a leaf for spec and writes dir/name.pem and dir/name.key. Each
// call gets a new serial number, so tests can tell reissues apart.
func (ca *testCA) issue(t testing.TB, spec leafSpec) issued {
	t.Helper()
	var key crypto.Signer
	var err error
	if spec.rsa {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	ca.serials++
	usage := x509.ExtKeyUsageServerAuth
	if spec.client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serials),
		Subject:      pkix.Name{CommonName: spec.name},
		DNSNames:     spec.dns,
		IPAddresses:  spec.ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := issued{
		certFile: filepath.Join(ca.dir, spec.name+".pem"),
		keyFile:  filepath.Join(ca.dir, spec.name+".key"),
		serial:   tmpl.SerialNumber,
	}
	writePEM(t, out.certFile, "CERTIFICATE", der)
	writePEM(t, out.keyFile, "PRIVATE KEY", kder)
	return out
}

// writePEM replaces file with one PEM block, through a rename as an operator's
// deployment tool would.
func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// pki is the usual set of a test: a CA, a server certificate for
// "sip.test" and 127.0.0.1, and a client certificate.
type pki struct {
	dir            string
	ca             *testCA
	server, client issued
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	return &pki{
		dir:    dir,
		ca:     ca,
		server: ca.issue(t, leafSpec{name: "server", dns: []string{"sip.test"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}}),
		client: ca.issue(t, leafSpec{name: "client", dns: []string{"client.test"}, client: true}),
	}
}

// mustStore is NewStore that fails the test on error.
func mustStore(t testing.TB, c Config) *Store {
	t.Helper()
	s, err := NewStore(c)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return s
}

// accepted is what the test server learned from one connection.
type accepted struct {
	err  error             // server-side handshake error
	peer *x509.Certificate // PeerCertificate after the handshake
}

// serve listens on 127.0.0.1:0 with s, handshakes every connection, reports
// it on the returned channel and echoes what the client sends. Everything
// stops at cleanup.
func serve(t testing.TB, s *Store) (addr string, results <-chan accepted) {
	t.Helper()
	ln, err := Listen("tcp", "127.0.0.1:0", s)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ch := make(chan accepted, 64) // more than any test opens
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				tc, err := Handshake(context.Background(), c, 5*time.Second)
				if err != nil {
					ch <- accepted{err: err}
					return
				}
				ch <- accepted{peer: PeerCertificate(tc)}
				_, _ = io.Copy(tc, tc)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

// result waits for the server's report on one connection.
func result(t testing.TB, ch <-chan accepted) accepted {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("server reported no connection within 5s")
		return accepted{}
	}
}

// echo writes msg on c and reads it back, bounded by a deadline.
func echo(c *tls.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return io.ErrUnexpectedEOF
	}
	return nil
}
