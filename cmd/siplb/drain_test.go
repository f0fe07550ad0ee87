package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siplb/siplb/parser"
)

// startSlowTCPBackend is a SIP server on a loopback TCP port that answers
// an INVITE with 200 OK after delay, and any other request but ACK at once,
// on the connection the request came in on.
func startSlowTCPBackend(t *testing.T, delay time.Duration) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := ln.Addr().(*net.TCPAddr).AddrPort()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go readFrames(c, func(req []byte) {
				var m parser.Message
				if parser.Parse(&m, req) != nil || !m.IsRequest() || m.Method() == parser.ACK {
					return
				}
				if m.Method() == parser.INVITE {
					time.AfterFunc(delay, func() { c.Write(answer(req, self)) })
					return
				}
				c.Write(answer(req, self))
			})
		}
	}()
	return self
}

// readFrames calls f with each SIP message read from c until it closes.
func readFrames(c net.Conn, f func([]byte)) {
	var buf []byte
	tmp := make([]byte, 65536)
	for {
		n, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		for {
			k, kind, err := parser.Frame(buf, parser.Limits{})
			if err != nil || k == 0 {
				break
			}
			if kind == parser.FrameMessage {
				f(bytes.Clone(buf[:k]))
			}
			buf = buf[k:]
		}
	}
}

// tcpInvite is an INVITE from the TCP client at local.
func tcpInvite(local, callID string) []byte {
	return sipMsg("INVITE sip:bob@example.com SIP/2.0",
		"Via: SIP/2.0/TCP "+local+";branch=z9hG4bK-"+callID+";rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a-"+callID, "To: <sip:bob@example.com>",
		"Call-ID: "+callID, "CSeq: 1 INVITE", "Contact: <sip:alice@"+local+";transport=tcp>", "Content-Length: 0")
}

// drainSetup starts a siplb process with one TCP listener in front of a
// TCP backend whose 200 to an INVITE takes delay, and a client connection
// with an INVITE in flight through it.
func drainSetup(t *testing.T, delay time.Duration, shutdown string) (p *proc, lb, admin string, c net.Conn) {
	t.Helper()
	bin := buildSiplb(t)
	be := startSlowTCPBackend(t, delay)
	lb = fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	admin = fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	cfg := fmt.Sprintf("listen:\n  - address: tcp://%s\npools:\n  - name: farm\n    health: {disabled: true}\n    backends:\n      - address: tcp://%s\nadmin:\n  listen: %s\nshutdown:\n%s",
		lb, be, admin, shutdown)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startSiplb(t, bin, "--config", path, "--loops", "1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, _ := readyzOf(admin); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("siplb not ready within 10s:\n%s", p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := net.DialTimeout("tcp4", lb, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(tcpInvite(c.LocalAddr().String(), "inflight")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // at the backend now
	return p, lb, admin, c
}

// readyzOf asks /readyz; false on any failure.
func readyzOf(admin string) (bool, string) {
	resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + admin + "/readyz")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var b [256]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode == 200, strings.TrimSpace(string(b[:n]))
}

// SIGTERM drains: /readyz answers draining at once, the TCP listener
// refuses new connections, a new INVITE on a connection already open gets
// 503 with Retry-After, the INVITE in flight (its 200 OK 1.5 s away) is
// answered through siplb, and once the connection is idle siplb exits 0,
// long before shutdown.drain_timeout.
func TestSIGTERMDrains(t *testing.T) {
	p, lb, admin, c := drainSetup(t, 1500*time.Millisecond, "  drain_timeout: 20s\n  idle: 500ms\n")
	termAt := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)

	deadline := time.Now().Add(2 * time.Second)
	for {
		ok, why := readyzOf(admin)
		if !ok && why == "draining" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %v %q 2s after SIGTERM", ok, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
	refused := false
	for !refused && time.Now().Before(deadline) {
		c2, err := net.DialTimeout("tcp4", lb, time.Second)
		if err != nil {
			refused = true
			break
		}
		c2.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if !refused {
		t.Error("new TCP connections still accepted while draining")
	}
	if _, err := c.Write(tcpInvite(c.LocalAddr().String(), "during-drain")); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		readFrames(c, func(m []byte) {
			got = append(got, m)
			if len(got) == 2 {
				c.SetReadDeadline(time.Now())
			}
		})
	}()
	<-done
	var rejected, answered bool
	for _, r := range got {
		switch {
		case bytes.HasPrefix(r, []byte("SIP/2.0 503 ")) && bytes.Contains(r, []byte("Call-ID: during-drain")):
			rejected = bytes.Contains(r, []byte("\r\nRetry-After: "))
		case bytes.HasPrefix(r, []byte("SIP/2.0 200 ")) && bytes.Contains(r, []byte("Call-ID: inflight")):
			answered = true
		}
	}
	if !rejected || !answered {
		t.Fatalf("during the drain: want 503 with Retry-After to the new INVITE and the in-flight INVITE's 200; got %q\n%s", got, tail([]byte(p.out.String()), 3000))
	}
	c.SetReadDeadline(time.Time{})
	code, ok := p.exit(10 * time.Second)
	if !ok {
		t.Fatalf("siplb still runs 10s into a drain whose connections are idle:\n%s", tail([]byte(p.out.String()), 3000))
	}
	if code != 0 {
		t.Errorf("siplb exited %d after the drain, want 0:\n%s", code, tail([]byte(p.out.String()), 3000))
	}
	if d := time.Since(termAt); d < 1500*time.Millisecond || d > 8*time.Second {
		t.Errorf("exited %v after SIGTERM: want after the in-flight answer (1.2 s) and well before drain_timeout (20 s)", d)
	}
	if !strings.Contains(p.out.String(), "drained") {
		t.Errorf("the log does not say the drain completed:\n%s", tail([]byte(p.out.String()), 2000))
	}
}

// A second SIGTERM stops at once, whatever the drain still waits for (an
// INVITE whose answer never comes).
func TestSecondSIGTERMStopsAtOnce(t *testing.T) {
	p, _, _, _ := drainSetup(t, time.Hour, "  drain_timeout: 60s\n")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, "msg=draining", 5*time.Second)
	if _, ok := p.exit(500 * time.Millisecond); ok {
		t.Fatalf("siplb ended its drain with an INVITE in flight:\n%s", p.out.String())
	}
	at := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code, ok := p.exit(3 * time.Second)
	if !ok {
		t.Fatalf("siplb still runs 3s after the second SIGTERM:\n%s", tail([]byte(p.out.String()), 2000))
	}
	if code != 0 || time.Since(at) > 2*time.Second {
		t.Errorf("second SIGTERM: exit %d after %v, want 0 at once", code, time.Since(at))
	}
}

// shutdown.drain_timeout: 0 stops at once.
func TestDrainTimeoutZeroStopsAtOnce(t *testing.T) {
	p, _, _, _ := drainSetup(t, time.Hour, "  drain_timeout: 0s\n")
	at := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code, ok := p.exit(3 * time.Second)
	if !ok || code != 0 || time.Since(at) > 2*time.Second {
		t.Errorf("drain_timeout 0: exit %d (exited %v) after %v, want 0 at once:\n%s", code, ok, time.Since(at), tail([]byte(p.out.String()), 2000))
	}
}
