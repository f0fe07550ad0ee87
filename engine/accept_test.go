package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
)

// fdHelperEnv, when set to "BACKEND NOFILE", makes the test binary run
// fdHelper instead of the tests: a Server with a TCP and a UDP leg in
// front of the UDP backend BACKEND, under a soft RLIMIT_NOFILE of NOFILE.
const fdHelperEnv = "SIPLB_TEST_FD_HELPER"

func TestMain(m *testing.M) {
	if v := os.Getenv(fdHelperEnv); v != "" {
		os.Exit(fdHelper(v))
	}
	if v := os.Getenv(tlsClientsEnv); v != "" {
		os.Exit(tlsClients(v))
	}
	if v := os.Getenv(hepSinkEnv); v != "" {
		os.Exit(hepSinkChild(v)) // capture_sink_test.go
	}
	os.Exit(m.Run())
}

// fdHelper serves until its standard input closes. It prints "READY udp
// tcp" once serving, "STATS accept_errors conns" every 100 ms, and "RUN
// RETURNED err" if the server stops by itself, exiting 0 then as siplb's
// main does.
func fdHelper(arg string) int {
	be, nf, _ := strings.Cut(arg, " ")
	backend := netip.MustParseAddrPort(be)
	nofile, err := strconv.ParseUint(nf, 10, 64)
	if err != nil {
		fmt.Println("BAD", err)
		return 2
	}
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: backend}}}})
	if err != nil {
		fmt.Println("BAD", err)
		return 2
	}
	legs := []LegConfig{{Transport: balance.TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := ResolvePorts(legs); err != nil {
		fmt.Println("BAD", err)
		return 2
	}
	legs = append(legs, LegConfig{Transport: balance.UDP, Addr: legs[0].Addr})
	f, err := NewForwarder(Config{Legs: legs}, bal)
	if err != nil {
		fmt.Println("BAD", err)
		return 2
	}
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	rl.Cur = nofile
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Println("BAD", err)
		return 2
	}
	srv := NewServerWith(f, Options{Loops: 2, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		fmt.Println("RUN RETURNED", err)
		return 0
	}
	fmt.Println("READY", legs[1].Addr, legs[0].Addr)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			if ctx.Err() != nil {
				fmt.Println("EXIT")
				return 0
			}
			fmt.Println("RUN RETURNED", err)
			return 0
		case <-tick.C:
			st := srv.Stats()
			fmt.Println("STATS", st.AcceptErrors, st.Conns)
		}
	}
}

// helperProc is a running fdHelper.
type helperProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	stderr bytes.Buffer

	mu       sync.Mutex
	lines    []string
	udp, tcp netip.AddrPort
	ready    chan struct{}
	acceptEr uint64
}

func startFDHelper(t *testing.T, backend netip.AddrPort, nofile int) *helperProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", fdHelperEnv, backend, nofile))
	h := &helperProc{cmd: cmd, exited: make(chan struct{}), ready: make(chan struct{})}
	cmd.Stderr = &lockedWriter{w: &h.stderr, mu: &h.mu}
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.line(sc.Text())
		}
		cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		h.stdin.Close()
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("helper %d did not stop; killing it", cmd.Process.Pid)
			cmd.Process.Kill()
			<-h.exited
		}
		if t.Failed() {
			h.mu.Lock()
			t.Logf("helper stderr (last 2000 bytes): %s", tail(h.stderr.Bytes(), 2000))
			h.mu.Unlock()
		}
	})
	select {
	case <-h.ready:
	case <-h.exited:
		t.Fatalf("helper exited before serving: %v", h.output())
	case <-time.After(20 * time.Second):
		t.Fatal("helper not ready")
	}
	return h
}

func (h *helperProc) line(l string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := strings.Fields(l)
	switch {
	case len(f) == 3 && f[0] == "READY":
		h.udp = netip.MustParseAddrPort(f[1])
		h.tcp = netip.MustParseAddrPort(f[2])
		close(h.ready)
	case len(f) == 3 && f[0] == "STATS":
		h.acceptEr, _ = strconv.ParseUint(f[1], 10, 64)
	default:
		h.lines = append(h.lines, l)
	}
}

func (h *helperProc) output() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.lines...)
}

func (h *helperProc) acceptErrors() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.acceptEr
}

func (h *helperProc) alive() bool {
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func tail(b []byte, n int) []byte { return b[max(0, len(b)-n):] }

func udpOptions(local, callID string, cseq int) []byte {
	return sip("OPTIONS sip:service@example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+local+";branch=z9hG4bK-"+callID+strconv.Itoa(cseq)+";rport",
		"Max-Forwards: 70", "From: <sip:a@example.com>;tag=f", "To: <sip:service@example.com>",
		"Call-ID: "+callID, fmt.Sprintf("CSeq: %d OPTIONS", cseq), "Content-Length: 0")
}

// tcpTransact sends an OPTIONS on a new TCP connection to lb and reports
// whether its 200 came back within d.
func tcpTransact(lb netip.AddrPort, callID string, d time.Duration) bool {
	c, err := net.DialTimeout("tcp4", lb.String(), d)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write(optionsReq(c.LocalAddr().String(), callID, 1)); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SIP/2.0 200 ")
}

// A peer that opens TCP connections until siplb runs out of descriptors
// must not stop it: under a soft RLIMIT_NOFILE of 64, 300 connections are
// opened and held; the process stays up, UDP is served throughout, accept
// errors are counted, and once the flood's connections close a new TCP
// client is served. (gnet's own acceptor ends its event loop, and the
// engine with it, on EMFILE.)
func TestFDExhaustionKeepsServing(t *testing.T) {
	uas := startUAS(t)
	h := startFDHelper(t, uas.addr, 64)
	uac := newUAC(t, h.udp)
	if _, err := uac.transact(udpOptions(uac.local(), "fd-before", 1)); err != nil {
		t.Fatalf("UDP before the flood: %v", err)
	}
	if !tcpTransact(h.tcp, "fd-tcp-before", 5*time.Second) {
		t.Fatal("TCP before the flood: no 200")
	}

	const flood = 300
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range flood {
		c, err := net.DialTimeout("tcp4", h.tcp.String(), time.Second)
		if err != nil {
			continue // the backlog is full, or the connection was shed
		}
		held = append(held, c)
		if i%50 == 49 {
			// Served throughout: a UDP transaction in the middle of the flood.
			if _, err := uac.transact(udpOptions(uac.local(), "fd-during", i)); err != nil {
				t.Errorf("UDP after %d connects: %v", i+1, err)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.acceptErrors() == 0 && h.alive() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !h.alive() {
		t.Fatalf("siplb stopped under the flood: %v", h.output())
	}
	if h.acceptErrors() == 0 {
		t.Errorf("no accept errors counted after %d connects under a limit of 64 descriptors", len(held))
	}
	for i := range 3 {
		if _, err := uac.transact(udpOptions(uac.local(), "fd-full", i+1)); err != nil {
			t.Errorf("UDP with descriptors exhausted: %v", err)
		}
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	served := false
	for try := 0; try < 20 && !served; try++ {
		served = tcpTransact(h.tcp, "fd-after", 2*time.Second)
		if !served {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !served {
		t.Errorf("no TCP client served after the flood closed")
	}
	if !h.alive() {
		t.Fatalf("siplb stopped: %v", h.output())
	}
	t.Logf("accept errors counted: %d", h.acceptErrors())
}

// logCounter counts the records whose message starts with each prefix.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.n[r.Message]++
	l.mu.Unlock()
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

// startHookedLB runs a Server with a TCP and a UDP leg in front of a UDP
// backend, whose accept loops take fail's error, when non-nil, in place of
// accepting.
func startHookedLB(t *testing.T, fail func() error) (udp, tcp netip.AddrPort, srv *Server, logs *logCounter) {
	t.Helper()
	uas := startUAS(t)
	logs = &logCounter{n: map[string]int{}}
	udp, tcp, srv = newMixedLB(t, Options{Loops: 2, Log: slog.New(logs)}, balance.BackendConfig{Addr: uas.addr})
	srv.acceptFail = fail
	runServerT(t, srv)
	return udp, tcp, srv, logs
}

func acceptErr(e unix.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)}
}

// Accept errors that persist back the listener off; the loops keep serving
// UDP, the errors are counted and logged once for the burst, and the client
// that waited in the backlog is served when accepting works again.
func TestAcceptErrorsBackOff(t *testing.T) {
	for _, e := range []unix.Errno{unix.ENOBUFS, unix.ENOMEM, unix.ECONNABORTED} {
		t.Run(e.Error(), func(t *testing.T) {
			var failing atomic.Bool
			failing.Store(true)
			udp, tcp, srv, logs := startHookedLB(t, func() error {
				if failing.Load() {
					return acceptErr(e)
				}
				return nil
			})
			c := dialTCP(t, tcp) // waits in the backlog
			c.Write(optionsReq(c.LocalAddr().String(), "backoff", 1))
			uac := newUAC(t, udp)
			for i := range 3 {
				if _, err := uac.transact(udpOptions(uac.local(), "backoff-udp", i+1)); err != nil {
					t.Fatalf("UDP while accept fails: %v", err)
				}
			}
			if got := readResponses(t, c, 1, 300*time.Millisecond); len(got) != 0 {
				t.Fatalf("a connection was served while accept failed: %q", got)
			}
			n := srv.Stats().AcceptErrors
			if n < 2 {
				t.Fatalf("AcceptErrors = %d while accept failed for a while", n)
			}
			// 5, 10, 20, 40, 80, 160, 320 ms ...: a few tries, not a spin.
			if n > 20 {
				t.Errorf("AcceptErrors = %d in about half a second: no backoff", n)
			}
			failing.Store(false)
			got := readResponses(t, c, 1, 5*time.Second)
			if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 ")) {
				t.Fatalf("the waiting client was not served once accept worked: %q", got)
			}
			if !tcpTransact(tcp, "backoff-after", 5*time.Second) {
				t.Errorf("a new client was not served after the burst")
			}
			time.Sleep(acceptQuiet + 100*time.Millisecond) // the burst ends with an accept after a quiet second
			if !tcpTransact(tcp, "backoff-quiet", 5*time.Second) {
				t.Errorf("a new client was not served after a quiet second")
			}
			// Logged by the accept loop once the connection is open, perhaps
			// after its answer has arrived.
			waitFor(2*time.Second, func() bool { return logs.count("accept works again") > 0 })
			if a, b := logs.count("accept failing: backing off while it does"), logs.count("accept works again"); a != 1 || b != 1 {
				t.Errorf("burst logged %d times at its start and %d at its end, want once each", a, b)
			}
		})
	}
}

// With descriptors exhausted (EMFILE), the listener sheds: a client waiting
// in the backlog is accepted with the spare descriptor and closed at once,
// counted as refused, rather than left waiting.
func TestAcceptShedsOnEMFILE(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	_, tcp, srv, _ := startHookedLB(t, func() error {
		if failing.Load() {
			return acceptErr(unix.EMFILE)
		}
		return nil
	})
	// Shed at once: the reset may even beat connect's return.
	c, err := net.DialTimeout("tcp4", tcp.String(), 5*time.Second)
	if err == nil {
		defer c.Close()
		c.Write(optionsReq(c.LocalAddr().String(), "shed", 1))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatal("a client was served while descriptors were exhausted")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the waiting client was neither shed nor served")
	}
	waitFor(2*time.Second, func() bool { return srv.Stats().ConnsRefused > 0 })
	st := srv.Stats()
	if st.ConnsRefused < 1 || st.AcceptErrors < 1 {
		t.Errorf("ConnsRefused = %d, AcceptErrors = %d; want both counted", st.ConnsRefused, st.AcceptErrors)
	}
	failing.Store(false)
	// A shed round still running resets what arrives during it (up to a
	// millisecond, and a backoff may start one more): keep trying, paced,
	// for a few seconds.
	served := false
	for deadline := time.Now().Add(5 * time.Second); !served && time.Now().Before(deadline); {
		if served = tcpTransact(tcp, "shed-after", 2*time.Second); !served {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !served {
		t.Errorf("no client served once descriptors came back")
	}
}
