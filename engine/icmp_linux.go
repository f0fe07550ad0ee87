package engine

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
)

// ICMP errors for the datagrams a batched UDP socket sent, read from its
// error queue (IP_RECVERR, IPV6_RECVERR; ip(7), ipv6(7)). Each queued error
// comes with one control message: a struct sock_extended_err (errno, origin,
// ICMP type and code, info, data) followed by the address of the node that
// sent the ICMP error, the offender (SO_EE_OFFENDER), as a sockaddr_in or
// sockaddr_in6.
//
// An ICMP error is easy to forge: the kernel matches it to the socket by the
// quoted UDP header alone, so anyone who can reach siplb and guesses a
// backend's address and port can make one. siplb therefore treats a
// verified one only as a hint (balance.Checker.Unreachable probes the
// backend; only the probes mark it down), and passes on only:
//   - ICMP errors, not local ones (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6);
//   - whose offender is the backend itself: a closed port is reported by
//     the host that has it; an error sent by any other address (a spoofer,
//     or a router's host or network unreachable) is ignored and counted as
//     ICMPIgnored (the probes find a backend that really cannot be reached);
//   - of destination unreachable, with a code that says the destination
//     is not there (port, host, network unreachable, administratively
//     prohibited); the rest (time exceeded, fragmentation needed, source
//     route failed, ...) are counted as ICMPOther.

// ICMP destination unreachable (RFC 792, RFC 1812 §5.2.7.1) and ICMPv6
// destination unreachable (RFC 4443 §3.1), with the codes siplb acts on.
const (
	icmpDestUnreach       = 3
	icmpNetUnreach        = 0
	icmpHostUnreach       = 1
	icmpPortUnreach       = 3
	icmpNetUnknown        = 6
	icmpHostUnknown       = 7
	icmpNetProhibited     = 9
	icmpHostProhibited    = 10
	icmpCommProhibited    = 13
	icmp6DestUnreach      = 1
	icmp6NoRoute          = 0
	icmp6AdminProhibited  = 1
	icmp6AddrUnreach      = 3
	icmp6PortUnreach      = 4
	icmp6RejectRoute      = 6
	sizeofSockExtendedErr = 16 // struct sock_extended_err
)

// recvErr is what the control message of one queued error says.
type recvErr struct {
	origin   uint8 // SO_EE_ORIGIN_*
	typ      uint8 // ICMP or ICMPv6 type
	code     uint8
	offender netip.Addr // unmapped; invalid if the message names none
}

// icmpVerdict is what drainErrors does with a queued error.
type icmpVerdict uint8

const (
	icmpPass    icmpVerdict = iota // a hint for the health checks
	icmpForeign                    // the offender is not the destination: ignored, counted as ICMPIgnored
	icmpOther                      // not an ICMP destination unreachable siplb acts on: counted as ICMPOther
)

// parseRecvErr finds the IP_RECVERR or IPV6_RECVERR control message in oob,
// the control bytes of one MSG_ERRQUEUE read, and decodes it. It reports
// false when there is none or it is too short for a sock_extended_err; a
// message too short for its offender yields an invalid offender. It never
// panics on any input and does not allocate.
func parseRecvErr(oob []byte) (recvErr, bool) {
	const hdr = unix.SizeofCmsghdr
	for off := 0; len(oob)-off >= hdr; {
		h := oob[off : off+hdr]
		var n uint64
		if hdr == 16 { // cmsg_len is a size_t
			n = binary.NativeEndian.Uint64(h)
		} else {
			n = uint64(binary.NativeEndian.Uint32(h))
		}
		level := int32(binary.NativeEndian.Uint32(h[hdr-8:]))
		typ := int32(binary.NativeEndian.Uint32(h[hdr-4:]))
		if n < hdr || n > uint64(len(oob)-off) {
			return recvErr{}, false
		}
		data := oob[off+hdr : off+int(n)]
		if level == unix.SOL_IP && typ == unix.IP_RECVERR || level == unix.SOL_IPV6 && typ == unix.IPV6_RECVERR {
			return decodeExtendedErr(data)
		}
		off += cmsgAlign(int(n))
	}
	return recvErr{}, false
}

// decodeExtendedErr decodes a struct sock_extended_err and the offender
// after it.
func decodeExtendedErr(d []byte) (recvErr, bool) {
	if len(d) < sizeofSockExtendedErr {
		return recvErr{}, false
	}
	e := recvErr{origin: d[4], typ: d[5], code: d[6]}
	sa := d[sizeofSockExtendedErr:]
	if len(sa) < 2 {
		return e, true
	}
	switch binary.NativeEndian.Uint16(sa) {
	case unix.AF_INET:
		if len(sa) >= 8 { // family, port, address
			e.offender = netip.AddrFrom4([4]byte(sa[4:8]))
		}
	case unix.AF_INET6:
		if len(sa) >= 24 { // family, port, flow info, address
			e.offender = netip.AddrFrom16([16]byte(sa[8:24])).Unmap()
		}
	}
	return e, true
}

// cmsgAlign rounds n up to the alignment of control messages (CMSG_ALIGN).
func cmsgAlign(n int) int {
	a := unix.CmsgSpace(1) - unix.CmsgSpace(0)
	return (n + a - 1) &^ (a - 1)
}

// classifyICMP says what to do with queued error e for a datagram sent to
// dst, and for icmpPass the hint to give.
func classifyICMP(e recvErr, dst netip.Addr) (balance.Hint, icmpVerdict) {
	var h balance.Hint
	switch e.origin {
	case unix.SO_EE_ORIGIN_ICMP:
		if e.typ != icmpDestUnreach {
			return 0, icmpOther
		}
		switch e.code {
		case icmpPortUnreach:
			h = balance.HintPortUnreachable
		case icmpHostUnreach, icmpHostUnknown:
			h = balance.HintHostUnreachable
		case icmpNetUnreach, icmpNetUnknown:
			h = balance.HintNetUnreachable
		case icmpNetProhibited, icmpHostProhibited, icmpCommProhibited:
			h = balance.HintProhibited
		}
	case unix.SO_EE_ORIGIN_ICMP6:
		if e.typ != icmp6DestUnreach {
			return 0, icmpOther
		}
		switch e.code {
		case icmp6PortUnreach:
			h = balance.HintPortUnreachable
		case icmp6AddrUnreach:
			h = balance.HintHostUnreachable
		case icmp6NoRoute, icmp6RejectRoute:
			h = balance.HintNetUnreachable
		case icmp6AdminProhibited:
			h = balance.HintProhibited
		}
	}
	if h == 0 {
		return 0, icmpOther
	}
	if !e.offender.IsValid() || e.offender != dst.Unmap() {
		return 0, icmpForeign
	}
	return h, icmpPass
}
