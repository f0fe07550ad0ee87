//go:build linux

package mmsg

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Recv reads up to len(hdrs) datagrams into hdrs, first resetting each
// header's Namelen (for an address of either family) and Flags. It returns
// the number read, or the error; EINTR is retried.
func Recv(fd uintptr, hdrs []unix.Mmsghdr) (int, syscall.Errno) {
	for i := range hdrs {
		hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		hdrs[i].Hdr.Flags = 0
	}
	return call(unix.SYS_RECVMMSG, fd, hdrs)
}

// Send sends the datagrams of hdrs and returns how many the kernel took, or
// the error of the first one (which was then not sent); EINTR is retried.
func Send(fd uintptr, hdrs []unix.Mmsghdr) (int, syscall.Errno) {
	return call(unix.SYS_SENDMMSG, fd, hdrs)
}

// call makes the recvmmsg or sendmmsg system call trap without blocking,
// retrying EINTR.
//
// It is a raw system call: the runtime is not told (no entersyscall), so
// the goroutine keeps its P throughout. With MSG_DONTWAIT the call cannot
// block, and a batch takes tens of microseconds, but that is longer than
// sysmon's 20 µs tick: told of the call, sysmon would take the P away
// (handoffp) from a busy forwarder over and over, and at each retake reset
// its own sleep to 20 µs, so a loaded siplb paid thousands of sysmon
// wake-ups a second for nothing (perf stat over 4 s at 47k OPTIONS/s on
// the 2-core VM: 32,627 → 12,264 context switches, 13,697 → 373
// nanosleeps).
func call(trap, fd uintptr, hdrs []unix.Mmsghdr) (int, syscall.Errno) {
	if len(hdrs) == 0 {
		return 0, 0
	}
	for {
		n, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}

// SendAll is the retry loop around Send, meant as (or inside) a
// syscall.RawConn.Write callback: it sends hdrs[*sent:], advancing *sent,
// and reports true once every datagram is sent, false when the socket has no
// room (EAGAIN: let the netpoller wait, then call again). When the kernel
// refuses the first datagram left, refused is told the errno: true sends it
// again (the error was about an earlier datagram, such as an ICMP error
// queued by IP_RECVERR that refused has read), false drops it and goes on
// with the rest, as a failed sendto would.
func SendAll(fd uintptr, hdrs []unix.Mmsghdr, sent *int, refused func(syscall.Errno) (retry bool)) bool {
	for *sent < len(hdrs) {
		n, e := Send(fd, hdrs[*sent:])
		switch {
		case e == 0:
			*sent += n
		case e == unix.EAGAIN:
			return false
		case !refused(e):
			*sent++
		}
	}
	return true
}

// AddrPort decodes an address recvmmsg wrote into storage of either family.
func AddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), ntohs(s4.Port)), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// PutAddrPort writes ap into storage for sendmmsg and returns its length.
func PutAddrPort(ap netip.AddrPort, sa *unix.RawSockaddrInet6) uint32 {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		s4.Family = unix.AF_INET
		s4.Port = htons(ap.Port())
		s4.Addr = a.Unmap().As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	sa.Port = htons(ap.Port())
	sa.Addr = a.As16()
	sa.Flowinfo, sa.Scope_id = 0, 0
	return unix.SizeofSockaddrInet6
}

// ntohs reads a port stored in network byte order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// htons stores a port in network byte order.
func htons(p uint16) uint16 {
	var v uint16
	b := (*[2]byte)(unsafe.Pointer(&v))
	b[0], b[1] = byte(p>>8), byte(p)
	return v
}
