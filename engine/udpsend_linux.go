package engine

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/mmsg"
)

// udpQueue holds the datagrams an event loop sends out of UDP sockets while
// it handles one event (a read of a stream, a datagram under gnet's UDP I/O),
// and sends them at the event's end (loopState.flush) with one sendmmsg per
// run of datagrams for the same socket, in the order they were queued: a
// TCP client's read that carries several requests for UDP backends costs
// one system call, not one sendto each. A loop's stream writes are
// gathered and flushed at the same point, so no datagram waits past the
// event it was produced in.
//
// The queue is bounded (udpQueueLen datagrams, udpQueueBytes bytes): a
// datagram that does not fit first sends what waits. The zero value
// queues nothing (add reports false) until init; the buffer is made on
// first use and kept. Owned by its loop.
type udpQueue struct {
	buf  []byte // the queued datagrams, one after another; cap udpQueueBytes, never grown
	n    int    // datagrams queued
	fd   [udpQueueLen]int
	hdr  [udpQueueLen]unix.Mmsghdr
	iov  [udpQueueLen]unix.Iovec
	addr [udpQueueLen]unix.RawSockaddrInet6

	retries int // sends in this flush that queued ICMP errors failed

	cnt  *Counters // the loop's: drops and ICMP errors
	hint hintFunc  // Options.Unreachable; nil: none

	// sendmmsg, if set, stands in for mmsg.Send (tests).
	sendmmsg func(fd uintptr, hdrs []unix.Mmsghdr) (int, syscall.Errno)

	// For tests: the sendmmsg calls made and the datagrams they sent.
	calls, sent uint64
}

const (
	// udpQueueLen is the datagrams one loop queues before it sends them:
	// as many as a batched socket sends in one call.
	udpQueueLen = batchSize
	// udpQueueBytes bounds the bytes queued; any datagram UDP can carry
	// fits once the queue is empty.
	udpQueueBytes = 2 * maxDatagram
)

// hintFunc takes a hint that a destination may be unreachable
// (Options.Unreachable).
type hintFunc = func(netip.AddrPort, balance.Hint)

// init readies q for a loop whose counters are cnt; hint may be nil.
func (q *udpQueue) init(cnt *Counters, hint hintFunc) {
	q.cnt, q.hint = cnt, hint
}

// add queues p to be sent out of fd to dst, first sending what waits when
// the queue is full. It copies p, which the caller may reuse at once, and
// reports false, having queued nothing, when p is larger than a datagram
// can be or q has no loop: the caller then sends it as before (sendto) and
// the kernel says why not.
func (q *udpQueue) add(fd int, p []byte, dst netip.AddrPort) bool {
	if len(p) > maxDatagram || q.cnt == nil {
		return false
	}
	if q.buf == nil {
		q.buf = make([]byte, 0, udpQueueBytes)
	}
	if q.n == udpQueueLen || len(q.buf)+len(p) > cap(q.buf) {
		q.flush()
	}
	i := q.n
	off := len(q.buf)
	q.buf = append(q.buf, p...)
	q.fd[i] = fd
	h := &q.hdr[i].Hdr
	if len(p) > 0 {
		q.iov[i].Base = &q.buf[off]
	} else {
		q.iov[i].Base = nil
	}
	q.iov[i].SetLen(len(p))
	h.Iov = &q.iov[i]
	h.SetIovlen(1)
	h.Name = (*byte)(unsafe.Pointer(&q.addr[i]))
	h.Namelen = mmsg.PutAddrPort(dst, &q.addr[i])
	q.n++
	return true
}

// flush sends what is queued: one sendmmsg per run of datagrams for the
// same socket, in queue order. A datagram the kernel refuses is dropped and
// counted (DropSendError), as a failed sendto is, and the rest are
// sent; EAGAIN (the socket's buffer is full, and an event loop cannot wait)
// drops the rest of the run. The ICMP rules are the batched sockets'
// (udpbatch_linux.go, batchSock.refused): an ICMP error queued for an
// earlier datagram (IP_RECVERR) fails the send; the socket's error queue is
// read, giving the health checks their hints, and the datagram is sent again, at most
// maxQueuedErrRetries times in one flush, then dropped.
func (q *udpQueue) flush() {
	if q.n == 0 {
		return
	}
	q.retries = 0
	for start := 0; start < q.n; {
		end := start + 1
		for end < q.n && q.fd[end] == q.fd[start] {
			end++
		}
		q.sendRun(uintptr(q.fd[start]), start, end)
		start = end
	}
	q.n = 0
	q.buf = q.buf[:0]
}

// sendRun sends hdr[start:end] out of fd.
func (q *udpQueue) sendRun(fd uintptr, start, end int) {
	for i := start; i < end; {
		var k int
		var e syscall.Errno
		if q.sendmmsg != nil {
			k, e = q.sendmmsg(fd, q.hdr[i:end])
		} else {
			k, e = mmsg.Send(fd, q.hdr[i:end])
		}
		q.calls++
		switch {
		case e == 0:
			i += k
			q.sent += uint64(k)
		case e == unix.EAGAIN:
			q.cnt.Drops[DropSendError].Add(uint64(end - i))
			return
		case q.refused(fd, e):
		default:
			i++
		}
	}
}

// refused is batchSock.refused for a loop's queue: true sends the first
// datagram left again, false has dropped and counted it.
func (q *udpQueue) refused(fd uintptr, e syscall.Errno) bool {
	switch e {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH:
		drainErrQueue(fd, q.cnt, q.hint)
		// A flood of forged ICMP errors must not keep the loop resending.
		if q.retries++; q.retries <= maxQueuedErrRetries {
			return true
		}
	}
	q.retries = 0
	q.cnt.Drops[DropSendError].Add(1)
	return false
}

// drainErrQueue reads up to a batch of entries of fd's error queue
// (IP_RECVERR), counting them in cnt and giving onDrop (if set) the hint of
// an ICMP destination unreachable sent by the destination itself: for a
// batched socket's goroutine (batchSock.drainErrors) and a loop's queue
// alike. It does not allocate.
func drainErrQueue(fd uintptr, cnt *Counters, onDrop hintFunc) {
	var name unix.RawSockaddrInet6
	var oob [128]byte // a cmsg of sock_extended_err and sockaddr_in6 takes 60
	for range batchSize {
		// No data buffer: the quoted datagram is not needed (MSG_TRUNC).
		msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&name)), Namelen: unix.SizeofSockaddrInet6, Control: &oob[0]}
		msg.SetControllen(len(oob))
		_, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return
		}
		dst, ok := mmsg.AddrPort(&name)
		if !ok {
			continue
		}
		cnt.ICMPErrors.Add(1)
		re, _ := parseRecvErr(oob[:min(int(msg.Controllen), len(oob))])
		hint, verdict := classifyICMP(re, dst.Addr())
		switch verdict {
		case icmpForeign:
			cnt.ICMPIgnored.Add(1)
		case icmpOther:
			cnt.ICMPOther.Add(1)
		default:
			if onDrop != nil {
				onDrop(dst, hint)
			}
		}
	}
}
