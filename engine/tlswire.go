package engine

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errWouldBlock is what a read on a tlsWire that must not wait returns when
// there is nothing to read. It is temporary (a net.Error), so crypto/tls
// keeps the connection usable and the bytes of a partial record it has.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "nothing to read now" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// tlsWire is the connection under an inbound TLS one: the handshake reads
// it as it would its TCP connection (or a sniffConn over it), and its
// reader, once the connection is established, reads it without waiting
// (nowait) and waits for it to become readable apart (wait), so that what
// it borrows to read is given back whenever crypto/tls has nothing left.
// Only the reader goroutine reads it.
type tlsWire struct {
	net.Conn // reads while !nowait, writes, deadlines, close
	rc       syscall.RawConn
	nowait   bool

	// The TLS records (RFC 8446 §5.1) of what crypto/tls was given: it
	// reads only while it lacks bytes of the record it assembles, having
	// consumed every record before it, so bytes given past that record's
	// end (extra) are records it holds unread.
	hdr    [5]byte
	hdrN   int // bytes of the next record's header seen
	left   int // bytes of the current record's fragment still to come
	extra  bool
	maxRec int // the longest record fragment seen

	p      []byte // the read in progress, for readNow
	n      int
	err    error
	woken  bool    // wait's readable has been called once
	peek   [1]byte // readable's
	readFn func(fd uintptr) bool
	waitFn func(fd uintptr) bool
}

// newTLSWire returns the wire over tc that reads through inner while
// waiting; nil when tc has no file descriptor to read apart.
func newTLSWire(inner net.Conn, tc *net.TCPConn) *tlsWire {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &tlsWire{Conn: inner, rc: rc}
	w.readFn, w.waitFn = w.readNow, w.readable
	return w
}

func (w *tlsWire) Read(p []byte) (int, error) {
	if !w.nowait {
		n, err := w.Conn.Read(p)
		w.extra = w.track(p[:n])
		return n, err
	}
	w.p, w.n, w.err = p, 0, nil
	err := w.rc.Read(w.readFn)
	w.p = nil
	if err != nil {
		w.extra = false
		return 0, err // a deadline passed (Drain), or the connection is closed
	}
	w.extra = w.track(p[:w.n])
	return w.n, w.err
}

// track follows the record framing over b, the next bytes given to
// crypto/tls, and reports whether b goes on past the end of the record
// it begins in or continues.
func (w *tlsWire) track(b []byte) bool {
	for len(b) > 0 {
		if w.hdrN < len(w.hdr) {
			k := copy(w.hdr[w.hdrN:], b)
			w.hdrN += k
			b = b[k:]
			if w.hdrN < len(w.hdr) {
				return false
			}
			w.left = int(w.hdr[3])<<8 | int(w.hdr[4])
			w.maxRec = max(w.maxRec, w.left)
		}
		k := min(w.left, len(b))
		w.left -= k
		b = b[k:]
		if w.left == 0 {
			w.hdrN = 0
			if len(b) > 0 {
				return true
			}
		}
	}
	return false
}

// buffered reports whether crypto/tls may hold bytes it has not returned,
// after a read that returned n bytes into a buffer of size.
func (w *tlsWire) buffered(n, size int) bool {
	return w.extra || n == size
}

// readNow reads once, without waiting, into w.p.
func (w *tlsWire) readNow(fd uintptr) bool {
	for {
		n, err := unix.Read(int(fd), w.p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			w.err = errWouldBlock
		case err != nil:
			w.err = os.NewSyscallError("read", err)
		case n == 0 && len(w.p) > 0:
			w.err = io.EOF
		default:
			w.n = n
		}
		return true
	}
}

// wait returns when the socket has bytes (or an end) to read, the read
// deadline passes, or the connection is closed, with nothing borrowed.
func (w *tlsWire) wait() error {
	w.woken = false
	return w.rc.Read(w.waitFn)
}

// readable is wait's test: the first call looks (a read since the last
// wait may have left bytes that no new readiness will announce), a later
// one follows a readiness event.
func (w *tlsWire) readable(fd uintptr) bool {
	if w.woken {
		return true
	}
	w.woken = true
	for {
		// unix.Recvfrom would allocate its address.
		_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.peek[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		return errno != unix.EAGAIN // bytes, the end, or an error: the read sees it
	}
}
