package engine

import (
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/internal/guard"
)

func udpOn(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatalf("bind %s (all of 127.0.0.0/8 is loopback on Linux): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// received counts the datagrams c reads within d.
func received(c *net.UDPConn, d time.Duration) map[netip.Addr]int {
	got := map[netip.Addr]int{}
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(d))
	for {
		_, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return got
		}
		got[from.Addr()]++
	}
}

// The program, run by the kernel: a listed source's datagrams never reach
// the socket, every other's do.
func TestFilterProgramInKernel(t *testing.T) {
	sink := udpOn(t, "127.0.0.1:0")
	a, b := udpOn(t, "127.0.0.2:0"), udpOn(t, "127.0.0.3:0")
	prog, err := filterProgram([]uint32{0x7f000002, 0x7f0000fe}, [][2]uint32{{0x20010db8, 0}})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := sink.SyscallConn()
	var serr error
	rc.Control(func(fd uintptr) {
		fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
	})
	if serr != nil {
		t.Fatalf("attach: %v", serr)
	}
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	for range 20 {
		a.WriteToUDPAddrPort([]byte("x"), to)
		b.WriteToUDPAddrPort([]byte("y"), to)
	}
	got := received(sink, 300*time.Millisecond)
	if got[netip.MustParseAddr("127.0.0.2")] != 0 || got[netip.MustParseAddr("127.0.0.3")] != 20 {
		t.Errorf("received %v; want none from 127.0.0.2 (filtered) and 20 from 127.0.0.3", got)
	}
}

// A blocked flooder is kept out by the kernel: what it sends after the
// block reaches neither siplb's user-space check nor the backend, while
// another source is served; a member's IP is never filtered.
func TestServerFloodFilteredInKernel(t *testing.T) {
	uas := startUAS(t)
	lb, srv := startGuardedLB(t, guard.Config{Flood: guard.FloodConfig{Window: time.Second, Density: 50, BlockTime: 3 * time.Second}}, uas)
	if srv.kfilter == nil {
		t.Fatal("a Server with a flood detector on the batched UDP path has no kernel filter")
	}

	flooder := udpOn(t, "127.0.0.2:0")
	for i := range 200 {
		flooder.WriteToUDPAddrPort(invite("kf-"+itoa(i), "z9hG4bKkf"+itoa(i)), lb)
	}
	deadline := time.Now().Add(2 * time.Second)
	for srv.Stats().Drop(DropFlood) < 150 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the filter update
	before := srv.Stats().Drop(DropFlood)
	for i := range 500 {
		flooder.WriteToUDPAddrPort(invite("kf2-"+itoa(i), "z9hG4bKkg"+itoa(i)), lb)
	}
	c := newUAC(t, lb)
	if _, err := c.call("kf-legit"); err != nil {
		t.Fatalf("a legitimate call beside the filtered flood: %v", err)
	}
	if after := srv.Stats().Drop(DropFlood); after-before > 5 {
		t.Errorf("%d datagrams of the blocked source reached user space after the filter was set, want 0", after-before)
	}
	for _, prefix := range []string{"kf2-"} {
		uas.mu.Lock()
		for id := range uas.seen {
			if len(id) > len(prefix) && id[:len(prefix)] == prefix {
				t.Errorf("flood message %s reached the backend", id)
			}
		}
		uas.mu.Unlock()
	}
}
