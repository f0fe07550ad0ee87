//go:build linux && !race

package engine

import (
	"net"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
)

// A loop's datagrams are queued and sent with no allocation once its queue
// has its buffer: a full queue of 32 to two sockets, and a flush whose sends
// are refused (ICMP errors queued: the error queue read, the retries, the
// drop).
func TestUDPQueueAllocs(t *testing.T) {
	_, fd := udpSender(t)
	_, fd2 := udpSender(t)
	sink := udpSink(t)
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	msg := make([]byte, 600)
	var q udpQueue
	q.init(&Counters{}, func(netip.AddrPort, balance.Hint) {})
	batch := func() {
		for i := range udpQueueLen {
			q.add([2]int{fd, fd2}[i/16], msg, to)
		}
		q.flush()
	}
	batch()
	if n := testing.AllocsPerRun(50, batch); n != 0 {
		t.Errorf("%.1f allocations per batch of %d datagrams, want 0", n, udpQueueLen)
	}
	q.sendmmsg = func(uintptr, []unix.Mmsghdr) (int, syscall.Errno) { return 0, unix.ECONNREFUSED }
	refused := func() {
		q.add(fd, msg, to)
		q.flush()
	}
	if n := testing.AllocsPerRun(50, refused); n != 0 {
		t.Errorf("%.1f allocations per refused datagram, want 0", n)
	}
}
