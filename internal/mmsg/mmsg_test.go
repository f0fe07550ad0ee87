//go:build linux

package mmsg

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
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
// headers are sendmmsg headers for msgs, each addressed to to.
func headers(msgs [][]byte, to netip.AddrPort) []unix.Mmsghdr {
	out := make([]unix.Mmsghdr, len(msgs))
	iov := make([]unix.Iovec, len(msgs))
	addr := make([]unix.RawSockaddrInet6, len(msgs))
	for i, m := range msgs {
		iov[i].Base = &m[0]
		iov[i].SetLen(len(m))
		out[i].Hdr.Iov = &iov[i]
		out[i].Hdr.SetIovlen(1)
		out[i].Hdr.Name = (*byte)(unsafe.Pointer(&addr[i]))
		out[i].Hdr.Namelen = PutAddrPort(to, &addr[i])
	}
	return out
}

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
	out := headers(msgs, to)
	rc, _ := tx.SyscallConn()
	var n int
	var e error
	rc.Write(func(fd uintptr) bool { n, e = sendAll(fd, out); return true })
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

func TestSockaddr(t *testing.T) {
	var sa4 unix.SockaddrInet4
	var sa6 unix.SockaddrInet6
	for _, tc := range []struct {
		in   string
		want unix.Sockaddr
	}{
		{"127.0.0.1:5060", &unix.SockaddrInet4{Port: 5060, Addr: [4]byte{127, 0, 0, 1}}},
		{"[::ffff:10.0.0.1]:5070", &unix.SockaddrInet4{Port: 5070, Addr: [4]byte{10, 0, 0, 1}}},
		{"[2001:db8::1]:5061", &unix.SockaddrInet6{Port: 5061, Addr: netip.MustParseAddr("2001:db8::1").As16()}},
	} {
		got := Sockaddr(netip.MustParseAddrPort(tc.in), &sa4, &sa6)
		switch w := tc.want.(type) {
		case *unix.SockaddrInet4:
			if g, ok := got.(*unix.SockaddrInet4); !ok || g != &sa4 || *g != *w {
				t.Errorf("Sockaddr(%s) = %#v, want %#v in the caller's storage", tc.in, got, w)
			}
		case *unix.SockaddrInet6:
			if g, ok := got.(*unix.SockaddrInet6); !ok || g != &sa6 || g.Port != w.Port || g.Addr != w.Addr {
				t.Errorf("Sockaddr(%s) = %#v, want %#v in the caller's storage", tc.in, got, w)
			}
		}
	}
	ap := netip.MustParseAddrPort("[::1]:5060")
	if n := testing.AllocsPerRun(100, func() { Sockaddr(ap, &sa4, &sa6) }); n != 0 {
		t.Errorf("Sockaddr: %v allocations, want 0", n)
	}
}

// An ICMP error queued by an earlier datagram (IP_RECVERR) fails the next
// sendmmsg: SendAll asks refused, which reads the queue, and sends again;
// both datagrams arrive.
func TestSendAllRetriesRefused(t *testing.T) {
	rx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	closed, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.LocalAddr().(*net.UDPAddr).AddrPort()
	closed.Close()
	tx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	rc, _ := tx.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1) })
	if _, err := tx.WriteToUDPAddrPort([]byte("x"), dead); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the port unreachable comes back
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	msgs := [][]byte{[]byte("one"), []byte("two")}
	out := headers(msgs, to)
	var errs []syscall.Errno
	sent := 0
	rc.Write(func(fd uintptr) bool {
		return SendAll(fd, out, &sent, func(e syscall.Errno) bool {
			errs = append(errs, e)
			var oob [128]byte
			var name unix.RawSockaddrInet6
			msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&name)), Namelen: unix.SizeofSockaddrInet6, Control: &oob[0]}
			msg.SetControllen(len(oob))
			unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			return len(errs) < 4
		})
	})
	if sent != 2 || len(errs) != 1 || errs[0] != unix.ECONNREFUSED {
		t.Fatalf("sent %d, refused %v; want 2 sent after one ECONNREFUSED", sent, errs)
	}
	rx.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	for _, want := range msgs {
		n, _, err := rx.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != string(want) {
			t.Fatalf("received %q, %v; want %q", buf[:n], err, want)
		}
	}
}
