package main

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/siplb/siplb/parser"
)

// TestLatencyAwareE2E: siplb in-process with a least-latency (and a
// least-latency-p2c) pool of three UDP backends on 127.0.0.1, one of which
// answers OPTIONS probes 80 ms late. Once probed, whole calls (INVITE, 200,
// ACK, BYE) with fresh Call-IDs reach the slow backend clearly less than a
// third of the time, and the in-dialog requests of a call reach the backend
// its INVITE did (ACK may still be on its way when the call is checked).
func TestLatencyAwareE2E(t *testing.T) {
	for _, alg := range []string{"least-latency", "least-latency-p2c"} {
		t.Run(alg, func(t *testing.T) {
			fast1, fast2 := startProbeBackend(t, 0), startProbeBackend(t, 0)
			slow := startProbeBackend(t, 80*time.Millisecond)
			farm := []*probeBackend{fast1, fast2, slow}
			lb := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
			var cfg bytes.Buffer
			fmt.Fprintf(&cfg, "listen:\n  - address: udp://%s\n", lb)
			fmt.Fprintf(&cfg, "pools:\n  - name: farm\n    algorithm: %s\n", alg)
			cfg.WriteString("    health: {interval: 200ms, timeout: 150ms}\n    backends:\n")
			for _, b := range farm {
				fmt.Fprintf(&cfg, "      - {address: udp://%s}\n", b.addr)
			}
			cfg.WriteString("log:\n  level: warn\n")
			startServe(t, cfg.Bytes())
			c := newClient(t, lb)
			waitServing(t, c)
			// Bounded wait for three probes of each backend answered.
			deadline := time.Now().Add(10 * time.Second)
			for !(fast1.probes() >= 3 && fast2.probes() >= 3 && slow.probes() >= 3) {
				if time.Now().After(deadline) {
					t.Fatalf("probes answered: %d, %d, %d", fast1.probes(), fast2.probes(), slow.probes())
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // the last answers reach siplb

			const calls = 300
			r := retry{tries: 3, wait: 500 * time.Millisecond}
			got := map[string]int{}
			for i := range calls {
				id := fmt.Sprintf("lat-%s-%d", alg, i)
				target, err := c.call(id, r)
				if err != nil {
					t.Fatal(err)
				}
				got[target]++
				for _, b := range farm {
					ms := b.methods(id)
					if b.addr.String() == target {
						if !slices.Contains(ms, "INVITE") || !slices.Contains(ms, "BYE") {
							t.Fatalf("call %s: backend %v saw %v, want its INVITE and BYE", id, b.addr, ms)
						}
					} else if len(ms) != 0 {
						t.Fatalf("call %s answered by %v, but %v saw %v", id, target, b.addr, ms)
					}
				}
			}
			share := float64(got[slow.addr.String()]) / calls
			t.Logf("%s: %v (slow %v: %.3f)", alg, got, slow.addr, share)
			if share > 1.0/6 {
				t.Errorf("the slow backend took %.3f of new calls, want at most 1/6 (half its share)", share)
			}
			for _, b := range []*probeBackend{fast1, fast2} {
				if f := float64(got[b.addr.String()]) / calls; f < 0.25 {
					t.Errorf("fast backend %v took only %.3f", b.addr, f)
				}
			}
		})
	}
}

// probeBackend is a UAS on 127.0.0.1 that answers OPTIONS after a delay
// (its probe round trip) and other requests at once, as answer builds
// them, recording them by Call-ID; it stops when the test ends.
type probeBackend struct {
	addr netip.AddrPort

	mu       sync.Mutex
	answered int                 // OPTIONS answered
	seen     map[string][]string // Call-ID → methods other than OPTIONS
}

func startProbeBackend(t *testing.T, delay time.Duration) *probeBackend {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b := &probeBackend{addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), seen: map[string][]string{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 65535)
		var m parser.Message
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := buf[:n]
			if parser.Parse(&m, req) != nil || !m.IsRequest() {
				continue
			}
			reply := answer(req, b.addr)
			switch m.Method() {
			case parser.OPTIONS:
				time.AfterFunc(delay, func() {
					conn.WriteToUDPAddrPort(reply, from)
					b.mu.Lock()
					b.answered++
					b.mu.Unlock()
				})
				continue
			case parser.ACK:
				reply = nil
			}
			b.mu.Lock()
			id := string(m.CallID())
			b.seen[id] = append(b.seen[id], string(m.MethodName()))
			b.mu.Unlock()
			if reply != nil {
				conn.WriteToUDPAddrPort(reply, from)
			}
		}
	})
	return b
}

func (b *probeBackend) probes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.answered
}

func (b *probeBackend) methods(callID string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen[callID]...)
}
