//go:build linux

package main

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	sysmmsg "github.com/siplb/siplb/internal/mmsg"
)

// batch is one source's messages in flight: its slots are filled by the
// generator and sent with sendmmsg(2) on the connected socket, through the
// socket's RawConn so that Go's poller does any waiting. It is owned by the
// source's sending goroutine.
type batch struct {
	rc    syscall.RawConn
	buf   []byte // slots of maxMessage
	kinds []kind
	lens  []int
	hdrs  []unix.Mmsghdr
	iov   []unix.Iovec

	n, done int
	errs    uint64
	sent    *[numKinds]uint64
	sendFn  func(fd uintptr) bool // bound once: no closure per batch
}

func newBatch(c *net.UDPConn, size int) *batch {
	b := &batch{buf: make([]byte, size*maxMessage), kinds: make([]kind, size), lens: make([]int, size),
		hdrs: make([]unix.Mmsghdr, size), iov: make([]unix.Iovec, size)}
	if rc, err := c.SyscallConn(); err == nil {
		b.rc = rc
	}
	for i := range b.hdrs {
		b.iov[i].Base = &b.buf[i*maxMessage]
		b.hdrs[i].Hdr.Iov = &b.iov[i]
		b.hdrs[i].Hdr.SetIovlen(1)
	}
	b.sendFn = b.sendSome
	return b
}

func (b *batch) size() int { return len(b.kinds) }

// slot is the room for message i.
func (b *batch) slot(i int) []byte { return b.buf[i*maxMessage : (i+1)*maxMessage] }

// send sends messages 0..n-1, adding each one the kernel took to sent by
// kind. It returns the messages refused (each skipped, as a plain send
// would lose it) and the error that stopped it: the write deadline, or the
// socket closed.
func (b *batch) send(n int, sent *[numKinds]uint64) (uint64, error) {
	for i := range n {
		b.iov[i].SetLen(b.lens[i])
	}
	b.n, b.done, b.errs, b.sent = n, 0, 0, sent
	if b.rc == nil {
		return 0, errors.New("sipflood: socket has no RawConn")
	}
	err := b.rc.Write(b.sendFn)
	return b.errs, err
}

// sendSome is the RawConn.Write callback: false asks the poller to wait.
func (b *batch) sendSome(fd uintptr) bool {
	for b.done < b.n {
		k, e := sysmmsg.Send(fd, b.hdrs[b.done:b.n])
		switch e {
		case 0:
			for _, kd := range b.kinds[b.done : b.done+k] {
				b.sent[kd]++
			}
			b.done += k
		case unix.EAGAIN:
			return false
		default:
			// ECONNREFUSED from an ICMP error of an earlier send, say:
			// the first message is not sent.
			b.errs++
			b.done++
		}
	}
	return true
}

// read counts the datagrams that come back, a batch per recvmmsg(2), until
// the socket is closed.
func (s *source) read() {
	const n, room = 32, 2048
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, n*room)
	hdrs := make([]unix.Mmsghdr, n)
	iov := make([]unix.Iovec, n)
	for i := range hdrs {
		iov[i].Base = &buf[i*room]
		iov[i].SetLen(room)
		hdrs[i].Hdr.Iov = &iov[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	var got int
	var errno syscall.Errno
	recv := func(fd uintptr) bool {
		got, errno = sysmmsg.Recv(fd, hdrs)
		return errno != unix.EAGAIN
	}
	for {
		if err := rc.Read(recv); err != nil {
			return // closed
		}
		if errno != 0 {
			continue // an ICMP error of an earlier send, say
		}
		for i := range got {
			s.count(buf[i*room : i*room+int(hdrs[i].Len)])
		}
	}
}
