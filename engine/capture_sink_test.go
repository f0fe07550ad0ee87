package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hepSinkEnv, when set to "udp" or "tcp", makes the test binary run
// hepSinkChild instead of the tests (TestMain).
const hepSinkEnv = "SIPLB_TEST_HEP_SINK"

// hepSinkChild is a HEP collector in a process of its own, so that what it
// spends is not the benchmark's: it listens on 127.0.0.1 (UDP or TCP, as
// transport says), prints "ADDR ip:port", reads and discards until its
// standard input closes, then prints "READS n" and exits 0.
func hepSinkChild(transport string) int {
	var reads atomic.Int64
	var closeFn func()
	var addr string
	switch transport {
	case "udp":
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			fmt.Println("BAD", err)
			return 2
		}
		c.SetReadBuffer(8 << 20)
		addr, closeFn = c.LocalAddr().String(), func() { c.Close() }
		go func() {
			buf := make([]byte, 1<<16)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
				reads.Add(1)
			}
		}()
	case "tcp":
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			fmt.Println("BAD", err)
			return 2
		}
		addr, closeFn = ln.Addr().String(), func() { ln.Close() }
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					buf := make([]byte, 1<<16)
					for {
						if _, err := c.Read(buf); err != nil {
							c.Close()
							return
						}
						reads.Add(1) // one connection at a time: the Sender's
					}
				}()
			}
		}()
	default:
		fmt.Println("BAD transport", transport)
		return 2
	}
	fmt.Println("ADDR", addr)
	io.Copy(io.Discard, os.Stdin)
	closeFn()
	fmt.Println("READS", reads.Load())
	return 0
}

// sinkProcess is a running hepSinkChild.
type sinkProcess struct {
	addr string
	cmd  *exec.Cmd
}

// startSinkProcess runs hepSinkChild in a child of the test binary until
// the benchmark ends.
func startSinkProcess(tb testing.TB, transport string) *sinkProcess {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), hepSinkEnv+"="+transport)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &sinkProcess{cmd: cmd}
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	a, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		tb.Fatalf("HEP sink child: %q, %v", line, err)
	}
	p.addr = a
	return p
}

// cpuNs returns the child's CPU time so far, from /proc (in clock ticks of
// 10 ms: a coarse figure, for runs of seconds).
func (p *sinkProcess) cpuNs() int64 {
	if p == nil {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // from field 3, the state
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14, utime
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15, stime
	return (ut + st) * int64(10*time.Millisecond)
}
