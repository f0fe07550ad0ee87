package tls

import (
	"crypto/tls"
	"net"
	"testing"
)

// sniStore is a listener store with a default certificate and two chosen by
// SNI: a.example and *.wild.example.
func sniStore(tb testing.TB) *Store {
	tb.Helper()
	p := newPKI(tb)
	a := p.ca.issue(tb, leafSpec{name: "a", dns: []string{"a.example"}})
	wild := p.ca.issue(tb, leafSpec{name: "wild", dns: []string{"*.wild.example"}})
	return mustStore(tb, Config{
		CertFile: p.server.certFile, KeyFile: p.server.keyFile,
		Certs: []CertPair{{CertFile: a.certFile, KeyFile: a.keyFile}, {CertFile: wild.certFile, KeyFile: wild.keyFile}},
	})
}

func BenchmarkCertificate(b *testing.B) {
	g := sniStore(b).gen.Load()
	for _, sni := range []string{"a.example", "y.wild.example", "nobody.example"} {
		b.Run(sni, func(b *testing.B) {
			hello := &tls.ClientHelloInfo{ServerName: sni}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.certificate(hello); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandshake measures one server plus one client handshake over
// net.Pipe with ECDSA P-256 certificates: full, with the client certificate
// required, and resumed from a session ticket. Both sides run on this
// machine, so a figure is the CPU of both ends.
func BenchmarkHandshake(b *testing.B) {
	p := newPKI(b)
	cases := []struct {
		name   string
		auth   ClientAuth
		resume bool
	}{
		{name: "full"},
		{name: "client_cert", auth: ClientAuthRequired},
		{name: "resumed", resume: true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			srv := mustStore(b, Config{
				CertFile: p.server.certFile, KeyFile: p.server.keyFile,
				CAFile: p.ca.file, ClientAuth: tc.auth,
			})
			cli := mustStore(b, Config{CAFile: p.ca.file, CertFile: p.client.certFile, KeyFile: p.client.keyFile})
			scfg := srv.ServerConfig()
			ccfg := cli.ClientConfig("sip.test")
			if !tc.resume {
				ccfg.ClientSessionCache = nil
			}
			once := func() bool {
				a, z := net.Pipe()
				sc, cc := tls.Server(a, scfg), tls.Client(z, ccfg)
				errc := make(chan error, 1)
				go func() {
					err := sc.Handshake()
					if err == nil {
						// Send a byte so the client reads the TLS 1.3 ticket.
						_, err = sc.Write([]byte{1})
					}
					errc <- err
				}()
				var one [1]byte
				if err := cc.Handshake(); err != nil {
					b.Fatal(err)
				}
				if _, err := cc.Read(one[:]); err != nil {
					b.Fatal(err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				resumed := cc.ConnectionState().DidResume
				a.Close()
				z.Close()
				return resumed
			}
			once() // first ticket
			b.ReportAllocs()
			for b.Loop() {
				if once() != tc.resume {
					b.Fatalf("DidResume != %v", tc.resume)
				}
			}
		})
	}
}
