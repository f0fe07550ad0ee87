package engine

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
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

// BenchmarkTLSRoundTrip measures one SIP message over a TLS leg and its
// answer, client and siplb in one process: an OPTIONS to siplb itself, read
// by the connection's reader (which borrows its buffer for the read and
// gives it back once crypto/tls and the socket are empty), answered with a
// stateless 200 that a writer sends. allocs/op counts both ends.
func BenchmarkTLSRoundTrip(b *testing.B) {
	pki := newTestPKI(&testing.T{})
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		b.Fatal(err)
	}
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	if err := ResolvePorts(legs); err != nil {
		b.Fatal(err)
	}
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: netip.MustParseAddrPort("127.0.0.1:9")}}}})
	if err != nil {
		b.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServerWith(f, Options{Loops: 1})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	defer func() { cancel(); <-errc }()
	<-srv.Ready()
	addr := legs[0].Addr.String()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := sip("OPTIONS sip:"+addr+";transport=tls SIP/2.0",
		"Via: SIP/2.0/TLS "+c.LocalAddr().String()+";branch=z9hG4bK-bench;rport", "Max-Forwards: 70",
		"From: <sip:a@example.com>;tag=f", "To: <sip:"+addr+">", "Call-ID: bench@x",
		"CSeq: 1 OPTIONS", "Content-Length: 0")
	buf := make([]byte, 4096)
	want := []byte("SIP/2.0 200 OK")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil || !bytes.HasPrefix(buf[:n], want) {
			b.Fatalf("got %q, %v", buf[:n], err)
		}
	}
}

// tlsRecord is a TLS record header and a fragment of n bytes.
func tlsRecord(n int) []byte {
	return append([]byte{23, 3, 3, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{'x'}, n)...)
}

// tlsWire.track tells, for each read crypto/tls makes, whether it was
// given bytes past the record it assembles (records it holds unread).
func TestTLSWireTrack(t *testing.T) {
	two := append(tlsRecord(3), tlsRecord(4)...)
	cases := []struct {
		name  string
		reads [][]byte // what each read gives, in order
		extra []bool   // track's answer for each
	}{
		{"one record whole", [][]byte{tlsRecord(10)}, []bool{false}},
		{"two records in one read", [][]byte{two}, []bool{true}},
		{"a record and a part of the next", [][]byte{two[:9]}, []bool{true}},
		{"a record and a part of the next header", [][]byte{two[:10]}, []bool{true}},
		{"header split", [][]byte{two[:2], two[2:8], two[8:]}, []bool{false, false, false}},
		{"fragment split, then the rest and the next", [][]byte{two[:6], two[6:]}, []bool{false, true}},
		{"record by record", [][]byte{two[:8], two[8:]}, []bool{false, false}},
		{"empty record then another", [][]byte{append(tlsRecord(0), tlsRecord(1)...)}, []bool{true}},
		{"byte by byte", func() [][]byte {
			var r [][]byte
			for i := range two {
				r = append(r, two[i:i+1])
			}
			return r
		}(), make([]bool, len(two))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w tlsWire
			for i, b := range c.reads {
				if got := w.track(b); got != c.extra[i] {
					t.Errorf("read %d (%d bytes): extra %v, want %v", i, len(b), got, c.extra[i])
				}
			}
		})
	}
}

// heldWrites is a client's connection that gathers writes while hold is
// set, to send them as one.
type heldWrites struct {
	net.Conn
	hold bool
	buf  []byte
}

func (h *heldWrites) Write(b []byte) (int, error) {
	if h.hold {
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

// A TLS client's records that reach siplb together, or split anywhere, are
// all read: several in one TCP write (crypto/tls holds the later ones after
// returning the first), a message over two records, a record over two
// writes, and pings; each message is answered.
func TestTLSRecordsTogetherAndSplit(t *testing.T) {
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	startLegs(t, legs, balance.BackendConfig{Addr: netip.MustParseAddrPort("127.0.0.1:9")})
	addr := legs[0].Addr.String()
	options := func(c net.Conn, i int) []byte {
		return sip("OPTIONS sip:"+addr+";transport=tls SIP/2.0",
			"Via: SIP/2.0/TLS "+c.LocalAddr().String()+";branch=z9hG4bK-rec"+strconv.Itoa(i)+";rport", "Max-Forwards: 70",
			"From: <sip:a@example.com>;tag=f", "To: <sip:"+addr+">", "Call-ID: rec"+strconv.Itoa(i)+"@x",
			"CSeq: 1 OPTIONS", "Content-Length: 0")
	}
	cases := []struct {
		name string
		send func(c *tls.Conn, hw *heldWrites) int // returns the number of answers due
	}{
		{"three records in one write", func(c *tls.Conn, hw *heldWrites) int {
			hw.hold = true
			for i := range 3 {
				c.Write(options(hw, i))
			}
			hw.hold = false
			hw.Write(hw.buf)
			return 3
		}},
		{"a message over two records, with a ping between messages", func(c *tls.Conn, hw *heldWrites) int {
			m := options(hw, 1)
			hw.hold = true
			c.Write(m[:20])
			c.Write(m[20:])
			c.Write([]byte("\r\n\r\n"))
			c.Write(options(hw, 2))
			hw.hold = false
			hw.Write(hw.buf)
			return 2
		}},
		{"records over many writes", func(c *tls.Conn, hw *heldWrites) int {
			hw.hold = true
			c.Write(options(hw, 1))
			c.Write(options(hw, 2))
			hw.hold = false
			for b := hw.buf; len(b) > 0; {
				k := min(len(b), 7)
				hw.Write(b[:k])
				b = b[k:]
				time.Sleep(time.Millisecond)
			}
			return 2
		}},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			raw, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			hw := &heldWrites{Conn: raw}
			c := tls.Client(hw, &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
			defer c.Close()
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			want := cs.send(c, hw)
			got := readResponses(t, c, want, 5*time.Second)
			if len(got) != want {
				t.Fatalf("%d answers, want %d: %q", len(got), want, got)
			}
			for _, m := range got {
				if !bytes.HasPrefix(m, []byte("SIP/2.0 200 OK\r\n")) {
					t.Errorf("answer %q", m)
				}
			}
		})
	}
}

// Handshakes in flight count against max_per_ip with the connections
// established: a source holding its cap in stalled handshakes gets no more
// (refused and counted), and gets one again when a stalled one goes.
func TestTLSHandshakesCountAgainstPerIPCap(t *testing.T) {
	const perIP = 3
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: netip.MustParseAddrPort("127.0.0.1:9")}}}})
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
	srv := runServerT(t, NewServerWith(f, Options{Loops: 1, Limits: pool.Limits{MaxConnsPerIP: perIP}}))
	addr := legs[0].Addr.String()
	cfg := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
	stalled := make([]net.Conn, perIP)
	for i := range stalled {
		c, err := net.Dial("tcp4", addr) // never says hello
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stalled[i] = c
	}
	if !waitFor(5*time.Second, func() bool { return srv.Stats().StreamBytes == perIP*tlsHandshakeCharge }) {
		t.Fatalf("StreamBytes %d: want %d handshakes in flight", srv.Stats().StreamBytes, perIP)
	}
	refused := srv.Stats().ConnsRefused
	d := &net.Dialer{Timeout: 5 * time.Second}
	if c, err := tls.DialWithDialer(d, "tcp4", addr, cfg); err == nil {
		// A handshake that succeeded: the server must then have closed it.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a connection over the cap (in handshakes) is served: read %v", err)
		}
		c.Close()
	}
	if got := srv.Stats().ConnsRefused; got != refused+1 {
		t.Errorf("ConnsRefused %d, want %d", got, refused+1)
	}
	stalled[0].Close()
	if !waitFor(5*time.Second, func() bool { return srv.Stats().StreamBytes == (perIP-1)*tlsHandshakeCharge }) {
		t.Fatalf("StreamBytes %d after a stalled handshake went", srv.Stats().StreamBytes)
	}
	c, err := tls.DialWithDialer(d, "tcp4", addr, cfg)
	if err != nil {
		t.Fatalf("under the cap again: %v", err)
	}
	defer c.Close()
	c.Write(sip("OPTIONS sip:"+addr+";transport=tls SIP/2.0",
		"Via: SIP/2.0/TLS "+c.LocalAddr().String()+";branch=z9hG4bK-cap;rport", "Max-Forwards: 70",
		"From: <sip:a@example.com>;tag=f", "To: <sip:"+addr+">", "Call-ID: cap@x", "CSeq: 1 OPTIONS", "Content-Length: 0"))
	if got := readResponses(t, c, 1, 5*time.Second); len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 OK")) {
		t.Errorf("under the cap again: got %q", got)
	}
}

// An established TLS connection is charged to the memory budget for the
// buffers it keeps: tlsConnCharge, and more once its peer has sent a record
// larger than that covers (crypto/tls keeps a buffer that holds it); all
// given back when it closes.
func TestTLSConnCharged(t *testing.T) {
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	srv := startLegs(t, legs, balance.BackendConfig{Addr: netip.MustParseAddrPort("127.0.0.1:9")})
	addr := legs[0].Addr.String()
	// Records as large as the writes: no small first records.
	cfg := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1", DynamicRecordSizingDisabled: true}
	c, err := tls.Dial("tcp4", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	options := func(body int) []byte {
		return append(sip("OPTIONS sip:"+addr+";transport=tls SIP/2.0",
			"Via: SIP/2.0/TLS "+c.LocalAddr().String()+";branch=z9hG4bK-charge"+strconv.Itoa(body)+";rport", "Max-Forwards: 70",
			"From: <sip:a@example.com>;tag=f", "To: <sip:"+addr+">", "Call-ID: charge"+strconv.Itoa(body)+"@x",
			"CSeq: 1 OPTIONS", "Content-Type: text/plain", "Content-Length: "+strconv.Itoa(body)), bytes.Repeat([]byte("b"), body)...)
	}
	ask := func(m []byte) {
		t.Helper()
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
		if got := readResponses(t, c, 1, 5*time.Second); len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 OK")) {
			t.Fatalf("got %q", got)
		}
	}
	// The reader gives a message's buffer back after the message is
	// processed, which may be after its answer reached the client: wait.
	settled := func(want int64) int64 {
		waitFor(2*time.Second, func() bool { return srv.Stats().StreamBytes == want })
		return srv.Stats().StreamBytes
	}
	ask(options(0))
	if got := settled(tlsConnCharge); got != tlsConnCharge {
		t.Errorf("StreamBytes %d with one idle TLS connection, want %d", got, tlsConnCharge)
	}
	big := options(10000)
	ask(big)
	// TLS 1.3: the fragment is the plaintext, its content type and a 16-byte tag.
	want := int64(tlsConnCharge + len(big) + 17 - tlsRecordCharged)
	if got := settled(want); got != want {
		t.Errorf("StreamBytes %d after a %d-byte record, want %d", got, len(big)+17, want)
	}
	ask(options(0))
	if got := settled(want); got != want {
		t.Errorf("StreamBytes %d after a small record again, want %d (crypto/tls keeps its buffer)", got, want)
	}
	c.Close()
	if !waitFor(5*time.Second, func() bool { return srv.Stats().StreamBytes == 0 }) {
		t.Errorf("StreamBytes %d after the connection closed, want 0", srv.Stats().StreamBytes)
	}
}
