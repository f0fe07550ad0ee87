package engine

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// partialHeader is the start of a request whose header never ends, n bytes
// long.
func partialHeader(n int) []byte {
	h := "OPTIONS sip:service@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-part\r\nX-Pad: "
	return []byte(h + strings.Repeat("p", n-len(h)))
}

// waitFor polls cond every few milliseconds for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// closedByPeer reports whether c has been closed by siplb (a read ends in
// EOF or a reset rather than a timeout).
func closedByPeer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// Connections holding partial messages: with a budget of 1 MiB, 300
// partial headers of 3000 bytes (3 KiB buffers each) fit; 300 more do not,
// and the oldest of the first ones are closed to make room, counted, while
// what is held never exceeds the budget.
func TestStreamBudgetClosesOldest(t *testing.T) {
	const (
		budget  = 1 << 20
		each    = 3000
		perConn = 3072 // pool.BytesCap(3000)
		old     = 300
		young   = 300
	)
	if pool.BytesCap(each) != perConn {
		t.Fatalf("BytesCap(%d) = %d", each, pool.BytesCap(each))
	}
	uas := startTCPUAS(t)
	_, lb, srv := startMixedLB(t, pool.Limits{MemoryBudget: budget, MaxConnsPerIP: 2 * (old + young)}, tcpMember(uas))

	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if v := srv.Stats().StreamBytes; v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	msg := partialHeader(each)
	olds := make([]net.Conn, old)
	for i := range olds {
		olds[i] = dialTCP(t, lb)
		olds[i].Write(msg)
		// In order: each is held before the next one starts.
		if !waitFor(5*time.Second, func() bool { return srv.Stats().StreamBytes == int64((i+1)*perConn) }) {
			t.Fatalf("partial %d not held: StreamBytes = %d", i, srv.Stats().StreamBytes)
		}
	}
	youngs := make([]net.Conn, young)
	for i := range youngs {
		youngs[i] = dialTCP(t, lb)
		youngs[i].Write(msg)
	}
	evicted := (old+young)*perConn - budget
	evicted = (evicted + perConn - 1) / perConn
	if !waitFor(10*time.Second, func() bool {
		st := srv.Stats()
		return st.BudgetCloses >= uint64(evicted) && st.StreamBytes >= int64((old+young-evicted)*perConn)
	}) {
		st := srv.Stats()
		t.Fatalf("BudgetCloses = %d, StreamBytes = %d; want %d closes and %d bytes held", st.BudgetCloses, st.StreamBytes, evicted, (old+young-evicted)*perConn)
	}
	st := srv.Stats()
	if st.BudgetCloses != uint64(evicted) {
		t.Errorf("BudgetCloses = %d, want %d", st.BudgetCloses, evicted)
	}
	if p := peak.Load(); p > budget || st.StreamBytes > budget {
		t.Errorf("held %d bytes at the peak, %d now: over the budget of %d", p, st.StreamBytes, budget)
	}
	for i, c := range olds {
		// A close counted reaches its client soon, but on a loaded machine
		// not always within a fixed sleep: wait for each one due.
		wait := time.Millisecond
		if i < evicted {
			wait = 5 * time.Second
		}
		if got, want := closedByPeer(c, wait), i < evicted; got != want {
			t.Errorf("old connection %d: closed %v, want %v (the %d oldest go)", i, got, want, evicted)
		}
	}
	for i, c := range youngs {
		if closedByPeer(c, time.Millisecond) {
			t.Errorf("young connection %d closed while older partial messages were held", i)
		}
	}
	// Closing the connections gives their bytes back.
	for _, c := range append(olds, youngs...) {
		c.Close()
	}
	if !waitFor(5*time.Second, func() bool { return srv.Stats().StreamBytes == 0 }) {
		t.Errorf("StreamBytes = %d after every connection closed", srv.Stats().StreamBytes)
	}
}

// oversize are the messages that must get 513: a header section over the
// limit (never ending), and a Content-Length over the limit (the body, sent
// anyway, left unread).
func oversize(local string) map[string][]byte {
	hdr := "OPTIONS sip:service@example.com SIP/2.0\r\nVia: SIP/2.0/TCP " + local + ";branch=z9hG4bK-big;rport\r\n" +
		"From: <sip:a@example.com>;tag=f\r\nTo: <sip:service@example.com>\r\nCall-ID: big@x\r\nCSeq: 1 OPTIONS\r\n"
	return map[string][]byte{
		"header over the limit":         []byte(hdr + "X-Pad: " + strings.Repeat("h", 20<<10) + "\r\n"),
		"content-length over the limit": []byte(hdr + "Content-Length: 100000\r\n\r\n" + strings.Repeat("b", 100000)),
	}
}

// readAnswer reads the status line of the first answer on c.
func readAnswer(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// A message over the limits gets 513 Message Too Large, counted in the
// replies, before the connection closes, over TCP and over TLS, even with
// the rest of the message unread.
func TestStreamOversize513(t *testing.T) {
	uas := startTCPUAS(t)
	_, tcpLB, tcpSrv := startMixedLB(t, pool.Limits{}, tcpMember(uas))

	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	tlsSrv := startLegs(t, legs, balance.BackendConfig{Addr: startUAS(t).addr})
	tlsLB := legs[0].Addr

	dial := map[string]func(t *testing.T) net.Conn{
		"tcp": func(t *testing.T) net.Conn { return dialTCP(t, tcpLB) },
		"tls": func(t *testing.T) net.Conn {
			c, err := tls.Dial("tcp", tlsLB.String(), &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		},
	}
	srvs := map[string]*Server{"tcp": tcpSrv, "tls": tlsSrv}
	for _, transport := range []string{"tcp", "tls"} {
		for _, name := range []string{"header over the limit", "content-length over the limit"} {
			t.Run(transport+"/"+name, func(t *testing.T) {
				srv := srvs[transport]
				before := srv.Stats().Replies[513]
				c := dial[transport](t)
				msg := oversize(c.LocalAddr().String())[name]
				// Written in the background: siplb stops reading at the
				// limit, and the peer must still get the answer.
				go func() {
					c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					c.Write(msg)
				}()
				line, err := readAnswer(c)
				if line != "SIP/2.0 513 Message Too Large" {
					t.Fatalf("answer %q (%v), want 513 Message Too Large", line, err)
				}
				if got := srv.Stats().Replies[513]; got != before+1 {
					t.Errorf("replies{status=513} = %d, want %d", got, before+1)
				}
				// Then the connection ends.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.Copy(io.Discard, c); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Errorf("connection still open after the 513")
					}
				}
			})
		}
	}

}
