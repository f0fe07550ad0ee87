//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// backend answers every datagram with its own address, "|", and the
// datagram, to the datagram's source.
func backend(t testing.TB) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	self := c.LocalAddr().(*net.UDPAddr).AddrPort()
	prefix := []byte(self.String() + "|")
	go func() {
		buf := make([]byte, 16<<10)
		out := make([]byte, 0, 17<<10)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			out = append(append(out[:0], prefix...), buf[:n]...)
			if _, err := c.WriteToUDPAddrPort(out, from); err != nil {
				return
			}
		}
	}()
	return self
}

// startRelay runs a relay on 127.0.0.1:0 in front of backends until the test ends.
func startRelay(t testing.TB, backends ...netip.AddrPort) *Relay {
	t.Helper()
	r, err := Listen(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Backends: backends})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return r
}

// client is a connected UDP socket to the relay.
func client(t testing.TB, r *Relay) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRelayRoundTrip(t *testing.T) {
	backs := []netip.AddrPort{backend(t), backend(t), backend(t)}
	r := startRelay(t, backs...)
	tests := []struct {
		name    string
		clients int
		msgs    int
		size    int
	}{
		{name: "one client one datagram", clients: 1, msgs: 1, size: 10},
		{name: "many clients", clients: 8, msgs: 20, size: 500},
		{name: "large datagram", clients: 2, msgs: 3, size: 9000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 16<<10)
			for ci := range tc.clients {
				c := client(t, r)
				local := c.LocalAddr().(*net.UDPAddr).AddrPort()
				want := backs[pick(local, len(backs))]
				for m := range tc.msgs {
					msg := bytes.Repeat([]byte{byte('a' + m%26)}, tc.size)
					copy(msg, strconv.Itoa(ci)+"/"+strconv.Itoa(m))
					if _, err := c.Write(msg); err != nil {
						t.Fatal(err)
					}
					_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
					n, err := c.Read(buf)
					if err != nil {
						t.Fatalf("client %d message %d: %v", ci, m, err)
					}
					got := buf[:n]
					wantPrefix := want.String() + "|"
					if !bytes.HasPrefix(got, []byte(wantPrefix)) {
						t.Fatalf("client %d: answer from %q, want backend %s", ci, got[:min(len(got), 30)], want)
					}
					if !bytes.Equal(got[len(wantPrefix):], msg) {
						t.Fatalf("client %d message %d: payload changed (%d bytes, want %d)", ci, m, n-len(wantPrefix), len(msg))
					}
				}
			}
		})
	}
	// The relay counts a batch once the batch is sent, both ways, so the
	// last answer can reach the client a moment before its request or the
	// answer itself is counted: wait (bounded) for both counters to settle.
	const total = 1 + 8*20 + 2*3
	s := r.Stats()
	for deadline := time.Now().Add(2 * time.Second); (s.Up != total || s.Down != total) && time.Now().Before(deadline); s = r.Stats() {
		time.Sleep(time.Millisecond)
	}
	if s.Up != s.Down || s.Up != total || s.Dropped != 0 || s.Clients != 11 {
		t.Errorf("Stats = %+v, want Up = Down = 167, Dropped 0, Clients 11", s)
	}
}

// TestRelayBurst sends a whole window before reading, so that batches of
// more than one datagram are read and written.
func TestRelayBurst(t *testing.T) {
	r := startRelay(t, backend(t), backend(t))
	const window = 200
	c := client(t, r)
	for i := range window {
		if _, err := c.Write([]byte("m" + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[string]bool, window)
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for len(seen) < window {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(seen), err)
		}
		_, msg, _ := bytes.Cut(buf[:n], []byte("|"))
		seen[string(msg)] = true
	}
}

func TestPickSpreads(t *testing.T) {
	var hits [3]int
	for p := range 300 {
		hits[pick(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(40000+p)), 3)]++
	}
	for i, h := range hits {
		if h < 50 {
			t.Errorf("backend %d got %d of 300 clients, want about 100", i, h)
		}
	}
	// Pinned: the same client must reach the same backend in every run and
	// on every machine (FNV-1a over address and port, no per-process seed).
	for _, tc := range []struct {
		addr string
		want int
	}{{"127.0.0.1:5060", 2}, {"127.0.0.1:40000", 1}} {
		if got := pick(netip.MustParseAddrPort(tc.addr), 3); got != tc.want {
			t.Errorf("pick(%s, 3) = %d, want %d", tc.addr, got, tc.want)
		}
	}
}

func TestListenErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no backends", cfg: Config{Listen: netip.MustParseAddrPort("127.0.0.1:0")}},
		{name: "address not local", cfg: Config{
			Listen:   netip.MustParseAddrPort("192.0.2.1:5060"),
			Backends: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5070")},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := Listen(tc.cfg); err == nil {
				r.close()
				t.Errorf("Listen(%+v) = nil error, want one", tc.cfg)
			}
		})
	}
}

// BenchmarkRelayRoundTrip is one datagram to a backend and back through the
// relay, one at a time: the relay's added latency plus the loopback's.
func BenchmarkRelayRoundTrip(b *testing.B) {
	r := startRelay(b, backend(b))
	c := client(b, r)
	msg := []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
