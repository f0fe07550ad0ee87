package echo

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/parser"
)

// startTCPEcho serves one TCP listener on 127.0.0.1:0 until the test ends.
func startTCPEcho(t *testing.T) (*Server, string) {
	t.Helper()
	srv, err := Listen([]string{"tcp://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, srv.TCPAddrs()[0].String()
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c.(*net.TCPConn)
}

func tcpRequest(method, callID, body string) string {
	s := method + " sip:echo@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-ua\r\n" +
		"From: <sip:ua@127.0.0.1>;tag=ua1\r\nTo: <sip:echo@127.0.0.1>\r\n" +
		"Call-ID: " + callID + "\r\nCSeq: 1 " + method + "\r\n"
	if body != "" {
		s += "Content-Type: application/sdp\r\n"
	}
	return s + "Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

// readFrames reads from c until it has want items (messages or pongs) or
// the connection ends.
func readFrames(t *testing.T, c net.Conn, want int) []string {
	t.Helper()
	var got []string
	var buf []byte
	tmp := make([]byte, 65536)
	for len(got) < want {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		for {
			m, _, ferr := parser.Frame(buf, parser.Limits{})
			if ferr != nil {
				t.Fatalf("answers do not frame: %v in %q", ferr, buf)
			}
			if m == 0 {
				break
			}
			got = append(got, string(buf[:m]))
			buf = buf[m:]
		}
		if err != nil {
			break
		}
	}
	return got
}

func TestTCPAnswers(t *testing.T) {
	invite := tcpRequest("INVITE", "tcp-invite", "v=0\r\n")
	options := tcpRequest("OPTIONS", "tcp-options", "")
	tests := []struct {
		name   string
		writes []string // sent one after the other, each its own write
		want   []string // start lines (or "\r\n" for a pong), in order
	}{
		{
			name:   "one message per write",
			writes: []string{options},
			want:   []string{"SIP/2.0 200 OK"},
		},
		{
			name:   "two messages in one write",
			writes: []string{invite + options},
			want:   []string{"SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK", "SIP/2.0 200 OK"},
		},
		{
			name:   "a message split across writes",
			writes: []string{invite[:10], invite[10 : len(invite)-3], invite[len(invite)-3:]},
			want:   []string{"SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK"},
		},
		{
			name:   "keep-alive ping",
			writes: []string{"\r\n\r\n", options},
			want:   []string{"\r\n", "SIP/2.0 200 OK"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startTCPEcho(t)
			c := dialTCP(t, addr)
			for _, w := range tc.writes {
				if _, err := c.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Millisecond) // separate reads on the other side
			}
			got := readFrames(t, c, len(tc.want))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d answers %q, want %d", len(got), got, len(tc.want))
			}
			for i, g := range got {
				first, _, _ := strings.Cut(g, "\r\n")
				if tc.want[i] == "\r\n" {
					first = g
				}
				if first != tc.want[i] {
					t.Errorf("answer %d = %q, want %q", i, first, tc.want[i])
				}
				if strings.Contains(g, "Contact:") && !strings.Contains(g, "Contact: <sip:echo@"+addr+";transport=tcp>") {
					t.Errorf("answer %d: Contact does not name %s over TCP:\n%s", i, addr, g)
				}
			}
		})
	}
}

func TestTCPBrokenStreamCloses(t *testing.T) {
	srv, addr := startTCPEcho(t)
	c := dialTCP(t, addr)
	// RFC 3261 §18.3: Content-Length is mandatory on a stream.
	if _, err := c.Write([]byte("OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("read %q, %v; want the connection closed without an answer", b, err)
	}
	if st := srv.Stats()["tcp://"+addr]; st["invalid"] != 1 {
		t.Errorf("Stats = %v, want one invalid on tcp://%s", srv.Stats(), addr)
	}
}

// TestCloseEndsConnections checks that Close ends the connections as well
// as the listener, so that Serve returns.
func TestCloseEndsConnections(t *testing.T) {
	srv, err := Listen([]string{"tcp://127.0.0.1:0", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	c := dialTCP(t, srv.TCPAddrs()[0].String())
	if _, err := c.Write([]byte(tcpRequest("OPTIONS", "close", ""))); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, c, 1); len(got) != 1 {
		t.Fatalf("no answer before Close: %q", got)
	}
	srv.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after Close with a connection open")
	}
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes after Close, want the connection ended", n)
	}
}

func TestStreamProcessKeepsTail(t *testing.T) {
	s := newStream(netipLoopback(), new(counters))
	msg := tcpRequest("OPTIONS", "tail", "")
	in := msg + msg[:25]
	s.have = copy(s.in, in)
	if !s.process() {
		t.Fatal("process: stream broken")
	}
	if s.have != 25 || !bytes.Equal(s.in[:s.have], []byte(msg[:25])) {
		t.Errorf("tail = %q, want %q", s.in[:s.have], msg[:25])
	}
	if len(s.ends) != 1 {
		t.Errorf("%d answers, want 1", len(s.ends))
	}
}

func netipLoopback() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:5070") }
