//go:build linux && !race

package engine

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
)

// Reading and judging ICMP errors allocates nothing, so a flood of them
// (forged or not) costs no garbage: parseRecvErr and classifyICMP, and
// drainErrors reading a genuine port unreachable from a socket's error
// queue.
func TestICMPAllocs(t *testing.T) {
	oob := cmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(uint32(unix.ECONNREFUSED), unix.SO_EE_ORIGIN_ICMP, 3, 3, forger4))
	if n := testing.AllocsPerRun(100, func() {
		e, _ := parseRecvErr(oob)
		classifyICMP(e, backend4)
	}); n != 0 {
		t.Errorf("parseRecvErr and classifyICMP: %v allocs, want 0", n)
	}

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	dead := reservePort(t)
	to := &unix.SockaddrInet4{Addr: dead.Addr().As4(), Port: int(dead.Port())}
	var hints int
	b := &batchSock{scr: &Scratch{}, s: &Server{onDrop: func(netip.AddrPort, balance.Hint) { hints++ }}}
	poll := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLERR}}
	msg := []byte("x")
	runs := 0
	allocs := testing.AllocsPerRun(20, func() {
		runs++
		unix.Sendto(fd, msg, 0, to)
		for range 1000 { // the error comes back through loopback at once
			if n, _ := unix.Poll(poll, 10); n > 0 {
				break
			}
		}
		b.drainErrors(uintptr(fd))
	})
	if hints != runs || b.scr.Counters.ICMPErrors.Load() != uint64(runs) {
		t.Fatalf("%d runs, %d errors read, %d hints", runs, b.scr.Counters.ICMPErrors.Load(), hints)
	}
	if allocs != 0 {
		t.Errorf("drainErrors: %v allocs per ICMP error, want 0", allocs)
	}
}
