//go:build linux

package echo

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	sysmmsg "github.com/siplb/siplb/internal/mmsg"
)

// batchBufSize is the room for one datagram of a batch; a longer one is
// truncated by the kernel and counted as invalid. SIP over UDP keeps
// messages under the path MTU (RFC 3261 §18.1.1), far below this.
const batchBufSize = 16 << 10

// mmsg reads up to batchSize datagrams with one recvmmsg(2) and sends all
// their answers with sendmmsg(2), through the socket's RawConn so that Go's
// poller still does the waiting. It is owned by the socket's goroutine.
type mmsg struct {
	rc     syscall.RawConn
	buf    []byte // batchSize slots of batchBufSize
	inHdr  [batchSize]unix.Mmsghdr
	inIov  [batchSize]unix.Iovec
	inAddr [batchSize]unix.RawSockaddrInet6 // room for either family
	outHdr [3 * batchSize]unix.Mmsghdr      // an INVITE earns three answers
	outIov [3 * batchSize]unix.Iovec

	nIn, nOut, sent int
	errno           syscall.Errno
	recvFn, sendFn  func(fd uintptr) bool // bound once: no closure per call
}

// newMmsg prepares batched I/O on c; nil when c offers no RawConn.
func newMmsg(c *net.UDPConn) *mmsg {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	b := &mmsg{rc: rc, buf: make([]byte, batchSize*batchBufSize)}
	for i := range b.inHdr {
		b.inIov[i].Base = &b.buf[i*batchBufSize]
		b.inIov[i].SetLen(batchBufSize)
		h := &b.inHdr[i].Hdr
		h.Iov = &b.inIov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&b.inAddr[i]))
	}
	for i := range b.outHdr {
		b.outHdr[i].Hdr.Iov = &b.outIov[i]
		b.outHdr[i].Hdr.SetIovlen(1)
	}
	b.recvFn = b.recv
	b.sendFn = b.send
	return b
}

// recv is the RawConn.Read callback: false asks the poller to wait.
func (b *mmsg) recv(fd uintptr) bool {
	n, e := sysmmsg.Recv(fd, b.inHdr[:])
	if e == unix.EAGAIN {
		return false
	}
	b.nIn, b.errno = n, e
	return true
}

// send is the RawConn.Write callback: it sends outHdr[sent:nOut].
func (b *mmsg) send(fd uintptr) bool {
	for b.sent < b.nOut {
		n, e := sysmmsg.Send(fd, b.outHdr[b.sent:b.nOut])
		switch e {
		case 0:
			b.sent += n
		case unix.EAGAIN:
			return false
		default:
			// The first message failed (an ICMP error queued by an earlier
			// send, say): drop it, as a plain sendto would, and go on.
			b.sent++
		}
	}
	return true
}

// serveBatch reads and answers batches of datagrams until the socket closes.
func (k *socket) serveBatch() error {
	b := k.mm
	for {
		if err := b.rc.Read(b.recvFn); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if b.errno != 0 {
			if isTransient(b.errno) {
				continue
			}
			return b.errno
		}
		k.out, k.ends = k.out[:0], k.ends[:0]
		b.nOut = 0
		for i := range b.nIn {
			h := &b.inHdr[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				k.counts[mInvalid].Add(1)
				continue
			}
			first := len(k.ends)
			k.answer(b.buf[i*batchBufSize : i*batchBufSize+int(h.Len)])
			for range len(k.ends) - first {
				o := &b.outHdr[b.nOut].Hdr
				o.Name, o.Namelen = h.Hdr.Name, h.Hdr.Namelen
				b.nOut++
			}
		}
		// k.out is final only now (appending may have moved it).
		start := 0
		for j, end := range k.ends {
			b.outIov[j].Base = &k.out[start]
			b.outIov[j].SetLen(end - start)
			start = end
		}
		b.sent = 0
		if b.nOut > 0 {
			if err := b.rc.Write(b.sendFn); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return nil
				}
				return err
			}
		}
	}
}
