package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/siplb/siplb/parser"
)

// heldUDPBackend is a UDP backend that holds its 200 to an INVITE until
// release is closed; it answers anything else at once.
type heldUDPBackend struct {
	addr    netip.AddrPort
	invited chan struct{} // closed on the first INVITE
	release chan struct{}
}

func startHeldUDPBackend(t *testing.T) *heldUDPBackend {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := &heldUDPBackend{addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), invited: make(chan struct{}), release: make(chan struct{})}
	go func() {
		buf := make([]byte, 65536)
		first := true
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := bytes.Clone(buf[:n])
			var m parser.Message
			if parser.Parse(&m, req) != nil || !m.IsRequest() || m.Method() == parser.ACK {
				continue
			}
			if m.Method() == parser.INVITE {
				if first {
					first = false
					close(b.invited)
				}
				go func() {
					<-b.release
					c.WriteToUDPAddrPort(answer(req, b.addr), src)
				}()
				continue
			}
			c.WriteToUDPAddrPort(answer(req, b.addr), src)
		}
	}()
	return b
}

// waitLog waits until the file at path contains s.
func waitLog(t *testing.T, path, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(s)) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			t.Fatalf("%q not logged within %v:\n%s", s, limit, tail(b, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A TCP client whose backend is on UDP, with an INVITE in flight during an
// upgrade: the backend's 200 comes after the new process is ready and the
// old one has stopped reading UDP, so it lands in the new process, which
// does not hold the client's connection. The new process relays it to the
// old one, which writes it on the connection; the connection then closes
// cleanly and the old process exits.
func TestUpgradeRelaysLateResponseToOldConnection(t *testing.T) {
	be := startHeldUDPBackend(t)
	lbTCP := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	lbUDP := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := fmt.Sprintf("listen:\n  - address: tcp://%s\n  - address: udp://%s\npools:\n  - name: farm\n    health: {disabled: true}\n    backends:\n      - address: udp://%s\nadmin:\n  listen: %s\nshutdown:\n  drain_timeout: 20s\n  idle: 300ms\n",
		lbTCP, lbUDP, be.addr, admin)
	u := startUpgradable(t, buildSiplb(t), cfg, admin, "--loops", "1")
	c, err := net.DialTimeout("tcp4", lbTCP, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(tcpInvite(c.LocalAddr().String(), "late")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-be.invited:
	case <-time.After(5 * time.Second):
		t.Fatalf("the INVITE did not reach the backend:\n%s", u.logs())
	}
	if code, msg := u.upgrade(t); code != 0 {
		t.Fatalf("siplb upgrade: exit %d: %s\n%s", code, msg, u.logs())
	}
	// The old process reads no more datagrams: the 200 is the new one's.
	waitLog(t, u.logPath, "this one stops reading and drains", 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	close(be.release)

	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, readErr := readAll(c)
	var got [][]byte
	readFramesBuf(buf, func(m []byte) { got = append(got, m) })
	if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 ")) || !bytes.Contains(got[0], []byte("Call-ID: late")) {
		t.Errorf("over the connection open during the upgrade: got %q, want the INVITE's 200 alone", got)
	}
	if rest := len(buf) - totalLen(got); rest != 0 {
		t.Errorf("%d bytes of a message cut short after the 200", rest)
	}
	if !errors.Is(readErr, io.EOF) {
		t.Errorf("the connection ended with %v, want a clean close (EOF) after the 200", readErr)
	}
	if code, ok := u.p.exit(15 * time.Second); !ok || code != 0 {
		t.Errorf("old siplb: exited %v with %d, want 0:\n%s", ok, code, u.logs())
	}
	// The new process relayed it, and its relay ended with the old one.
	waitLog(t, u.logPath, "relay of the hand-over ended\" relayed_out=1 relayed_in=0 dropped=0", 5*time.Second)
	if t.Failed() {
		t.Logf("logs:\n%s", u.logs())
	}
}

// readAll reads c until an error, which it returns with what it read.
func readAll(c net.Conn) ([]byte, error) {
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			return buf, err
		}
	}
}
