package engine

import (
	"strings"
	"testing"

	"github.com/siplb/siplb/balance"
)

// §18.1.1: a request larger than the UDP MTU bound goes over TCP to a
// member that takes TCP too, with a TCP Via; otherwise over UDP, counted.
func TestLargeRequestOverTCP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		alsoTCP bool
		body    int
		want    balance.Transport
		large   uint64 // LargeUDP counted
		toTCP   uint64 // UDPToTCP counted
	}{
		{name: "small stays on UDP", alsoTCP: true, body: 100, want: balance.UDP},
		{name: "large to a member with TCP", alsoTCP: true, body: 1500, want: balance.TCP, toTCP: 1},
		{name: "large to a UDP-only member", body: 1500, want: balance.UDP, large: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: backends[0], AlsoTCP: tc.alsoTCP}}}})
			if err != nil {
				t.Fatal(err)
			}
			f, err := NewForwarder(Config{Legs: []LegConfig{{Transport: balance.UDP, Addr: legAddr}, {Transport: balance.TCP, Addr: legAddr}}}, bal)
			if err != nil {
				t.Fatal(err)
			}
			body := strings.Repeat("v", tc.body)
			req := []byte(strings.Replace(string(invite("mtu@x", "z9hG4bKmtu")), "Content-Length: 0\r\n\r\n",
				"Content-Type: application/sdp\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body, 1))
			s := f.NewScratch()
			r := f.Process(s, req, client, f.Legs()[0])
			if r.Out == nil {
				t.Fatalf("dropped: %v", r.Drop)
			}
			if r.Leg.Transport != tc.want || r.To != backends[0] {
				t.Errorf("sent over %v to %v, want %v to %v", r.Leg.Transport, r.To, tc.want, backends[0])
			}
			if via := "Via: SIP/2.0/" + tc.want.ViaName() + " "; !strings.HasPrefix(string(r.Out[strings.Index(string(r.Out), "\r\n")+2:]), via) {
				t.Errorf("top Via is not %q:\n%.300s", via, r.Out)
			}
			if s.Counters.LargeUDP.Load() != tc.large || s.Counters.UDPToTCP.Load() != tc.toTCP {
				t.Errorf("counted large %d, to TCP %d; want %d, %d", s.Counters.LargeUDP.Load(), s.Counters.UDPToTCP.Load(), tc.large, tc.toTCP)
			}
		})
	}
}
