// Command hepsink is a HEP collector for benchmarks: it reads HEPv3 frames
// on one UDP socket and on TCP connections to the same address, counts them
// and throws them away, so that `make
// bench` can run siplb with capture.hep on (target siplb_capture) against
// something that takes the frames as a collector would.
//
// Usage:
//
//	hepsink -listen 127.0.0.1:9060 [-gro]
//
// With -gro the UDP socket takes the kernel's UDP GRO (UDP_GRO): a GSO
// entry that a sender sent over loopback reaches the socket whole, and
// hepsink cuts it at the segment size the kernel reports, instead of the
// kernel cutting it into a datagram each in the sender's context. Without
// it the sender pays a collector's receive path per frame, as a collector
// such as heplify-server (which does not ask for GRO) on the same host
// makes it pay; with it, about what a collector on another host costs it
// (the NIC, or the kernel below the stack, cuts the entry).
//
// On SIGINT or SIGTERM it writes what it got to stdout and exits 0:
// "hepsink: frames N bytes B bad K", where a bad datagram is one that is not
// a whole HEPv3 frame ("HEP3" and a total length equal to its size), and a
// TCP stream that stops being a sequence of frames counts once as bad and is
// closed.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9060", "UDP `address` to read frames on")
	gro := flag.Bool("gro", false, "take GSO entries whole on the UDP socket (UDP_GRO) and cut them here")
	flag.Parse()
	ua, err := net.ResolveUDPAddr("udp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hepsink:", err)
		os.Exit(1)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hepsink:", err)
		os.Exit(1)
	}
	c.SetReadBuffer(8 << 20)
	if *gro {
		if err := setGRO(c); err != nil {
			fmt.Fprintln(os.Stderr, "hepsink: -gro:", err)
			os.Exit(1)
		}
	}
	var frames, bytes, bad atomic.Uint64
	count := func(d []byte) {
		if len(d) < 6 || string(d[:4]) != "HEP3" || int(binary.BigEndian.Uint16(d[4:6])) != len(d) {
			bad.Add(1)
			return
		}
		frames.Add(1)
		bytes.Add(uint64(len(d)))
	}
	go func() {
		buf := make([]byte, 1<<16)
		oob := make([]byte, 64)
		for {
			// not ReadFrom: no address allocated per frame
			n, oobn, _, _, err := c.ReadMsgUDPAddrPort(buf, oob)
			if err != nil {
				return
			}
			seg := groSize(oob[:oobn])
			if seg <= 0 {
				seg = n
			}
			for d := buf[:n]; len(d) > 0; d = d[min(seg, len(d)):] {
				count(d[:min(seg, len(d))])
			}
		}
	}()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hepsink:", err)
		os.Exit(1)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReaderSize(conn, 1<<16)
				buf := make([]byte, 1<<16)
				for {
					if _, err := io.ReadFull(r, buf[:6]); err != nil {
						return
					}
					n := int(binary.BigEndian.Uint16(buf[4:6]))
					if string(buf[:4]) != "HEP3" || n < 6 {
						bad.Add(1)
						return
					}
					if _, err := io.ReadFull(r, buf[6:n]); err != nil {
						return
					}
					frames.Add(1)
					bytes.Add(uint64(n))
				}
			}()
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	c.Close()
	ln.Close()
	fmt.Printf("hepsink: frames %d bytes %d bad %d\n", frames.Load(), bytes.Load(), bad.Load())
}

func setGRO(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) }); err != nil {
		return err
	}
	return serr
}

// groSize is the segment size of a UDP_GRO control message in oob, 0 when
// there is none (a datagram that came alone).
func groSize(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_UDP && m.Header.Type == unix.UDP_GRO && len(m.Data) >= 4 {
			return int(*(*int32)(unsafe.Pointer(&m.Data[0]))) // the kernel writes an int
		}
	}
	return 0
}
