package balance

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/siplb/siplb/parser"
)

// TestLatencySlowBackendReal: three UDP backends on 127.0.0.1 answer the
// Checker's real OPTIONS probes, one of them 80 ms late. Once the probes
// have measured them, new dialogs (distinct Call-IDs) through a
// least-latency and a least-latency-p2c pool send clearly less than a third
// to the slow one, while a hash-callid pool over the same members (the
// choice before these algorithms) still sends it its third.
func TestLatencySlowBackendReal(t *testing.T) {
	const delay = 80 * time.Millisecond
	var addrs [3]netip.AddrPort
	for i := range addrs {
		d := time.Duration(0)
		if i == 2 {
			d = delay
		}
		addrs[i] = optionsResponder(t, d)
	}
	slow := addrs[2]
	bcs := make([]BackendConfig, len(addrs))
	for i, a := range addrs {
		bcs[i] = BackendConfig{Addr: a}
	}
	pools := []PoolConfig{
		{Name: "ll", Algorithm: LeastLatency, Backends: bcs},
		{Name: "p2c", Algorithm: LeastLatencyP2C, Backends: bcs},
		{Name: "hash", Algorithm: HashCallID, Backends: bcs},
	}
	bal, err := New(pools)
	if err != nil {
		t.Fatal(err)
	}
	hc := HealthConfig{Interval: 300 * time.Millisecond, Timeout: 250 * time.Millisecond}
	c := probeOverUDP(t, bal, map[string]HealthConfig{"ll": hc, "p2c": hc, "hash": hc})

	// Bounded wait for three answered probes of each backend.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ready := 0
		for _, h := range c.Status() {
			if h.RTT.Count >= 3 {
				ready++
			}
		}
		if ready == len(addrs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backends not measured in time: %+v", c.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, h := range c.Status() {
		t.Logf("%v: RTT EWMA %v over %d probes", h.Addr, h.RTT.EWMA, h.RTT.Count)
	}

	keys := callIDs(6000)
	tab := bal.Table()
	for _, tc := range []struct {
		pool    string
		maxSlow float64 // the slow member's share is at most this
		minSlow float64 // and at least this
	}{
		{pool: "ll", maxSlow: 1.0 / 6},
		{pool: "p2c", maxSlow: 1.0 / 6},
		{pool: "hash", minSlow: 0.30, maxSlow: 0.37}, // the control: latency is ignored
	} {
		id, _ := tab.PoolByName(tc.pool)
		got := counts(t, tab.Pool(id), keys, len(keys))
		share := float64(got[slow]) / float64(len(keys))
		t.Logf("%s: slow backend %.3f of %d new dialogs; %v", tc.pool, share, len(keys), got)
		if share > tc.maxSlow || share < tc.minSlow {
			t.Errorf("%s: slow backend takes %.3f of new dialogs, want [%.3f, %.3f]", tc.pool, share, tc.minSlow, tc.maxSlow)
		}
		for _, a := range addrs[:2] {
			if f := float64(got[a]) / float64(len(keys)); f < 0.25 {
				t.Errorf("%s: fast backend %v takes only %.3f", tc.pool, a, f)
			}
		}
	}
}

// optionsResponder starts a UDP backend on 127.0.0.1 that answers every
// request with 200 OK after delay, echoing its headers, until the test ends.
func optionsResponder(t *testing.T, delay time.Duration) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			line := bytes.Index(buf[:n], []byte("\r\n"))
			if line < 0 {
				continue
			}
			reply := append([]byte("SIP/2.0 200 OK"), buf[line:n]...)
			if delay == 0 {
				conn.WriteToUDPAddrPort(reply, from)
				continue
			}
			time.AfterFunc(delay, func() { conn.WriteToUDPAddrPort(reply, from) })
		}
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpProber is a ProbeSender over one UDP socket on 127.0.0.1, whose
// reader hands the replies to the Checker as the engine does.
type udpProber struct{ conn *net.UDPConn }

func (p *udpProber) SendProbe(to *Backend, msg []byte) error {
	_, err := p.conn.WriteToUDPAddrPort(msg, to.Addr)
	return err
}

// probeOverUDP runs a Checker over bal whose probes go out of a real UDP
// socket, until the test ends.
func probeOverUDP(t *testing.T, bal *Balancer, health map[string]HealthConfig) *Checker {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	id := ProbeIdentity{Transport: "UDP", SentBy: conn.LocalAddr().String(), BranchPrefix: testBranchPrefix}
	c := NewChecker(bal, health, id, &udpProber{conn}, nil)
	ctx := t.Context()
	var wg sync.WaitGroup
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	wg.Go(func() { c.Run(ctx) })
	wg.Go(func() {
		buf := make([]byte, 4096)
		var m parser.Message
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if parser.Parse(&m, buf[:n]) != nil || m.IsRequest() {
				t.Errorf("backend sent a bad reply: %q", buf[:n])
				continue
			}
			c.Response(m.TopVia().Branch, m.StatusCode())
		}
	})
	return c
}
