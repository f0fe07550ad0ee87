package engine

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/siplb/siplb/balance"
)

// startDNS serves A records for names on 127.0.0.1 and returns its address.
func startDNS(t *testing.T, records map[string]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if ip, ok := records[qq.Name]; ok && qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.ParseIP(ip),
				})
			}
		}
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// A backend's request towards a domain is resolved (RFC 3263, A record on
// the URI's port) off the data path and then sent; domain2proxy and the
// outgoing proxy take precedence as the Dispatcher page says.
func TestForwardByDNS(t *testing.T) {
	uas := startUAS(t)
	client := newUAC(t, netip.MustParseAddrPort("127.0.0.1:9")) // a socket to receive on
	proxy := newUAC(t, netip.MustParseAddrPort("127.0.0.1:9"))
	proxyPort := proxy.conn.LocalAddr().(*net.UDPAddr).Port
	clientPort := client.conn.LocalAddr().(*net.UDPAddr).Port
	dnsAddr := startDNS(t, map[string]string{"client.test.": "127.0.0.1"})
	r, err := balance.NewResolver(balance.ResolverConfig{Servers: []string{dnsAddr}})
	if err != nil {
		t.Fatal(err)
	}
	domains, err := balance.NewDomainMap(map[string]string{"*.partner.test": "127.0.0.1:" + itoa(proxyPort)})
	if err != nil {
		t.Fatal(err)
	}
	bal, _ := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: uas.addr}}}})
	legs := []LegConfig{{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	ResolvePorts(legs)
	f, err := NewForwarder(Config{Legs: legs, Resolver: r, Domains: domains}, bal)
	if err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, f)

	tests := []struct {
		name string
		ruri string
		to   *uac
	}{
		{name: "A record", ruri: "sip:alice@client.test:" + itoa(clientPort), to: client},
		{name: "domain2proxy wildcard", ruri: "sip:carol@pbx.partner.test", to: proxy},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := sip("MESSAGE "+tc.ruri+" SIP/2.0",
				"Via: SIP/2.0/UDP "+uas.addr.String()+";branch=z9hG4bK-dns"+itoa(i),
				"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b", "To: <"+tc.ruri+">",
				"Call-ID: dns"+itoa(i)+"@x", "CSeq: 1 MESSAGE", "Content-Length: 0")
			uas.conn.WriteToUDPAddrPort(req, legs[0].Addr)
			tc.to.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := tc.to.conn.ReadFromUDPAddrPort(tc.to.buf)
			if err != nil || !bytes.HasPrefix(tc.to.buf[:n], []byte("MESSAGE "+tc.ruri)) {
				t.Fatalf("request not delivered: %v %q", err, tc.to.buf[:n])
			}
		})
	}
	if srv.Stats().DNSMisses == 0 {
		t.Errorf("DNSMisses = 0: the first resolution should have gone off the data path")
	}
}

func itoa(n int) string { return string(appendUint(nil, uint64(n))) }

func runServer(t *testing.T, f *Forwarder) *Server {
	t.Helper()
	return runServerT(t, NewServerWith(f, Options{Loops: 1}))
}

// runServerT runs srv until the test ends.
func runServerT(t *testing.T, srv *Server) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	select {
	case <-srv.Ready():
	case err := <-errc:
		t.Fatalf("server: %v", err)
	}
	return srv
}
