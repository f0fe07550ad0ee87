package engine

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
)

// cmsg builds one control message as the kernel lays it out: a cmsghdr,
// data, padding to the alignment.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	n := unix.CmsgLen(len(data))
	if unix.SizeofCmsghdr == 16 {
		binary.NativeEndian.PutUint64(b, uint64(n))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(n))
	}
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr-8:], uint32(level))
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr-4:], uint32(typ))
	copy(b[unix.SizeofCmsghdr:], data)
	return b
}

// extErr builds a struct sock_extended_err followed by the offender's
// sockaddr_in (an IPv4 address) or sockaddr_in6; an invalid offender
// leaves it out.
func extErr(errno uint32, origin, typ, code uint8, offender netip.Addr) []byte {
	b := make([]byte, sizeofSockExtendedErr, sizeofSockExtendedErr+unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint32(b, errno)
	b[4], b[5], b[6] = origin, typ, code
	switch {
	case !offender.IsValid():
	case offender.Is4():
		sa := make([]byte, unix.SizeofSockaddrInet4)
		binary.NativeEndian.PutUint16(sa, unix.AF_INET)
		a := offender.As4()
		copy(sa[4:], a[:])
		b = append(b, sa...)
	default:
		sa := make([]byte, unix.SizeofSockaddrInet6)
		binary.NativeEndian.PutUint16(sa, unix.AF_INET6)
		a := offender.As16()
		copy(sa[8:], a[:])
		b = append(b, sa...)
	}
	return b
}

var (
	backend4 = netip.MustParseAddr("127.0.0.1")
	forger4  = netip.MustParseAddr("127.0.0.50")
	backend6 = netip.MustParseAddr("::1")
	forger6  = netip.MustParseAddr("fd00::50")
)

func TestParseRecvErr(t *testing.T) {
	ttl := cmsg(unix.SOL_IP, unix.IP_TTL, []byte{64, 0, 0, 0})
	v4 := cmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(uint32(unix.ECONNREFUSED), unix.SO_EE_ORIGIN_ICMP, 3, 3, backend4))
	tests := []struct {
		name   string
		oob    []byte
		want   recvErr
		wantOK bool
	}{
		{name: "v4 port unreachable", oob: v4,
			want: recvErr{origin: unix.SO_EE_ORIGIN_ICMP, typ: 3, code: 3, offender: backend4}, wantOK: true},
		{name: "v6 port unreachable",
			oob:  cmsg(unix.SOL_IPV6, unix.IPV6_RECVERR, extErr(uint32(unix.ECONNREFUSED), unix.SO_EE_ORIGIN_ICMP6, 1, 4, backend6)),
			want: recvErr{origin: unix.SO_EE_ORIGIN_ICMP6, typ: 1, code: 4, offender: backend6}, wantOK: true},
		{name: "v4 error on a dual-stack socket: mapped offender",
			oob:  cmsg(unix.SOL_IPV6, unix.IPV6_RECVERR, extErr(uint32(unix.ECONNREFUSED), unix.SO_EE_ORIGIN_ICMP, 3, 3, netip.AddrFrom16(forger4.As16()))),
			want: recvErr{origin: unix.SO_EE_ORIGIN_ICMP, typ: 3, code: 3, offender: forger4}, wantOK: true},
		{name: "after another control message", oob: append(append([]byte{}, ttl...), v4...),
			want: recvErr{origin: unix.SO_EE_ORIGIN_ICMP, typ: 3, code: 3, offender: backend4}, wantOK: true},
		{name: "no offender",
			oob:  cmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(uint32(unix.EMSGSIZE), unix.SO_EE_ORIGIN_LOCAL, 0, 0, netip.Addr{})),
			want: recvErr{origin: unix.SO_EE_ORIGIN_LOCAL}, wantOK: true},
		{name: "offender cut short",
			oob:  cmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(0, unix.SO_EE_ORIGIN_ICMP, 3, 3, backend4)[:sizeofSockExtendedErr+6]),
			want: recvErr{origin: unix.SO_EE_ORIGIN_ICMP, typ: 3, code: 3}, wantOK: true},
		{name: "unknown offender family",
			oob:  cmsg(unix.SOL_IP, unix.IP_RECVERR, append(extErr(0, unix.SO_EE_ORIGIN_ICMP, 3, 3, netip.Addr{}), 0xff, 0xff, 1, 2, 3, 4, 5, 6)),
			want: recvErr{origin: unix.SO_EE_ORIGIN_ICMP, typ: 3, code: 3}, wantOK: true},
		{name: "empty", oob: nil},
		{name: "other control message only", oob: ttl},
		{name: "extended error too short", oob: cmsg(unix.SOL_IP, unix.IP_RECVERR, make([]byte, sizeofSockExtendedErr-1))},
		{name: "right type, wrong level", oob: cmsg(unix.SOL_IPV6, unix.IP_RECVERR, extErr(0, unix.SO_EE_ORIGIN_ICMP, 3, 3, backend4))},
		{name: "length beyond the buffer", oob: v4[:len(v4)-1]},
		{name: "length below the header", oob: func() []byte {
			b := append([]byte{}, v4...)
			b[0], b[1], b[2], b[3] = 3, 0, 0, 0
			return b
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRecvErr(tc.oob)
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("parseRecvErr(% x) = %+v, %v; want %+v, %v", tc.oob, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// Every prefix of valid control bytes, and random bytes of every length up
// to a few messages, parse without a panic; a result always names an
// address of the right family or none.
func TestParseRecvErrGarbage(t *testing.T) {
	valid := [][]byte{
		cmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(111, unix.SO_EE_ORIGIN_ICMP, 3, 3, backend4)),
		cmsg(unix.SOL_IPV6, unix.IPV6_RECVERR, extErr(111, unix.SO_EE_ORIGIN_ICMP6, 1, 4, backend6)),
		append(cmsg(unix.SOL_IP, unix.IP_TTL, []byte{1, 2, 3, 4}), cmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(0, 2, 3, 3, backend4))...),
	}
	for _, v := range valid {
		for n := range len(v) + 1 {
			parseRecvErr(v[:n])
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4*unix.CmsgSpace(sizeofSockExtendedErr+unix.SizeofSockaddrInet6))
	for i := range 20000 {
		b := buf[:r.IntN(len(buf)+1)]
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if i%2 == 0 && len(b) >= unix.SizeofCmsghdr {
			// A plausible header, so the random data behind it is decoded.
			copy(b, cmsg(unix.SOL_IP, unix.IP_RECVERR, nil)[:unix.SizeofCmsghdr])
			l := uint64(r.IntN(len(b) + 8))
			if unix.SizeofCmsghdr == 16 {
				binary.NativeEndian.PutUint64(b, l)
			} else {
				binary.NativeEndian.PutUint32(b, uint32(l))
			}
		}
		if e, ok := parseRecvErr(b); ok && e.offender.IsValid() && !e.offender.Is4() && !e.offender.Is6() {
			t.Fatalf("parseRecvErr(% x): offender %v", b, e.offender)
		}
	}
}

func TestClassifyICMP(t *testing.T) {
	const icmp, icmp6, local = unix.SO_EE_ORIGIN_ICMP, unix.SO_EE_ORIGIN_ICMP6, unix.SO_EE_ORIGIN_LOCAL
	tests := []struct {
		name        string
		e           recvErr
		dst         netip.Addr
		wantHint    balance.Hint
		wantVerdict icmpVerdict
	}{
		{name: "port unreachable from the backend", e: recvErr{origin: icmp, typ: 3, code: 3, offender: backend4}, dst: backend4,
			wantHint: balance.HintPortUnreachable, wantVerdict: icmpPass},
		{name: "port unreachable forged from another address", e: recvErr{origin: icmp, typ: 3, code: 3, offender: forger4}, dst: backend4,
			wantVerdict: icmpForeign},
		{name: "no offender", e: recvErr{origin: icmp, typ: 3, code: 3}, dst: backend4, wantVerdict: icmpForeign},
		{name: "mapped destination", e: recvErr{origin: icmp, typ: 3, code: 3, offender: backend4},
			dst: netip.AddrFrom16(backend4.As16()), wantHint: balance.HintPortUnreachable, wantVerdict: icmpPass},
		{name: "host unreachable", e: recvErr{origin: icmp, typ: 3, code: 1, offender: backend4}, dst: backend4,
			wantHint: balance.HintHostUnreachable, wantVerdict: icmpPass},
		{name: "host unreachable from a router", e: recvErr{origin: icmp, typ: 3, code: 1, offender: forger4}, dst: backend4,
			wantVerdict: icmpForeign},
		{name: "net unreachable", e: recvErr{origin: icmp, typ: 3, code: 0, offender: backend4}, dst: backend4,
			wantHint: balance.HintNetUnreachable, wantVerdict: icmpPass},
		{name: "admin prohibited", e: recvErr{origin: icmp, typ: 3, code: 13, offender: backend4}, dst: backend4,
			wantHint: balance.HintProhibited, wantVerdict: icmpPass},
		{name: "fragmentation needed", e: recvErr{origin: icmp, typ: 3, code: 4, offender: backend4}, dst: backend4,
			wantVerdict: icmpOther},
		{name: "time exceeded", e: recvErr{origin: icmp, typ: 11, code: 0, offender: backend4}, dst: backend4,
			wantVerdict: icmpOther},
		{name: "local error", e: recvErr{origin: local, offender: backend4}, dst: backend4, wantVerdict: icmpOther},
		{name: "v6 port unreachable", e: recvErr{origin: icmp6, typ: 1, code: 4, offender: backend6}, dst: backend6,
			wantHint: balance.HintPortUnreachable, wantVerdict: icmpPass},
		{name: "v6 forged", e: recvErr{origin: icmp6, typ: 1, code: 4, offender: forger6}, dst: backend6,
			wantVerdict: icmpForeign},
		{name: "v6 address unreachable", e: recvErr{origin: icmp6, typ: 1, code: 3, offender: backend6}, dst: backend6,
			wantHint: balance.HintHostUnreachable, wantVerdict: icmpPass},
		{name: "v6 no route", e: recvErr{origin: icmp6, typ: 1, code: 0, offender: backend6}, dst: backend6,
			wantHint: balance.HintNetUnreachable, wantVerdict: icmpPass},
		{name: "v6 admin prohibited", e: recvErr{origin: icmp6, typ: 1, code: 1, offender: backend6}, dst: backend6,
			wantHint: balance.HintProhibited, wantVerdict: icmpPass},
		{name: "v6 packet too big", e: recvErr{origin: icmp6, typ: 2, code: 0, offender: backend6}, dst: backend6,
			wantVerdict: icmpOther},
		{name: "v6 beyond scope", e: recvErr{origin: icmp6, typ: 1, code: 2, offender: backend6}, dst: backend6,
			wantVerdict: icmpOther},
		{name: "v4 types read as v6", e: recvErr{origin: icmp6, typ: 3, code: 3, offender: backend6}, dst: backend6,
			wantVerdict: icmpOther},
		{name: "nothing parsed", e: recvErr{}, dst: backend4, wantVerdict: icmpOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, v := classifyICMP(tc.e, tc.dst)
			if h != tc.wantHint || v != tc.wantVerdict {
				t.Errorf("classifyICMP(%+v, %v) = %v, %d; want %v, %d", tc.e, tc.dst, h, v, tc.wantHint, tc.wantVerdict)
			}
		})
	}
}
