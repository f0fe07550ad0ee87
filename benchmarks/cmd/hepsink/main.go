// Command hepsink is a HEP collector for benchmarks: it reads HEPv3 frames
// on one UDP socket and on TCP connections to the same address, counts them
// and throws them away, so that `make
// bench` can run siplb with capture.hep on (target siplb_capture) against
// something that takes the frames as a collector would.
//
// Usage:
//
//	hepsink -listen 127.0.0.1:9060
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
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9060", "UDP `address` to read frames on")
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
	var frames, bytes, bad atomic.Uint64
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := c.Read(buf) // not ReadFrom: no address allocated per frame
			if err != nil {
				return
			}
			if n < 6 || string(buf[:4]) != "HEP3" || int(binary.BigEndian.Uint16(buf[4:6])) != n {
				bad.Add(1)
				continue
			}
			frames.Add(1)
			bytes.Add(uint64(n))
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
