package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/pool"
)

// Across transports, in both directions, messages reach the loops' streams
// through their mailboxes: 200 pipelined requests of a TCP client answered
// by a UDP backend come back on the client's connection, in order, and 200
// requests of a UDP client sent at once reach a TCP backend and are
// answered.
func TestMailboxAcrossTransports(t *testing.T) {
	t.Run("TCP client, UDP backend", func(t *testing.T) {
		uas := startUAS(t)
		uas.conn.SetReadBuffer(4 << 20) // 200 datagrams at once overflow the default
		_, lb, srv := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
		c := dialTCP(t, lb)
		for i, r := range pipelineOptions(t, c, srv, 200, "xt") {
			if !bytes.HasPrefix(r, []byte("SIP/2.0 200 OK\r\n")) {
				t.Fatalf("response %d wrong: %q", i, r[:min(len(r), 80)])
			}
		}
	})
	t.Run("UDP client, TCP backend", func(t *testing.T) {
		uas := startTCPUAS(t)
		udpLB, _, srv := startMixedLB(t, pool.Limits{}, tcpMember(uas))
		c := newUAC(t, udpLB)
		c.conn.SetReadBuffer(4 << 20)
		const n = 200
		for i := range n {
			if _, err := c.conn.WriteToUDPAddrPort(optionsReq(c.local(), "xu", i+1), udpLB); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[int]bool{}
		deadline := time.Now().Add(10 * time.Second)
		for len(seen) < n && time.Now().Before(deadline) {
			c.conn.SetReadDeadline(deadline)
			k, _, err := c.conn.ReadFromUDPAddrPort(c.buf)
			if err != nil {
				break
			}
			var cseq int
			if i := bytes.Index(c.buf[:k], []byte("CSeq: ")); i >= 0 && bytes.HasPrefix(c.buf[:k], []byte("SIP/2.0 200 OK\r\n")) {
				fmt.Sscanf(string(c.buf[i+6:k]), "%d", &cseq)
				seen[cseq] = true
			}
		}
		if len(seen) != n {
			t.Fatalf("%d of %d requests answered (drops %v)", len(seen), n, srv.Stats().Drops)
		}
	})
}

// fakeLoop is an event loop that keeps what it is asked to Execute.
type fakeLoop struct {
	executes atomic.Int64
	fail     bool
}

func (l *fakeLoop) Register(context.Context, net.Addr) (<-chan gnet.RegisteredResult, error) {
	return nil, errors.ErrUnsupported
}
func (l *fakeLoop) Enroll(context.Context, net.Conn) (<-chan gnet.RegisteredResult, error) {
	return nil, errors.ErrUnsupported
}
func (l *fakeLoop) Execute(context.Context, gnet.Runnable) error {
	if l.fail {
		return net.ErrClosed
	}
	l.executes.Add(1)
	return nil
}
func (l *fakeLoop) Schedule(context.Context, gnet.Runnable, time.Duration) error {
	return errors.ErrUnsupported
}
func (l *fakeLoop) Close(gnet.Conn) error { return nil }

// One Execute per wake however many messages wait, a bounded box, and the
// messages of a stopped loop dropped and counted.
func TestMailbox(t *testing.T) {
	f := newTestForwarder(t)
	s := NewServerWith(f, Options{Loops: 1})
	el := &fakeLoop{}
	loop := s.loopOf(el)
	var cnt Counters
	msg := []byte("SIP/2.0 200 OK\r\n\r\n")
	for range maxMail + 10 {
		s.post(loop, &cnt, mail{b: pool.Copy(msg), conn: 12345})
	}
	if got := el.executes.Load(); got != 1 {
		t.Errorf("%d Executes for %d posts, want 1", got, maxMail+10)
	}
	if got := cnt.Drops[DropSendError].Load(); got != 10 {
		t.Errorf("%d dropped past the bound, want 10", got)
	}
	s.deliverMail(loop) // connection 12345 does not exist: each counted as gone
	if got := loop.s.Counters.Drops[DropConnGone].Load(); got != maxMail {
		t.Errorf("%d counted as gone, want %d", got, maxMail)
	}
	s.post(loop, &cnt, mail{b: pool.Copy(msg), conn: 12345})
	if got := el.executes.Load(); got != 2 {
		t.Errorf("%d Executes after the box was emptied and posted to again, want 2", got)
	}
	s.deliverMail(loop)

	stopped := &fakeLoop{fail: true}
	sl := s.loopOf(stopped)
	before := cnt.Drops[DropSendError].Load()
	s.post(sl, &cnt, mail{b: pool.Copy(msg), conn: 1})
	s.post(sl, &cnt, mail{b: pool.Copy(msg), conn: 1})
	if got := cnt.Drops[DropSendError].Load() - before; got != 2 {
		t.Errorf("%d dropped for a stopped loop, want 2", got)
	}
}

// pipelineOptions writes n OPTIONS (Call-IDs tagged tag, CSeq 1..n) on c
// in one write and returns the n responses, failing the test unless all
// came back, each in its request's place.
func pipelineOptions(t *testing.T, c net.Conn, srv *Server, n int, tag string) [][]byte {
	t.Helper()
	var all []byte
	for i := range n {
		all = append(all, optionsReq(c.LocalAddr().String(), tag, i+1)...)
	}
	if _, err := c.Write(all); err != nil {
		t.Fatal(err)
	}
	got := readResponses(t, c, n, 10*time.Second)
	if len(got) != n {
		t.Fatalf("%d responses to %d pipelined requests (drops %v)", len(got), n, srv.Stats().Drops)
	}
	for i, r := range got {
		if !bytes.Contains(r, fmt.Appendf(nil, "CSeq: %d OPTIONS", i+1)) {
			t.Fatalf("response %d out of order: %q", i, r[:min(len(r), 80)])
		}
	}
	return got
}
