package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/siplb/siplb/pool"
)

// REGISTER through the balancer with RFC 3327 Path: the registrar's later
// requests to the contact, in dialogs of their own, come back through
// siplb and reach the phone by its NAT binding or its connection.

func register(sentBy, transport, contact string, extra ...string) []byte {
	lines := []string{"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/" + transport + " " + sentBy + ";branch=z9hG4bKreg;rport", "Max-Forwards: 70",
		"From: <sip:carol@example.com>;tag=c1", "To: <sip:carol@example.com>",
		"Call-ID: reg-path@x", "CSeq: 1 REGISTER", "Contact: <" + contact + ">"}
	return sip(append(append(lines, extra...), "Content-Length: 0")...)
}

// registrarInvite is the registrar's INVITE to the registered contact,
// routed by the Path it stored.
func registrarInvite(contact string, path []string) []byte {
	lines := []string{"INVITE " + contact + " SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKri"}
	for _, p := range path {
		lines = append(lines, "Route: "+p)
	}
	return sip(append(lines, "Max-Forwards: 70", "From: <sip:dave@example.com>;tag=d", "To: <sip:carol@example.com>",
		"Call-ID: call-from-registrar@x", "CSeq: 1 INVITE", "Content-Length: 0")...)
}

func pathValues(t *testing.T, b []byte) []string {
	t.Helper()
	l := splitSIP(b)
	return l.all("Path")
}

func TestPath(t *testing.T) {
	conn := pool.ConnID(0x2345_0000_0009)
	phoneTCP := netip.MustParseAddrPort("127.0.0.1:41999")
	for _, tc := range []struct {
		name      string
		src       netip.AddrPort
		conn      pool.ConnID
		reg       []byte
		wantPaths int // Path values siplb adds; 0: none
	}{
		{name: "udp behind NAT", src: natted, wantPaths: 1,
			reg: register("10.0.0.5:5060", "UDP", "sip:carol@10.0.0.5:5060", "Supported: path")},
		{name: "tcp: one Path per leg", src: phoneTCP, conn: conn, wantPaths: 2,
			reg: register("127.0.0.1:41999", "TCP", "sip:carol@127.0.0.1:41999;transport=tcp", "Supported: 100rel, Path")},
		{name: "udp, an edge proxy's Path below", src: natted, wantPaths: 1,
			reg: register("10.0.0.5:5060", "UDP", "sip:carol@10.0.0.5:5060", "Supported: path", "Path: <sip:edge.example.com;lr>")},
		{name: "no Supported: path", src: natted,
			reg: register("10.0.0.5:5060", "UDP", "sip:carol@10.0.0.5:5060", "Supported: outbound")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, udp, tcp := hairpinLB(t, Config{})
			leg := udp
			if tc.conn != 0 {
				leg = tcp
			}
			s := f.NewScratch()
			r := f.ProcessConn(s, tc.reg, tc.src, leg, tc.conn)
			if r.Out == nil || r.To != backends[0] {
				t.Fatalf("REGISTER to %v, drop %v; want the registrar", r.To, r.Drop)
			}
			paths := pathValues(t, r.Out)
			had := len(pathValues(t, tc.reg))
			if len(paths)-had != tc.wantPaths {
				t.Fatalf("Path %q: %d added, want %d", paths, len(paths)-had, tc.wantPaths)
			}
			if tc.wantPaths == 0 {
				return
			}
			if !strings.HasPrefix(paths[0], "<sip:127.0.0.1:5060;lr") || !strings.Contains(paths[tc.wantPaths-1], ";"+pathParam+"=") {
				t.Fatalf("Path %q: want siplb's UDP leg (facing the registrar) first, the phone's flow in the last of siplb's", paths)
			}
			if had > 0 && paths[len(paths)-1] != "<sip:edge.example.com;lr>" {
				t.Errorf("Path %q: the edge proxy's value must stay below siplb's", paths)
			}
			if tc.wantPaths == 2 && !strings.HasPrefix(paths[1], "<sip:127.0.0.1:5060;transport=tcp;lr;"+pathParam+"=t") {
				t.Errorf("Path %q: the second names the TCP leg and the phone's connection", paths)
			}
			// The registrar calls the contact with the Path as its route set,
			// in a dialog with a Call-ID of its own.
			contact := "sip:carol@10.0.0.5:5060"
			if tc.conn != 0 {
				contact = "sip:carol@127.0.0.1:41999;transport=tcp"
			}
			inv := registrarInvite(contact, paths[:tc.wantPaths])
			r, m := fwd(t, f, inv, backends[0])
			if m == nil {
				t.Fatalf("registrar's INVITE dropped as %v", r.Drop)
			}
			if tc.conn != 0 {
				if r.Leg != tcp || r.Conn != conn {
					t.Errorf("INVITE on %v conn %#x, want the phone's connection %#x", r.Leg.Name, r.Conn, conn)
				}
			} else if r.Leg != udp || r.To != natted {
				t.Errorf("INVITE to %v, want the phone's NAT address %v", r.To, natted)
			}
			if got := string(m.RequestURI()); got != contact || m.NumRoute() != 0 {
				t.Errorf("INVITE %s with %d Route values, want the contact and none", got, m.NumRoute())
			}
			// The phone's answer goes back through siplb to the registrar.
			rr, _ := m.RecordRoute(0)
			if !strings.Contains(string(rr.Raw), ";"+flowParam+"=") {
				t.Errorf("siplb's Record-Route towards the phone %s carries no flow", rr.Raw)
			}
		})
	}
}

// A Path token and a Record-Route token are not interchangeable, a forged
// one steers nothing, and siplb adds no Path to a REGISTER from a backend.
func TestPathTokens(t *testing.T) {
	f, udp, _ := hairpinLB(t, Config{})
	s := f.NewScratch()
	r := f.Process(s, register("10.0.0.5:5060", "UDP", "sip:carol@10.0.0.5:5060", "Supported: path"), natted, udp)
	path := pathValues(t, r.Out)[0]
	for _, tc := range []struct {
		name  string
		route string
		bad   bool
	}{
		{name: "genuine", route: path},
		{name: "as lbf", route: strings.Replace(path, pathParam+"=", flowParam+"=", 1), bad: true},
		{name: "forged", route: "<sip:127.0.0.1:5060;lr;" + pathParam + "=" + udpFlowToken(victim) + "0123456789abcdef>", bad: true},
		{name: "unsigned", route: "<sip:127.0.0.1:5060;lr;" + pathParam + "=" + udpFlowToken(victim) + ">", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := f.NewScratch()
			r := f.Process(s, registrarInvite("sip:carol@10.0.0.5:5060", []string{tc.route}), backends[0], udp)
			if tc.bad {
				if r.To == natted || r.To == victim {
					t.Errorf("sent to %v by a token that is no Path token", r.To)
				}
				if s.Counters.BadTokens.Load() != 1 {
					t.Errorf("bad tokens %d, want 1", s.Counters.BadTokens.Load())
				}
				return
			}
			if r.To != natted || s.Counters.BadTokens.Load() != 0 {
				t.Errorf("sent to %v (bad tokens %d), want %v", r.To, s.Counters.BadTokens.Load(), natted)
			}
		})
	}
	// A Record-Route flow token, valid in its dialog, is no Path token.
	_, m := fwd(t, f, invite("dialog@x", "z9hG4bKdl"), natted)
	rr, _ := m.RecordRoute(0)
	asPath := "<" + strings.Replace(string(rr.Raw), flowParam+"=", pathParam+"=", 1) + ">"
	s = f.NewScratch()
	if r := f.Process(s, registrarInvite("sip:carol@10.0.0.5:5060", []string{asPath}), backends[0], udp); r.To == natted || s.Counters.BadTokens.Load() != 1 {
		t.Errorf("a dialog's flow token passed as a Path: to %v, bad tokens %d", r.To, s.Counters.BadTokens.Load())
	}
	// A REGISTER a backend sends (a registrar registering upstream) gets no Path.
	up := []byte(strings.Replace(string(register("127.0.0.1:5070", "UDP", "sip:gw@127.0.0.1:5070", "Supported: path")),
		"REGISTER sip:example.com", "REGISTER sip:10.9.9.9", 1))
	r = f.Process(f.NewScratch(), up, backends[0], udp)
	if r.Out == nil || r.To != netip.MustParseAddrPort("10.9.9.9:5060") || len(pathValues(t, r.Out)) != 0 {
		t.Errorf("REGISTER from a backend: to %v (drop %v), Path %q; want 10.9.9.9:5060 and none", r.To, r.Drop, pathValues(t, r.Out))
	}
}
