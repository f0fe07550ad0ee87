package engine

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/mmsg"
)

// udpSender is a UDP socket on 127.0.0.1 with IP_RECVERR on, as the batched
// sockets have it, and its descriptor for a udpQueue.
func udpSender(t testing.TB) (*net.UDPConn, int) {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	rc.Control(func(f uintptr) {
		fd = int(f)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1); err != nil {
			t.Fatal(err)
		}
	})
	return c, fd
}

// udpSink is a UDP socket on 127.0.0.1 that the test reads.
func udpSink(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(1 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads datagrams from c until none comes for a short while.
func readAll(c *net.UDPConn) []string {
	var got []string
	buf := make([]byte, 65536)
	for {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return got
		}
		got = append(got, string(buf[:n]))
	}
}

// closedPort is a UDP port on 127.0.0.1 where nothing listens: a datagram
// to it draws an ICMP port unreachable.
func closedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return ap
}

type hintLog struct {
	mu sync.Mutex
	to []netip.AddrPort
}

func (h *hintLog) hint(dst netip.AddrPort, _ balance.Hint) {
	h.mu.Lock()
	h.to = append(h.to, dst)
	h.mu.Unlock()
}

// A loop's datagrams queued in one event leave in one sendmmsg per socket,
// each destination's in the order queued; the queue full sends early and
// goes on; a datagram larger than UDP carries is not queued.
func TestUDPQueue(t *testing.T) {
	_, fd := udpSender(t)
	_, fd2 := udpSender(t)
	a, b := udpSink(t), udpSink(t)
	aAddr, bAddr := a.LocalAddr().(*net.UDPAddr).AddrPort(), b.LocalAddr().(*net.UDPAddr).AddrPort()
	type send struct {
		fd  int
		dst netip.AddrPort
	}
	cases := []struct {
		name      string
		sends     []send
		wantCalls uint64
	}{
		{name: "five to two destinations, one socket", sends: []send{{fd, aAddr}, {fd, bAddr}, {fd, aAddr}, {fd, aAddr}, {fd, bAddr}}, wantCalls: 1},
		{name: "two sockets, one run each", sends: []send{{fd, aAddr}, {fd, bAddr}, {fd2, aAddr}, {fd2, bAddr}}, wantCalls: 2},
		{name: "sockets alternating", sends: []send{{fd, aAddr}, {fd2, aAddr}, {fd, aAddr}}, wantCalls: 3},
		{name: "one over the queue's length", sends: repeatSend(send{fd, aAddr}, udpQueueLen+1), wantCalls: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cnt Counters
			var q udpQueue
			q.init(&cnt, nil)
			want := map[netip.AddrPort][]string{}
			for i, s := range tc.sends {
				p := fmt.Sprintf("datagram %d", i)
				if !q.add(s.fd, []byte(p), s.dst) {
					t.Fatalf("add %d refused", i)
				}
				want[s.dst] = append(want[s.dst], p)
			}
			q.flush()
			if q.calls != tc.wantCalls || q.sent != uint64(len(tc.sends)) {
				t.Errorf("%d sendmmsg calls sent %d datagrams, want %d calls for %d", q.calls, q.sent, tc.wantCalls, len(tc.sends))
			}
			for dst, c := range map[netip.AddrPort]*net.UDPConn{aAddr: a, bAddr: b} {
				if got := readAll(c); fmt.Sprint(got) != fmt.Sprint(want[dst]) {
					t.Errorf("to %v: got %q, want %q", dst, got, want[dst])
				}
			}
			if d := cnt.Drops[DropSendError].Load(); d != 0 {
				t.Errorf("%d send errors", d)
			}
		})
	}
	t.Run("larger than a datagram", func(t *testing.T) {
		var q udpQueue
		q.init(&Counters{}, nil)
		if q.add(fd, make([]byte, maxDatagram+1), aAddr) || q.n != 0 {
			t.Errorf("a datagram over %d bytes was queued", maxDatagram)
		}
	})
	t.Run("no loop", func(t *testing.T) {
		var q udpQueue
		if q.add(fd, []byte("x"), aAddr) {
			t.Errorf("a queue not readied for a loop took a datagram")
		}
	})
}

func repeatSend[T any](v T, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// An ICMP port unreachable for an earlier datagram (IP_RECVERR) fails the
// next send out of the socket: the flush reads the error queue (counted,
// and the destination's own port unreachable given to the health checks as
// a hint) and sends again, losing nothing.
func TestUDPQueueICMPQueued(t *testing.T) {
	_, fd := udpSender(t)
	live := udpSink(t)
	liveAddr := live.LocalAddr().(*net.UDPAddr).AddrPort()
	dead := closedPort(t)
	var cnt Counters
	var hints hintLog
	var q udpQueue
	q.init(&cnt, hints.hint)

	q.add(fd, []byte("to nobody"), dead)
	q.flush()
	waitSocketError(t, fd)
	want := []string{"live 0", "live 1", "live 2"}
	for _, p := range want {
		q.add(fd, []byte(p), liveAddr)
	}
	q.flush()
	if got := readAll(live); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q (drops %d)", got, want, cnt.Drops[DropSendError].Load())
	}
	if d := cnt.Drops[DropSendError].Load(); d != 0 {
		t.Errorf("%d dropped", d)
	}
	if n := cnt.ICMPErrors.Load(); n != 1 {
		t.Errorf("%d ICMP errors read, want 1", n)
	}
	if q.calls != 3 { // the one to nobody; the refused try and the retry
		t.Errorf("%d sendmmsg calls, want 3", q.calls)
	}
	hints.mu.Lock()
	defer hints.mu.Unlock()
	if fmt.Sprint(hints.to) != fmt.Sprint([]netip.AddrPort{dead}) {
		t.Errorf("hints %v, want one for %v", hints.to, dead)
	}
}

// waitSocketError waits until fd has an error pending (poll's POLLERR,
// which does not take it).
func waitSocketError(t *testing.T, fd int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		if n, _ := unix.Poll(pfd, 10); n > 0 && pfd[0].Revents&unix.POLLERR != 0 {
			return
		}
	}
	t.Fatal("no ICMP error queued on the socket")
}

// ICMP errors that keep failing the sends (a flood of them, forged or not)
// cost a flush at most maxQueuedErrRetries sends again: the next refusal
// drops the datagram it hit, counted, and the flush goes on. Here the kernel
// is made to refuse every try of a datagram to one destination; every
// datagram to the other, before, between and after, leaves, in order.
func TestUDPQueueRefused(t *testing.T) {
	_, fd := udpSender(t)
	live := udpSink(t)
	liveAddr := live.LocalAddr().(*net.UDPAddr).AddrPort()
	dead := closedPort(t)
	var cnt Counters
	var q udpQueue
	q.init(&cnt, nil)
	refusals := 0
	q.sendmmsg = func(fd uintptr, hdrs []unix.Mmsghdr) (int, syscall.Errno) {
		if to, _ := mmsg.AddrPort((*unix.RawSockaddrInet6)(unsafe.Pointer(hdrs[0].Hdr.Name))); to == dead {
			refusals++
			return 0, unix.ECONNREFUSED
		}
		for i := range hdrs { // up to the next datagram to dead
			if to, _ := mmsg.AddrPort((*unix.RawSockaddrInet6)(unsafe.Pointer(hdrs[i].Hdr.Name))); to == dead {
				hdrs = hdrs[:i]
				break
			}
		}
		return mmsg.Send(fd, hdrs)
	}
	var want []string
	queueLive := func(i int) {
		p := fmt.Sprintf("live %d", i)
		want = append(want, p)
		q.add(fd, []byte(p), liveAddr)
	}
	queueLive(0)
	q.add(fd, []byte("dead 0"), dead)
	queueLive(1)
	queueLive(2)
	q.add(fd, []byte("dead 1"), dead)
	queueLive(3)
	q.flush()

	if got := readAll(live); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the listening destination got %q, want %q", got, want)
	}
	if d := cnt.Drops[DropSendError].Load(); d != 2 {
		t.Errorf("%d dropped, want the 2 to the refused destination", d)
	}
	if want := 2 * (maxQueuedErrRetries + 1); refusals != want {
		t.Errorf("%d refused sends, want %d (each datagram tried 1+%d times)", refusals, want, maxQueuedErrRetries)
	}
	if q.sent != uint64(len(want)) {
		t.Errorf("%d sent, want %d", q.sent, len(want))
	}
}

// TCP client to UDP backend through the server, with either UDP I/O: the
// requests of one read of the client's stream reach the backend in one
// sendmmsg, in order, and are answered; under gnet's UDP I/O a UDP
// client's request also leaves through the loop's queue.
func TestUDPQueueAcrossTransports(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gnetUDP bool
	}{
		{name: "batched UDP", gnetUDP: false},
		{name: "gnet UDP", gnetUDP: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uas := startUAS(t)
			udpLB, lb, srv := startQueueLB(t, tc.gnetUDP, balance.BackendConfig{Addr: uas.addr})
			c := dialTCP(t, lb)
			const n = 8
			pipelineOptions(t, c, srv, n, "xq")
			calls, sent := loopUDPCounts(t, srv)
			if sent != n {
				t.Errorf("the loops sent %d datagrams, want %d", sent, n)
			}
			// One read normally carries the whole write; a split read
			// costs one more call, never one per request.
			if calls == 0 || calls > 2 {
				t.Errorf("%d sendmmsg calls for %d requests written at once, want 1 (2 if the read was split)", calls, n)
			}
			if !tc.gnetUDP {
				return
			}
			u := newUAC(t, udpLB)
			if _, err := u.conn.WriteToUDPAddrPort(optionsReq(u.local(), "xg", 1), udpLB); err != nil {
				t.Fatal(err)
			}
			u.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, _, err := u.conn.ReadFromUDPAddrPort(u.buf)
			if err != nil || !bytes.HasPrefix(u.buf[:k], []byte("SIP/2.0 200 OK\r\n")) {
				t.Fatalf("UDP client: %q, %v", u.buf[:max(k, 0)], err)
			}
			if calls2, sent2 := loopUDPCounts(t, srv); sent2 < sent+2 || calls2 < calls+2 {
				t.Errorf("a UDP client's request and its answer: %d sendmmsg calls and %d datagrams more, want 2 and 2", calls2-calls, sent2-sent)
			}
		})
	}
}

// startQueueLB is startMixedLB (a TCP and a UDP leg on one port, two
// loops) with the UDP I/O chosen.
func startQueueLB(t *testing.T, gnetUDP bool, members ...balance.BackendConfig) (udp, tcp netip.AddrPort, srv *Server) {
	t.Helper()
	udp, tcp, srv = newMixedLB(t, Options{Loops: 2, GnetUDP: gnetUDP}, members...)
	runServerT(t, srv)
	return udp, tcp, srv
}

// loopUDPCounts sums the loops' udpQueue counts, read on each loop.
func loopUDPCounts(t *testing.T, srv *Server) (calls, sent uint64) {
	t.Helper()
	srv.mu.Lock()
	loops := append([]*loopState(nil), srv.all...)
	srv.mu.Unlock()
	for _, l := range loops {
		done := make(chan [2]uint64, 1)
		err := l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			done <- [2]uint64{l.udp.calls, l.udp.sent}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-done:
			calls += v[0]
			sent += v[1]
		case <-time.After(5 * time.Second):
			t.Fatal("a loop did not run its task")
		}
	}
	return calls, sent
}

// BenchmarkUDPQueue is one 600-byte datagram sent by a loop, in events of
// 8 (a stream read carrying 8 requests for UDP backends): queued, then one
// sendmmsg per event. BenchmarkUDPSendto is the same datagrams sent one
// sendto each, as a loop sent them before.
func BenchmarkUDPQueue(b *testing.B) {
	_, fd := udpSender(b)
	to := discardTo(b)
	msg := make([]byte, 600)
	var q udpQueue
	q.init(&Counters{}, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; b.Loop(); i++ {
		q.add(fd, msg, to)
		if i%8 == 7 {
			q.flush()
		}
	}
	q.flush()
}

func BenchmarkUDPSendto(b *testing.B) {
	_, fd := udpSender(b)
	to := discardTo(b)
	msg := make([]byte, 600)
	var sa4 unix.SockaddrInet4
	var sa6 unix.SockaddrInet6
	sa := mmsg.Sockaddr(to, &sa4, &sa6)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		sendto(fd, msg, sa)
	}
}

// discardTo is a socket that nobody reads, so sends cost no receiver: the
// kernel drops what overflows its buffer, after the sender's work is done.
func discardTo(b *testing.B) netip.AddrPort {
	c := udpSink(b)
	c.SetReadBuffer(4096)
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}
