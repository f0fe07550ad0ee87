package engine

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	siptls "github.com/siplb/siplb/tls"
)

// testPKI is a CA and a certificate for 127.0.0.1 signed by it, as files.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	cert                      tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "siplb test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	p := &testPKI{
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"),
		pool: x509.NewCertPool(),
	}
	os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	os.WriteFile(p.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(p.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	p.pool.AddCert(ca)
	p.cert, err = tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startLegs runs a Server with the given legs in front of members.
func startLegs(t *testing.T, legs []LegConfig, members ...balance.BackendConfig) *Server {
	t.Helper()
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: members}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServerWith(f, Options{Loops: 1})
	runServerT(t, srv)
	return srv
}

// A TLS client reaches a UDP backend through a TLS leg; the response comes
// back on its TLS connection, and the backend sees siplb's UDP Via.
func TestTLSClientToUDPBackend(t *testing.T) {
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	uas := startUAS(t)
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	srv := startLegs(t, legs, balance.BackendConfig{Addr: uas.addr})
	c, err := tls.Dial("tcp", legs[0].Addr.String(), &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inv := sip("INVITE sips:bob@example.com SIP/2.0",
		"Via: SIP/2.0/TLS "+c.LocalAddr().String()+";branch=z9hG4bK-tls;rport",
		"Max-Forwards: 70", "From: <sips:alice@example.com>;tag=a", "To: <sips:bob@example.com>",
		"Call-ID: tls@x", "CSeq: 1 INVITE", "Contact: <sips:alice@10.99.0.3:5061>", "Content-Length: 0")
	c.Write(inv)
	got := readResponses(t, c, 1, 5*time.Second)
	if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 OK\r\n")) {
		t.Fatalf("TLS client got %q", got)
	}
	var m parser.Message
	if err := parser.Parse(&m, got[0]); err != nil {
		t.Fatal(err)
	}
	// Transport conversion: two Record-Route values (RFC 5658), the one
	// facing the backend (UDP) first, the one facing the client (sips) next.
	if m.NumRecordRoute() != 2 {
		t.Fatalf("Record-Route count %d, want 2 (double Record-Route)", m.NumRecordRoute())
	}
	rr0, _ := m.RecordRoute(0)
	rr1, _ := m.RecordRoute(1)
	if string(rr0.Scheme) != "sip" || rr0.Port != legs[1].Addr.Port() || string(rr1.Scheme) != "sips" || rr1.Port != legs[0].Addr.Port() {
		t.Errorf("Record-Route %s , %s: want the UDP leg first, then the sips leg", rr0.Raw, rr1.Raw)
	}
	if ms := uas.methods("tls@x"); len(ms) != 1 || ms[0] != "INVITE" {
		t.Errorf("backend saw %v", ms)
	}
	// The backend's BYE with the route set (as the backend keeps it)
	// reaches the client through its TLS connection.
	bye := sip("BYE sips:alice@10.99.0.3:5061 SIP/2.0",
		"Via: SIP/2.0/UDP "+uas.addr.String()+";branch=z9hG4bK-tlsbye",
		"Route: <"+string(rr0.Raw)+">", "Route: <"+string(rr1.Raw)+">",
		"Max-Forwards: 70", "From: <sips:bob@example.com>;tag=uas", "To: <sips:alice@example.com>;tag=a",
		"Call-ID: tls@x", "CSeq: 1 BYE", "Content-Length: 0")
	uas.conn.WriteToUDPAddrPort(bye, legs[1].Addr)
	got = readResponses(t, c, 1, 5*time.Second)
	if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("BYE sips:alice@10.99.0.3:5061 SIP/2.0\r\n")) {
		t.Fatalf("TLS client did not get the backend's BYE: %q", got)
	}
	if !strings.Contains(string(got[0]), "Via: SIP/2.0/TLS 127.0.0.1:") {
		t.Errorf("BYE to the TLS client lacks siplb's TLS Via:\n%s", got[0])
	}
	if n := srv.Stats().Conns; n != 1 {
		t.Errorf("siplb holds %d streams, want 1", n)
	}
}

// Client certificates required: a client without one is refused, one with
// a certificate from the CA gets through.
func TestTLSClientCertRequired(t *testing.T) {
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile, ClientAuth: siptls.ClientAuthRequired})
	if err != nil {
		t.Fatal(err)
	}
	uas := startUAS(t)
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	srv := startLegs(t, legs, balance.BackendConfig{Addr: uas.addr})
	opts := func(c net.Conn) []byte { return optionsReq(c.LocalAddr().String(), "cert", 1) }

	bare, err := tls.Dial("tcp", legs[0].Addr.String(), &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
	if err == nil {
		bare.Write(opts(bare))
		bare.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := bare.Read(make([]byte, 64)); err == nil {
			t.Error("a client without a certificate was answered")
		}
		bare.Close()
	}
	deadline := time.Now().Add(3 * time.Second)
	for srv.Stats().TLSHandshakeFailures == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if srv.Stats().TLSHandshakeFailures != 1 {
		t.Errorf("TLSHandshakeFailures = %d, want 1", srv.Stats().TLSHandshakeFailures)
	}

	c, err := tls.Dial("tcp", legs[0].Addr.String(), &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pki.cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(opts(c))
	if got := readResponses(t, c, 1, 5*time.Second); len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 OK")) {
		t.Fatalf("client with a certificate got %q", got)
	}
}

// A UDP client reaches a TLS backend: siplb opens the TLS connection,
// verifying the backend against its CA, and the answer comes back by UDP.
func TestUDPClientToTLSBackend(t *testing.T) {
	pki := newTestPKI(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pki.cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go forEachFrame(c, func(msg []byte) {
				var m parser.Message
				if parser.Parse(&m, msg) == nil && m.IsRequest() {
					c.Write(respond(msg, "200 OK", ln.Addr().(*net.TCPAddr).AddrPort()))
				}
			})
		}
	}()
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
	}
	startLegs(t, legs, balance.BackendConfig{Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Transport: balance.TLS})
	c := newUAC(t, legs[0].Addr)
	resp, err := c.transact(sip("OPTIONS sip:service@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.local()+";branch=z9hG4bK-totls;rport", "Max-Forwards: 70",
		"From: <sip:a@example.com>;tag=f", "To: <sip:service@example.com>", "Call-ID: totls@x",
		"CSeq: 1 OPTIONS", "Content-Length: 0"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(resp, []byte("SIP/2.0 200 OK\r\n")) {
		t.Fatalf("UDP client got %q", resp)
	}
}

// A TLS peer whose verified client certificate a pool's backend_certs names
// is a backend whatever its address: its request goes where it says. The
// same request without the certificate goes to the pool.
func TestTLSBackendCertTrusted(t *testing.T) {
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile, ClientAuth: siptls.ClientAuthOptional})
	if err != nil {
		t.Fatal(err)
	}
	uas := startUAS(t)
	sink := startUAS(t) // a client's address, not a member
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: uas.addr}},
		BackendCerts: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		t.Fatal(err)
	}
	runServerT(t, NewServerWith(f, Options{Loops: 1}))
	send := func(callID string, certs []tls.Certificate) {
		t.Helper()
		c, err := tls.Dial("tcp", legs[0].Addr.String(), &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1", Certificates: certs})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(sip("MESSAGE sip:x@"+sink.addr.String()+" SIP/2.0",
			"Via: SIP/2.0/TLS "+c.LocalAddr().String()+";branch=z9hG4bK-"+callID+";rport",
			"Max-Forwards: 70", "From: <sip:a@example.com>;tag=f", "To: <sip:x@example.com>;tag=t",
			"Call-ID: "+callID, "CSeq: 1 MESSAGE", "Content-Length: 0"))
		readResponses(t, c, 1, 3*time.Second)
	}
	send("withcert", []tls.Certificate{pki.cert})
	send("nocert", nil)
	if ms := sink.methods("withcert"); len(ms) != 1 {
		t.Errorf("the backend with a listed certificate did not reach its target: %v", ms)
	}
	if ms := sink.methods("nocert"); len(ms) != 0 {
		t.Errorf("a client without a certificate reached %v: %v", sink.addr, ms)
	}
	if ms := uas.methods("nocert"); len(ms) != 1 {
		t.Errorf("the client's request did not go to the pool: %v", ms)
	}
}
