//go:build linux

package hep

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// listenUDPOn is a collector on addr ("127.0.0.1:0", "[::1]:0"); a
// machine without ::1 skips the test.
func listenUDPOn(t *testing.T, addr string) *udpSink {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		v6 := netip.MustParseAddrPort(addr).Addr().Is6()
		switch {
		case v6 && errors.Is(err, syscall.EAFNOSUPPORT):
			t.Skipf("needs IPv6: this machine's kernel lacks the IPv6 family (socket: EAFNOSUPPORT, %v), so the test has no ::1 collector to send to", err)
		case v6 && errors.Is(err, syscall.EADDRNOTAVAIL):
			t.Skipf("needs ::1 on loopback: this machine has IPv6 disabled there (bind: EADDRNOTAVAIL, %v), so the test has no ::1 collector to send to", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadBuffer(4 << 20)
	return &udpSink{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// entryCounter wraps s's sendmmsg and counts the entries the kernel took,
// and those of them that were GSO entries.
type entryCounter struct{ entries, gso int }

func (c *entryCounter) wrap(s *Sender) {
	send := s.out.sendmmsg
	s.out.sendmmsg = func(fd uintptr, hdrs []unix.Mmsghdr) (int, syscall.Errno) {
		n, e := send(fd, hdrs)
		for _, h := range hdrs[:n] {
			c.entries++
			if h.Hdr.Controllen != 0 {
				c.gso++
			}
		}
		return n, e
	}
}

// captureMixed queues n messages of sizes from 100 to about 2,000 bytes,
// each payload naming its index, then two of 9,000 bytes (too large for a
// GSO segment); it returns the payloads in order.
func captureMixed(s *Sender, n int) [][]byte {
	var sent [][]byte
	for i := range n + 2 {
		size := 100 + (i*37)%1900
		if i >= n {
			size = 9000
		}
		p, _ := testPackets(0)
		p.Payload = append(fmt.Appendf(nil, "msg %d ", i), bytes.Repeat([]byte("z"), size)...)
		s.Capture(&p, nil)
		sent = append(sent, p.Payload)
	}
	return sent
}

// Over UDP with GSO, a batch of frames of many sizes leaves in far fewer
// entries than frames, every datagram a whole frame that a collector
// decodes (those padded to their class's size with the pad chunk), and
// every frame arrives once. Without it (NoGSO), a datagram a frame, in
// order, none padded.
func TestSenderGSO(t *testing.T) {
	tests := []struct {
		name  string
		addr  string
		noGSO bool
	}{
		{"gso ipv4", "127.0.0.1:0", false},
		{"gso ipv6", "[::1]:0", false},
		{"plain", "127.0.0.1:0", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := listenUDPOn(t, tc.addr)
			if !tc.noGSO {
				needGSO(t)
			}
			s := newTestSender(t, Config{Collector: sink.addr, CaptureID: 7, NoGSO: tc.noGSO})
			if st := s.Stats(); st.GSO == tc.noGSO {
				t.Fatalf("Stats().GSO = %v with NoGSO %v (kernel %s)", st.GSO, tc.noGSO, kernel())
			}
			var c entryCounter
			c.wrap(s)
			sent := captureMixed(s, 200)
			s.drain()
			index := map[string]int{}
			for i, p := range sent {
				index[string(p)] = i
			}
			seen := make([]bool, len(sent))
			padded, last := 0, -1
			for range sent {
				b := sink.read(t)
				f, err := decode(b)
				if err != nil {
					t.Fatalf("datagram of %d bytes: %v", len(b), err)
				}
				i, ok := index[string(f.chunks[chunkPayload])]
				if !ok || seen[i] {
					t.Fatalf("payload %.12q: unknown or seen before", f.chunks[chunkPayload])
				}
				seen[i] = true
				if f.u32(chunkCaptureID) != 7 {
					t.Errorf("frame %d: capture id %d, want 7", i, f.u32(chunkCaptureID))
				}
				if f.pad > 0 {
					padded++
					if len(b)%padStep != 0 || f.pad < padMin || f.pad >= padStep+padMin {
						t.Errorf("frame %d: %d bytes with a pad of %d", i, len(b), f.pad)
					}
					if i >= 200 {
						t.Errorf("frame %d of 9000 bytes padded", i)
					}
				}
				if tc.noGSO && i < last {
					t.Errorf("frame %d after frame %d", i, last)
				}
				last = max(last, i)
			}
			st := s.Stats()
			if st.Sent != uint64(len(sent)) || st.SendErrors != 0 {
				t.Errorf("Stats = %+v, want %d sent", st, len(sent))
			}
			if tc.noGSO {
				if padded != 0 || c.gso != 0 || c.entries != len(sent) {
					t.Errorf("plain: %d padded, %d GSO entries of %d; want 0, 0 of %d", padded, c.gso, c.entries, len(sent))
				}
				return
			}
			// 202 frames of 31 classes (and 2 alone): about 33 entries.
			if c.entries > len(sent)/4 || c.gso == 0 || padded == 0 {
				t.Errorf("GSO: %d entries (%d GSO) for %d frames, %d padded", c.entries, c.gso, len(sent), padded)
			}
		})
	}
}

// An entry the kernel refuses for GSO's sake (EIO: a device that cannot
// checksum) turns GSO off: that entry's frames and the rest go a datagram
// each, the padded ones still whole frames, nothing is lost or counted as
// an error, and later batches are not tried with GSO again.
func TestSenderGSOFallback(t *testing.T) {
	needGSO(t)
	sink := listenUDPOn(t, "127.0.0.1:0")
	s := newTestSender(t, Config{Collector: sink.addr})
	if !s.Stats().GSO {
		t.Fatalf("the kernel (%s) has UDP GSO, the Sender does not use it", kernel())
	}
	send := s.out.sendmmsg
	refused := 0
	s.out.sendmmsg = func(fd uintptr, hdrs []unix.Mmsghdr) (int, syscall.Errno) {
		k := 0 // the kernel sends the entries before the first GSO one, then fails it
		for k < len(hdrs) && hdrs[k].Hdr.Controllen == 0 {
			k++
		}
		if k == 0 {
			refused++
			return 0, unix.EIO
		}
		return send(fd, hdrs[:k])
	}
	for round, n := range []int{100, 20} {
		sent := captureMixed(s, n)
		s.drain()
		got := map[string]bool{}
		for range sent {
			f, err := decode(sink.read(t))
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			got[string(f.chunks[chunkPayload])] = true
			if round == 1 && f.pad != 0 {
				t.Errorf("round 1: a frame padded with GSO off")
			}
		}
		for i, p := range sent {
			if !got[string(p)] {
				t.Errorf("round %d: frame %d lost", round, i)
			}
		}
	}
	if st := s.Stats(); refused != 1 || st.GSO || st.SendErrors != 0 || st.Sent != 124 {
		t.Errorf("refused %d times, Stats %+v; want once, GSO off, 124 sent, no errors", refused, st)
	}
}

// needGSO skips a test on a kernel without UDP GSO, asked directly (not
// through the Sender, whose probe is under test): getsockopt UDP_SEGMENT
// fails with ENOPROTOOPT there.
func needGSO(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT); errors.Is(err, unix.ENOPROTOOPT) {
		t.Skipf("needs UDP GSO in the kernel (UDP_SEGMENT, Linux 4.18 and later): this machine's kernel %s lacks it (getsockopt UDP_SEGMENT: ENOPROTOOPT, %v), so no sendmmsg entry can be cut into datagrams", kernel(), err)
	} else if err != nil {
		t.Fatal(err)
	}
}

func kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// The padded frames' layout, as a collector reads it: a frame of each
// size that rounds to a pad of 0, the smallest (padMin) and the largest.
func TestGSOClass(t *testing.T) {
	w := batchWriter{segMax: 1472}
	tests := []struct{ n, size int }{
		{640, 640},   // no pad
		{634, 640},   // pad of 6
		{635, 704},   // 5 short: a pad of 69
		{577, 640},   // pad of 63
		{1472, 1472}, // the largest that an Ethernet MTU takes
		{1473, 0},    // alone
		{1467, 0},    // its pad of 5 cannot be, and 1536 is too large
	}
	for _, tc := range tests {
		if got := int(w.classOf(tc.n)) * padStep; got != tc.size {
			t.Errorf("classOf(%d) pads to %d, want %d", tc.n, got, tc.size)
		}
	}
	for p := padMin; p < len(pads); p++ {
		f := append(append([]byte("HEP3"), byte((6+p)>>8), byte(6+p)), pads[p]...)
		if d, err := decode(f); err != nil || d.pad != p {
			t.Errorf("pad of %d: decoded %+v, %v", p, d, err)
		}
	}
}
