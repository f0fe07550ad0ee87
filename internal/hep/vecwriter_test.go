package hep

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// dialPair returns a connection to a collector on loopback, and the
// collector's end of it.
func dialPair(t *testing.T) (client *net.TCPConn, server net.Conn) {
	t.Helper()
	ln := listenTCP(t)
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, accept(t, ln)
}

// A batch larger than the socket takes at once goes whole and in order:
// the writes stop part-way through a buffer, wait for room and go on from
// the byte after the last one taken.
func TestVecWriterPartialWrites(t *testing.T) {
	c, srv := dialPair(t)
	var w vecWriter
	if err := w.init(c); err != nil {
		t.Fatal(err)
	}
	var bufs [][]byte
	var want []byte
	for i := range maxBatch {
		b := make([]byte, 1+i*7919%60000) // 1 to 60,000 bytes: 7.6 MB, more than the sockets hold
		for j := range b {
			b[j] = byte(i + j*7) // where a buffer's write resumes shows
		}
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // the writer fills the socket first
		b, _ := io.ReadAll(io.LimitReader(srv, int64(len(want))))
		got <- b
	}()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := w.write(bufs); err != nil {
		t.Fatalf("write of %d bytes: %v", len(want), err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("collector read %d bytes, not the %d written in order", len(b), len(want))
	}
}

// A collector that stops reading costs the writer its write deadline, not
// more.
func TestVecWriterDeadline(t *testing.T) {
	c, _ := dialPair(t)
	var w vecWriter
	if err := w.init(c); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	bufs := [][]byte{big, big, big, big, big, big, big, big} // more than both socket buffers hold
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	start := time.Now()
	err := w.write(bufs)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a collector that reads nothing: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("write returned after %v", d)
	}
}

// A connection the collector closed fails the write.
func TestVecWriterBroken(t *testing.T) {
	c, srv := dialPair(t)
	var w vecWriter
	if err := w.init(c); err != nil {
		t.Fatal(err)
	}
	srv.(*net.TCPConn).SetLinger(0) // a reset, not a close the writer's first write survives
	srv.Close()
	time.Sleep(20 * time.Millisecond)
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 64<<10)
	var err error
	for range 10 {
		if err = w.write([][]byte{b}); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("writes to a reset connection all succeeded")
	}
}
