//go:build linux

package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/guard"
	"github.com/siplb/siplb/parser"
)

// handOver records the UDP sockets a Server opens and hands duplicates of
// them to another: what cmd/siplb's tableflip hook does across exec.
type handOver struct {
	mu     sync.Mutex
	socks  []*net.UDPConn   // as the first server opened them, by index
	asked  []int            // indexes the second server asked for
	handed map[int]struct{} // indexes handed over
}

func (h *handOver) open(ctx context.Context, lc *net.ListenConfig, network, addr string, index int, handedOnly bool) (net.PacketConn, error) {
	if handedOnly {
		return nil, nil
	}
	pc, err := lc.ListenPacket(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.socks = append(h.socks, pc.(*net.UDPConn))
	h.mu.Unlock()
	return pc, nil
}

func (h *handOver) take(_ context.Context, _ *net.ListenConfig, _, _ string, index int, _ bool) (net.PacketConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = append(h.asked, index)
	if index >= len(h.socks) {
		return nil, nil
	}
	f, err := h.socks[index].File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h.handed[index] = struct{}{}
	return net.FilePacketConn(f)
}

// handOverServer is a Server with one UDP leg on leg, in front of uas,
// whose UDP sockets are opened by listen; both servers of a test share the
// branch secret, as two siplb processes reading one state directory do.
func handOverServer(t *testing.T, leg netip.AddrPort, loops int, listen ListenPacketFunc, uas *testUAS) *Server {
	t.Helper()
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Algorithm: balance.HashCallID,
		Backends: []balance.BackendConfig{{Addr: uas.addr, Transport: balance.UDP, Weight: 1, Priority: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewForwarder(Config{Legs: []LegConfig{{Transport: balance.UDP, Addr: leg}}, BranchSecret: "hand-over-test-secret-0123456789"}, bal)
	if err != nil {
		t.Fatal(err)
	}
	return NewServerWith(f, Options{Loops: loops, ListenPacket: listen})
}

func handOverOptions(c *uac, id string) []byte {
	return sip("OPTIONS sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+c.local()+";branch=z9hG4bK-"+id+";rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a", "To: <sip:bob@example.com>",
		"Call-ID: "+id, "CSeq: 1 OPTIONS", "Content-Length: 0")
}

// Datagrams that reach the sockets while the first server no longer reads
// them (StopReading) and before the second one runs wait in the kernel's
// queues of the sockets handed over, and the second server answers every
// one: the hand-over loses none. The second server, with fewer loops, also
// takes the socket past its loops, which the kernel goes on filling.
func TestHandOverKeepsQueuedDatagrams(t *testing.T) {
	uas := startUAS(t)
	legs := []LegConfig{{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := ResolvePorts(legs); err != nil {
		t.Fatal(err)
	}
	h := &handOver{handed: map[int]struct{}{}}
	old := runServerT(t, handOverServer(t, legs[0].Addr, 2, h.open, uas))
	c := newUAC(t, legs[0].Addr)
	if _, err := c.transact(handOverOptions(c, "before")); err != nil {
		t.Fatalf("before the hand-over: %v", err)
	}
	if len(h.socks) != 2 {
		t.Fatalf("the first server opened %d UDP sockets, want 2 (one per loop)", len(h.socks))
	}
	old.StopReading()
	time.Sleep(50 * time.Millisecond) // the readers end their batch
	in := old.Stats().RequestsIn

	// Sent from several source ports, so SO_REUSEPORT spreads them over
	// both sockets; each is sent once.
	const n = 32
	clients := make([]*uac, 8)
	for i := range clients {
		clients[i] = newUAC(t, legs[0].Addr)
		for j := range n / len(clients) {
			clients[i].send(handOverOptions(clients[i], fmt.Sprintf("queued-%d-%d", i, j)))
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := old.Stats().RequestsIn; got != in {
		t.Fatalf("the first server read %d requests after StopReading", got-in)
	}

	next := runServerT(t, handOverServer(t, legs[0].Addr, 1, h.take, uas))
	answered := 0
	for _, cl := range clients {
		var m parser.Message
		for range n / len(clients) {
			cl.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			k, _, err := cl.conn.ReadFromUDPAddrPort(cl.buf)
			if err != nil {
				break
			}
			if parser.Parse(&m, cl.buf[:k]) == nil && !m.IsRequest() && m.StatusCode() == 200 {
				answered++
			}
		}
	}
	if answered != n {
		t.Errorf("%d of %d datagrams queued during the hand-over answered, want all", answered, n)
	}
	if got := next.Stats().RequestsIn; got < n {
		t.Errorf("the second server read %d requests, want at least %d", got, n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.handed) != 2 || len(h.asked) != 3 {
		t.Errorf("second server (1 loop) asked for sockets %v and took %d, want 0, 1 (past its loops, handed over), 2 (none) and 2 taken", h.asked, len(h.handed))
	}
}

// filterAttached reports whether a socket filter is attached to fd
// (SO_GET_FILTER with no room answers the count of its instructions).
func filterAttached(t *testing.T, fd int) bool {
	t.Helper()
	var n uint32
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_GET_FILTER, 0, uintptr(unsafe.Pointer(&n)), 0)
	switch e {
	case 0:
		return n > 0
	case unix.EINVAL: // older kernels: the filter does not fit in no room
		return true
	}
	t.Fatalf("SO_GET_FILTER: %v", e)
	return false
}

// StopReading takes the kernel filter of blocked sources off the sockets:
// a successor shares them, and nothing would expire the blocks of a
// process that no longer reads.
func TestStopReadingReleasesKernelFilter(t *testing.T) {
	uas := startUAS(t)
	lb, srv := startGuardedLB(t, guard.Config{Flood: guard.FloodConfig{Window: time.Second, Density: 50, BlockTime: 30 * time.Second}}, uas)
	flooder := udpOn(t, "127.0.0.2:0")
	for i := range 200 {
		flooder.WriteToUDPAddrPort(invite("ho-"+itoa(i), "z9hG4bKho"+itoa(i)), lb)
	}
	srv.mu.Lock()
	fds := make([]int, 0, len(srv.batch))
	for _, b := range srv.batch {
		fds = append(fds, b.fd)
	}
	srv.mu.Unlock()
	deadline := time.Now().Add(3 * time.Second)
	for !filterAttached(t, fds[0]) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !filterAttached(t, fds[0]) {
		t.Fatal("no kernel filter attached after a flood")
	}
	srv.StopReading()
	for _, fd := range fds {
		if filterAttached(t, fd) {
			t.Errorf("socket %d keeps the filter after StopReading", fd)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a filter update tick
	for _, fd := range fds {
		if filterAttached(t, fd) {
			t.Errorf("socket %d got a filter again after StopReading", fd)
		}
	}
}

// StopReading returns only once every batched UDP reader has ended: a
// Drain right after it (an upgrade's old process) must decide no datagram,
// or the batch a reader still held meets the drain's 503 for new dialogs,
// which the successor would have forwarded (the one transaction
// TestUpgradeUnderUDPLoadLosesNothing once lost).
func TestStopReadingWaitsForReaders(t *testing.T) {
	uas := startUAS(t)
	lb, srv := startLB(t, 2, uas)
	client := udpOn(t, "127.0.0.1:0")
	stop := make(chan struct{})
	sent := make(chan int)
	go func() {
		i := 0
		for {
			select {
			case <-stop:
				sent <- i
				return
			default:
			}
			i++
			client.WriteToUDPAddrPort(invite("sr-"+itoa(i), "z9hG4bKsr"+itoa(i)), lb)
			if i%64 == 0 {
				time.Sleep(100 * time.Microsecond) // the backend's socket buffer is finite
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // the readers are busy
	srv.StopReading()
	srv.mu.Lock()
	bs := append([]*batchSock(nil), srv.batch...)
	srv.mu.Unlock()
	running := 0
	for _, b := range bs {
		select {
		case <-b.done:
		default:
			running++
		}
	}
	close(stop)
	n := <-sent
	if len(bs) == 0 {
		t.Fatal("no batched UDP socket")
	}
	if running > 0 {
		t.Errorf("%d of %d UDP readers still running when StopReading returned (%d datagrams sent)", running, len(bs), n)
	}
}
