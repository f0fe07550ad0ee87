//go:build linux

package engine

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/pool"
)

// relayPeer plays the other process of a hand-over: it holds the other end
// of the relay pair.
func relayPeer(t *testing.T, srv *Server) *net.UnixConn {
	t.Helper()
	mine, theirs, err := NewRelayPair()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Relay(mine); err != nil {
		t.Fatal(err)
	}
	c, err := net.FileConn(theirs)
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}

func relayed(conn pool.ConnID, msg []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(conn)), msg...)
}

// clientConn opens a TCP connection to tcp through which an OPTIONS is
// answered, and returns it with the ConnID the server gave it.
func clientConn(t *testing.T, srv *Server, tcp interface{ String() string }) (net.Conn, pool.ConnID) {
	t.Helper()
	c, err := net.DialTimeout("tcp4", tcp.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Write(optionsReq(c.LocalAddr().String(), "relay-open", 1))
	if got := readResponses(t, c, 1, 5*time.Second); len(got) != 1 {
		t.Fatalf("no answer to the OPTIONS over TCP: %q", got)
	}
	var id pool.ConnID
	srv.reg.Range(func(cid pool.ConnID, sc *streamConn) bool {
		if sc.inbound {
			id = cid
		}
		return id == 0
	})
	if id == 0 {
		t.Fatal("no inbound connection registered")
	}
	return c, id
}

// What the other process relays is written on the connection it names,
// if this one holds it; else it is dropped (conn_gone), never relayed
// back. A message for an inbound connection this one does not hold goes
// to the other process, without allocating; one for a connection siplb
// opened does not. The relay ends when the other end closes.
func TestRelay(t *testing.T) {
	uas := startUAS(t)
	_, tcp, srv := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: uas.addr, Transport: balance.UDP})
	c, id := clientConn(t, srv, tcp)
	peer := relayPeer(t, srv)
	if !srv.Relaying() {
		t.Fatal("Relaying false after Relay")
	}

	msg := sip("SIP/2.0 200 OK", "Via: SIP/2.0/TCP "+c.LocalAddr().String()+";branch=z9hG4bK-relayed;rport",
		"From: <sip:a@example.com>;tag=f", "To: <sip:b@example.com>;tag=t", "Call-ID: relayed", "CSeq: 1 INVITE", "Content-Length: 0")
	if _, err := peer.Write(relayed(id, msg)); err != nil {
		t.Fatal(err)
	}
	if got := readResponses(t, c, 1, 5*time.Second); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("over the held connection: %q, want the relayed message", got)
	}

	gone := srv.Stats().Drops[DropConnGone]
	unknown := id ^ 1<<40 // same slot, other random bits: no connection
	peer.Write(relayed(unknown, msg))
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Drops[DropConnGone] == gone && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if srv.Stats().Drops[DropConnGone] != gone+1 {
		t.Errorf("a relayed message for no connection: conn_gone %d, want %d", srv.Stats().Drops[DropConnGone], gone+1)
	}

	// This process's miss goes to the peer, as it was, with its ConnID.
	leg := srv.f.legs[0]
	r := Result{Out: msg, Leg: leg, Conn: unknown}
	srv.deliver(nil, &srv.streams, &r, -1, nil)
	buf := make([]byte, 4096)
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := peer.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], relayed(unknown, msg)) {
		t.Fatalf("relayed out: %q, %v; want the header and the message", buf[:n], err)
	}
	// Only that one: the message dropped above was not relayed back.
	peer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := peer.Read(buf); err == nil {
		t.Errorf("relayed back: %q", buf[:n])
	}
	if srv.relayOut(&srv.streams, unknown|1<<32, msg) {
		t.Error("a connection siplb opened was relayed")
	}
	if a := testing.AllocsPerRun(100, func() { srv.relayOut(&srv.streams, unknown, msg) }); a != 0 {
		t.Errorf("relayOut allocates %v times", a)
	}
	for { // what AllocsPerRun sent
		peer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := peer.Read(buf); err != nil {
			break
		}
	}

	peer.Close()
	deadline = time.Now().Add(5 * time.Second)
	for srv.Relaying() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if srv.Relaying() {
		t.Error("the relay outlived the other end")
	}
	srv.EndRelay() // no relay: nothing to do
}

// Without a relay, a miss is what it was: no relay, and no allocation.
func TestNoRelayMissUnchanged(t *testing.T) {
	s := &Server{}
	var cnt Counters
	if s.relayOut(&cnt, 12345, []byte("x")) {
		t.Error("relayed without a relay")
	}
	if a := testing.AllocsPerRun(100, func() { s.relayOut(&cnt, 12345, []byte("x")) }); a != 0 {
		t.Errorf("relayOut without a relay allocates %v times", a)
	}
}

// BenchmarkRelayOut is the cost of relaying one message to the other
// process (a writev on the relay), drained by a reader.
func BenchmarkRelayOut(b *testing.B) {
	s := &Server{maxMsg: 65536, log: slog.New(slog.DiscardHandler)}
	mine, theirs, err := NewRelayPair()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Relay(mine); err != nil {
		b.Fatal(err)
	}
	c, err := net.FileConn(theirs)
	theirs.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	msg := bytes.Repeat([]byte("x"), 600)
	var cnt Counters
	b.ReportAllocs()
	for b.Loop() {
		s.relayOut(&cnt, 12345, msg)
	}
}
