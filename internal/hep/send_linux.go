//go:build linux

package hep

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/internal/mmsg"
)

// batchWriter sends up to 2*maxBatch frames on a connected UDP socket with
// one sendmmsg.
type batchWriter struct {
	rc     syscall.RawConn
	iov    [2 * maxBatch]unix.Iovec
	hdrs   [2 * maxBatch]unix.Mmsghdr
	n      int // frames added
	done   int // frames the kernel took or refused
	failed int // frames refused
	fn     func(fd uintptr) bool
	refuse func(syscall.Errno) bool
}

func (w *batchWriter) init(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	w.rc = rc
	for i := range w.hdrs {
		w.hdrs[i].Hdr.Iov = &w.iov[i]
		w.hdrs[i].Hdr.SetIovlen(1)
	}
	// Made once, so a write allocates no closure.
	// A connected UDP socket fails the next send with the ICMP error an
	// earlier frame earned (ECONNREFUSED: the collector is down). The
	// frame is dropped and counted, not sent again, so that a collector
	// that is down shows as send errors.
	w.refuse = func(syscall.Errno) bool { w.failed++; return false }
	w.fn = func(fd uintptr) bool { return mmsg.SendAll(fd, w.hdrs[:w.n], &w.done, w.refuse) }
	return nil
}

func (w *batchWriter) reset() { w.n, w.done, w.failed = 0, 0, 0 }

func (w *batchWriter) add(frame []byte) {
	if w.n == len(w.hdrs) {
		return
	}
	w.iov[w.n].Base = &frame[0]
	w.iov[w.n].SetLen(len(frame))
	w.n++
}

// write sends the frames added and returns how many went and how many the
// socket refused.
func (w *batchWriter) write() (sent, failed int) {
	if w.n == 0 {
		return 0, 0
	}
	err := w.rc.Write(w.fn)
	sent, failed = w.done-w.failed, w.failed
	if err != nil {
		failed += w.n - w.done // the socket is closed: the rest is lost
	}
	for i := range w.n {
		w.iov[i].Base = nil
	}
	return sent, failed
}
