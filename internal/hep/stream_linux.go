//go:build linux

package hep

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vecWriter writes a batch of records on the TCP connection with writev
// made as raw system calls on the non-blocking socket, waiting in the
// netpoller when the socket is full.
//
// Raw, because a system call the runtime is told of (net.Buffers' writev
// is one) wakes sysmon whenever every P was idle, which on a siplb that is
// not saturated is most of the time between two polls; the woken sysmon
// then polls every 20 µs for a millisecond or more, each poll a context
// switch. With the sender's two or three such calls a poll, at 200 polls a
// second, that cost the process more CPU than the sending itself (perf of
// bench-capture, 20,000 OPTIONS/s on the 2-core VM: sysmon in 513 samples
// of 9,102 with capture on over TCP, 49 of 6,173 with it off). A raw call
// keeps its P for as long as it runs: a writev of a batch on loopback
// takes tens of microseconds.
type vecWriter struct {
	rc  syscall.RawConn
	iov [maxBatch]unix.Iovec
	n   int // iovecs of the batch
	off int // the first not yet written in full
	err syscall.Errno
	fn  func(fd uintptr) bool // w.send, made once so that a write allocates nothing
}

var errNoRawConn = errors.New("hep: collector connection has no file descriptor")

func (w *vecWriter) init(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errNoRawConn
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	w.rc = rc
	if w.fn == nil {
		w.fn = w.send
	}
	return nil
}

// write writes every byte of bufs, or returns why it could not (the write
// deadline, a broken connection). At most maxBatch buffers.
func (w *vecWriter) write(bufs [][]byte) error {
	n := 0
	for _, b := range bufs[:min(len(bufs), len(w.iov))] {
		if len(b) > 0 {
			w.iov[n].Base = &b[0]
			w.iov[n].SetLen(len(b))
			n++
		}
	}
	w.n, w.off, w.err = n, 0, 0
	err := w.rc.Write(w.fn)
	clear(w.iov[:n])
	if err != nil {
		return err
	}
	if w.err != 0 {
		return w.err
	}
	return nil
}

// send is the RawConn.Write callback: it writes what is left and reports
// false when the socket has no room (the netpoller waits, then calls it
// again).
func (w *vecWriter) send(fd uintptr) bool {
	for w.off < w.n {
		r, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[w.off])), uintptr(w.n-w.off))
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return false
		case e != 0:
			w.err = e
			return true
		case r == 0:
			return false // nothing taken: wait until writable
		}
		w.advance(int(r))
	}
	return true
}

// advance passes over k bytes written: the iovecs written in full, and
// the written part of the next.
func (w *vecWriter) advance(k int) {
	for k > 0 && w.off < w.n {
		v := &w.iov[w.off]
		if l := int(v.Len); k >= l {
			k -= l
			w.off++
			continue
		}
		v.Base = (*byte)(unsafe.Add(unsafe.Pointer(v.Base), k))
		v.SetLen(int(v.Len) - k)
		k = 0
	}
}
