package engine

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// streamOf waits (bounded) for the server's stream of the client c and
// returns it.
func streamOf(t testing.TB, srv *Server, c net.Conn) *streamConn {
	t.Helper()
	return streamAt(t, srv, c.LocalAddr().(*net.TCPAddr).AddrPort())
}

// streamAt is streamOf for the client at local.
func streamAt(t testing.TB, srv *Server, local netip.AddrPort) *streamConn {
	t.Helper()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		var found *streamConn
		srv.reg.Range(func(_ pool.ConnID, sc *streamConn) bool {
			if sc.inbound && sc.peer == local {
				found = sc
				return false
			}
			return true
		})
		if found != nil {
			return found
		}
	}
	t.Fatalf("no stream for client %s", local)
	return nil
}

// numbered is a SIP message of source src, number seq, with a body of n
// bytes that depends on both, so a message cut or spliced into another is
// seen.
func numbered(src string, seq, n int) []byte {
	b := fmt.Appendf(nil, "SIP/2.0 299 Test\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-t\r\n"+
		"From: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>;tag=t\r\n"+
		"Call-ID: %s-%d\r\nCSeq: %d OPTIONS\r\nContent-Length: %d\r\n\r\n", src, seq, seq, n)
	for i := range n {
		b = append(b, 'a'+byte((seq+i)%26))
	}
	return b
}

// checkNumbered parses a message made by numbered and returns its source
// and number, or an error saying how it is damaged.
func checkNumbered(msg []byte) (src string, seq int, err error) {
	var m parser.Message
	if err := parser.Parse(&m, msg); err != nil {
		return "", 0, fmt.Errorf("does not parse: %v", err)
	}
	id := string(m.CallID())
	i := bytes.LastIndexByte([]byte(id), '-')
	if i < 0 {
		return "", 0, fmt.Errorf("Call-ID %q", id)
	}
	seq, err = strconv.Atoi(id[i+1:])
	if err != nil {
		return "", 0, fmt.Errorf("Call-ID %q", id)
	}
	body := msg[bytes.Index(msg, []byte("\r\n\r\n"))+4:]
	for j, c := range body {
		if c != 'a'+byte((seq+j)%26) {
			return "", 0, fmt.Errorf("message %s: body byte %d is %q", id, j, c)
		}
	}
	return id[:i], seq, nil
}

// Messages to one TCP client from four sources at once — the owner loop
// (483s to the client's own requests), the batched UDP socket's goroutine
// (a UDP backend's 200s) and goroutines outside the loops writing numbered
// messages of sizes up to 20 KB — all arrive whole, and each source's in
// the order it wrote them.
func TestDirectWriteOrderUnderConcurrency(t *testing.T) {
	uas := startUAS(t)
	uas.conn.SetReadBuffer(4 << 20)
	_, lb, srv := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
	c := dialTCP(t, lb)
	sc := streamOf(t, srv, c)

	const (
		writers   = 3
		perWriter = 300
		requests  = 300 // of each kind: answered by the loop, and by the backend
	)
	want := writers*perWriter + 2*requests
	type result struct {
		counts map[string]int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		last := map[string]int{}
		counts := map[string]int{}
		var err error
		total := 0
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		forEachFrame(c, func(msg []byte) {
			if err != nil {
				return
			}
			var src string
			var seq int
			switch {
			case bytes.HasPrefix(msg, []byte("SIP/2.0 299 ")):
				src, seq, err = checkNumbered(msg)
			default:
				var m parser.Message
				if perr := parser.Parse(&m, msg); perr != nil {
					err = fmt.Errorf("a response does not parse (%v): %q", perr, msg[:min(len(msg), 120)])
					return
				}
				src = strconv.Itoa(m.StatusCode())
				num, _ := m.CSeq()
				seq = int(num)
			}
			if err != nil {
				return
			}
			if seq <= last[src] {
				err = fmt.Errorf("source %s: message %d after %d", src, seq, last[src])
				return
			}
			last[src] = seq
			counts[src]++
			if total++; total == want {
				c.SetReadDeadline(time.Now())
			}
		})
		done <- result{counts, err}
	}()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			var cnt Counters
			src := fmt.Sprintf("w%d", w)
			for i := 1; i <= perWriter; i++ {
				srv.write(nil, &cnt, sc, numbered(src, i, (i*7919)%20000))
			}
		})
	}
	wg.Go(func() {
		local := c.LocalAddr().String()
		for i := 1; i <= requests; i++ {
			hop := bytes.Replace(optionsReq(local, "hop", i), []byte("Max-Forwards: 70"), []byte("Max-Forwards: 0"), 1)
			if _, err := c.Write(append(hop, optionsReq(local, "be", i)...)); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // the backend's UDP buffer is finite
			}
		}
	})
	wg.Wait()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	for src, n := range map[string]int{"w0": perWriter, "w1": perWriter, "w2": perWriter, "483": requests, "200": requests} {
		if r.counts[src] != n {
			t.Errorf("source %s: %d messages, want %d (all: %v; drops %v)", src, r.counts[src], n, r.counts, srv.Stats().Drops)
		}
	}
	st := srv.Stats()
	t.Logf("backend responses: %d written directly, %d through the mailbox", st.DirectWrites, st.DirectFallbacks)
}

// startSmallClient is a siplb with a TCP listener in front of a UDP
// backend, and a client on it with a tiny receive window whose stream
// has a tiny send buffer: the kernel soon takes a direct write in part or
// not at all.
func startSmallClient(t *testing.T) (*Server, net.Conn, *streamConn) {
	t.Helper()
	uas := startUAS(t)
	_, lb, srv := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
	c, sc := smallClient(t, srv, lb)
	return srv, c, sc
}

// smallClient is a client of srv at lb with a tiny receive window, and its
// stream, whose send buffer is made tiny too.
func smallClient(t *testing.T, srv *Server, lb netip.AddrPort) (net.Conn, *streamConn) {
	t.Helper()
	c := dialSmall(t, lb)
	sc := streamOf(t, srv, c)
	sc.w.mu.Lock()
	unix.SetsockoptInt(sc.w.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	sc.w.mu.Unlock()
	return c, sc
}

// A client that does not read: the first direct write is taken only in
// part (a tiny send buffer, a tiny receive window), the rest and what
// follows go to the loop, which also answers the client's own request in
// the meantime; once the client reads, while more messages follow,
// everything arrives whole and in order.
func TestDirectWritePartial(t *testing.T) {
	srv, c, sc := startSmallClient(t)

	var cnt Counters
	const n = 50
	srv.write(nil, &cnt, sc, numbered("w", 1, 60000))
	if cnt.DirectWrites.Load() != 0 || cnt.DirectFallbacks.Load() != 1 {
		t.Fatalf("a 60 KB write to a 4 KB buffer: DirectWrites %d, DirectFallbacks %d, want 0 and 1", cnt.DirectWrites.Load(), cnt.DirectFallbacks.Load())
	}
	// The owner loop writes too while the rest waits.
	hop := bytes.Replace(optionsReq(c.LocalAddr().String(), "hop", 1), []byte("Max-Forwards: 70"), []byte("Max-Forwards: 0"), 1)
	if _, err := c.Write(hop); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= n; i++ {
		srv.write(nil, &cnt, sc, numbered("w", i, 3000))
	}
	if f := cnt.DirectFallbacks.Load(); f < 2 {
		t.Errorf("DirectFallbacks %d: the writes after a partial one went direct", f)
	}

	time.Sleep(50 * time.Millisecond) // all queued before the client reads

	// The client reads, slowly through its small window, while as many
	// messages again follow: a direct write must wait until gnet's buffer
	// has emptied, or its bytes would overtake what the buffer holds.
	type result struct {
		seq, hops int
		err       error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		got := readResponses(t, c, 2*n+1, 20*time.Second)
		for _, msg := range got {
			if bytes.HasPrefix(msg, []byte("SIP/2.0 483 ")) {
				r.hops++
				continue
			}
			_, i, err := checkNumbered(msg)
			if err == nil && i != r.seq+1 {
				err = fmt.Errorf("message %d after %d", i, r.seq)
			}
			if err != nil {
				r.err = err
				break
			}
			r.seq = i
		}
		done <- r
	}()
	for i := n + 1; i <= 2*n; i++ {
		srv.write(nil, &cnt, sc, numbered("w", i, 3000))
		time.Sleep(200 * time.Microsecond)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.seq != 2*n || r.hops != 1 {
		t.Errorf("%d numbered messages and %d 483s, want %d and 1 (drops %v)", r.seq, r.hops, 2*n, srv.Stats().Drops)
	}
	t.Logf("%d writes direct, %d through the loop", cnt.DirectWrites.Load(), cnt.DirectFallbacks.Load())
}

// Small messages to a client that reads only later: the kernel takes each
// whole until the socket is full, then refuses the next (EAGAIN), which
// goes to the loop; the messages after it must queue behind it even while
// gnet's buffer is still empty, and once the client reads (as they keep
// coming) all arrive in order.
func TestDirectWriteRefused(t *testing.T) {
	srv, c, sc := startSmallClient(t)

	var cnt Counters
	i := 0
	for i < 5000 && cnt.DirectFallbacks.Load() == 0 {
		i++
		srv.write(nil, &cnt, sc, numbered("w", i, 100))
	}
	if cnt.DirectFallbacks.Load() == 0 {
		t.Fatalf("%d small messages to a client that does not read all written directly", i)
	}
	const more = 3000
	want := i + more
	done := make(chan error, 1)
	go func() {
		seq := 0
		var err error
		for _, msg := range readResponses(t, c, want, 20*time.Second) {
			_, k, cerr := checkNumbered(msg)
			if cerr == nil && k != seq+1 {
				cerr = fmt.Errorf("message %d after %d", k, seq)
			}
			if cerr != nil {
				err = cerr
				break
			}
			seq = k
		}
		if err == nil && seq != want {
			err = fmt.Errorf("%d messages, want %d (drops %v)", seq, want, srv.Stats().Drops)
		}
		done <- err
	}()
	for range more {
		i++
		srv.write(nil, &cnt, sc, numbered("w", i, 100))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes direct, %d through the loop", cnt.DirectWrites.Load(), cnt.DirectFallbacks.Load())
}

// dialSmall connects to lb with a 4 KB receive buffer, so the server's
// writes soon fill the connection.
func dialSmall(t *testing.T, lb netip.AddrPort) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp4", lb.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Writes to a stream that closes: goroutines write to a client's stream
// while the server closes it, or only once it has closed, and a new client
// connects at once, on the same descriptor number (steerFD). The process
// carries on, and the new client never receives a byte meant for the old
// one: a direct write never reaches a descriptor after OnClose.
func TestDirectWriteClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		racing bool // the writers run while the stream closes; else they start once the new one is up
	}{
		{name: "racing the close", racing: true},
		{name: "after the close"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uas := startUAS(t)
			_, lb, srv := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
			const rounds = 15
			reused := 0
			for round := range rounds {
				a := dialTCP(t, lb)
				go drainConn(a)
				sa := streamOf(t, srv, a)
				fdA := sa.w.fd // set before the stream was published

				stop := make(chan struct{})
				var wg sync.WaitGroup
				writers := func() {
					for w := range 2 {
						wg.Go(func() {
							var cnt Counters
							for i := 1; i <= 5000; i++ {
								select {
								case <-stop:
									return
								default:
								}
								srv.write(nil, &cnt, sa, numbered(fmt.Sprintf("old%d-%d", round, w), i, 200))
							}
						})
					}
				}
				if tc.racing {
					writers()
					time.Sleep(time.Millisecond)
				}
				sa.c.Close() // the server closes it, as the sweeper or a budget eviction would
				sa.w.mu.Lock()
				id := sa.id // set under the lock, after the stream was published
				sa.w.mu.Unlock()
				for deadline := time.Now().Add(5 * time.Second); srv.reg.Get(id) != nil; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the stream did not close")
					}
				}
				b, sb := dialSteered(t, srv, lb, fdA)
				if sb.w.fd == fdA {
					reused++
				}
				if !tc.racing {
					writers()
				}
				time.Sleep(5 * time.Millisecond)
				close(stop)
				wg.Wait()
				// b's client sends a request of its own and must get only its answer.
				hop := bytes.Replace(optionsReq(b.LocalAddr().String(), "new", round+1), []byte("Max-Forwards: 70"), []byte("Max-Forwards: 0"), 1)
				if _, err := b.Write(hop); err != nil {
					t.Fatal(err)
				}
				got := readResponses(t, b, 2, 100*time.Millisecond) // its answer, and anything else that came
				if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 483 ")) {
					t.Fatalf("round %d: the new client got %d messages, first %q", round, len(got), first(got))
				}
				b.Close()
				a.Close()
			}
			t.Logf("%d of %d new streams took the closed one's descriptor number", reused, rounds)
		})
	}
}

// steerFD has the process's descriptor numbers below fd all taken but
// one, and fd free, so that of the next two descriptors opened (the
// server's accept, gnet's dup of it) the second is fd; release gives the
// taken ones back. When fd is not free, it does nothing.
func steerFD(fd int) (release func()) {
	var held []int
	release = func() {
		for _, h := range held {
			unix.Close(h)
		}
	}
	for {
		h, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return release
		}
		if h > fd {
			unix.Close(h) // fd was not free
			return release
		}
		if h == fd {
			unix.Close(h)
			if n := len(held); n > 0 {
				unix.Close(held[n-1])
				held = held[:n-1]
			}
			return release
		}
		held = append(held, h)
	}
}

// dialSteered connects a client to lb such that the server's stream gets
// descriptor fd if the process can arrange it (steerFD): the client's own
// socket is opened beforehand, at a number far above.
func dialSteered(t *testing.T, srv *Server, lb netip.AddrPort, fd int) (net.Conn, *streamConn) {
	t.Helper()
	low, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfd := 900 + fd
	if err := unix.Dup3(low, cfd, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	unix.Close(low)
	release := steerFD(fd)
	err = unix.Connect(cfd, &unix.SockaddrInet4{Port: int(lb.Port()), Addr: lb.Addr().As4()})
	var sc *streamConn
	if err == nil {
		var sa unix.Sockaddr
		sa, err = unix.Getsockname(cfd)
		if err == nil {
			a := sa.(*unix.SockaddrInet4)
			sc = streamAt(t, srv, netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)))
		}
	}
	release()
	if err != nil {
		unix.Close(cfd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(cfd), "client")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, sc
}

func drainConn(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

func first(got [][]byte) []byte {
	if len(got) == 0 {
		return nil
	}
	return got[0][:min(len(got[0]), 80)]
}
