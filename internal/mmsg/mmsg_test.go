//go:build linux

package mmsg

import (
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestAddrPortRoundTrip(t *testing.T) {
	for _, s := range []string{"127.0.0.1:5060", "[::1]:5061", "10.1.2.3:65535"} {
		ap := netip.MustParseAddrPort(s)
		var sa unix.RawSockaddrInet6
		PutAddrPort(ap, &sa)
		if got, ok := AddrPort(&sa); !ok || got != ap {
			t.Errorf("round trip of %s = %v, %v", s, got, ok)
		}
	}
}

// Two datagrams sent with one Send arrive with one Recv, with their source.
func TestSendRecv(t *testing.T) {
	rx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	msgs := [][]byte{[]byte("one"), []byte("two")}
	var out [2]unix.Mmsghdr
	var iov [2]unix.Iovec
	var addr [2]unix.RawSockaddrInet6
	for i, m := range msgs {
		iov[i].Base = &m[0]
		iov[i].SetLen(len(m))
		out[i].Hdr.Iov = &iov[i]
		out[i].Hdr.SetIovlen(1)
		out[i].Hdr.Name = (*byte)(unsafe.Pointer(&addr[i]))
		out[i].Hdr.Namelen = PutAddrPort(to, &addr[i])
	}
	rc, _ := tx.SyscallConn()
	var n int
	var e error
	rc.Write(func(fd uintptr) bool { n, e = sendAll(fd, out[:]); return true })
	if e != nil || n != 2 {
		t.Fatalf("Send = %d, %v", n, e)
	}
	var in [4]unix.Mmsghdr
	var inIov [4]unix.Iovec
	var from [4]unix.RawSockaddrInet6
	buf := make([]byte, 4*64)
	for i := range in {
		inIov[i].Base = &buf[i*64]
		inIov[i].SetLen(64)
		in[i].Hdr.Iov = &inIov[i]
		in[i].Hdr.SetIovlen(1)
		in[i].Hdr.Name = (*byte)(unsafe.Pointer(&from[i]))
	}
	rrc, _ := rx.SyscallConn()
	got := 0
	rrc.Read(func(fd uintptr) bool {
		k, errno := Recv(fd, in[:])
		if errno == unix.EAGAIN {
			return false
		}
		got += k
		return got >= 2
	})
	if got != 2 || string(buf[:in[0].Len]) != "one" || string(buf[64:64+in[1].Len]) != "two" {
		t.Fatalf("received %d: %q %q", got, buf[:in[0].Len], buf[64:64+in[1].Len])
	}
	src, ok := AddrPort(&from[0])
	if !ok || src != tx.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Errorf("source %v, want %v", src, tx.LocalAddr())
	}
}

func sendAll(fd uintptr, hdrs []unix.Mmsghdr) (int, error) {
	n, e := Send(fd, hdrs)
	if e != 0 {
		return n, e
	}
	return n, nil
}
