package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process-level tests of how siplb starts and stops: the listen address
// locks, the exit status of a stop on an error, the file limit.

// TestMain keeps every siplb these tests start, in-process or as a process
// (they inherit the environment), from keeping its branch secret in
// /var/lib/siplb: $STATE_DIRECTORY points into a temporary directory.
//
// Started with $SIPLB_TEST_NOFILE set (startLimited), the test binary
// runs no test: it sets its file limit and becomes the command its
// arguments name.
func TestMain(m *testing.M) {
	if lim := os.Getenv(nofileEnv); lim != "" {
		execUnderFileLimit(lim, os.Args[1:])
	}
	dir, err := os.MkdirTemp("", "siplb-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("STATE_DIRECTORY", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bufLogger returns a logger writing text into the returned buffer.
func bufLogger() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// proc is a siplb process whose exit status the test reads.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when it has exited; then err is its Wait error
	err  error
}

// startSiplb starts name with args, its output in a buffer; it is stopped
// by its PID (SIGTERM, then SIGKILL after 5 s) when the test ends.
func startSiplb(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return newProc(name, args...).start(t)
}

func newProc(name string, args ...string) *proc {
	p := &proc{cmd: exec.Command(name, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	return p
}

// start starts p and, when the test ends, stops it: TERM, then KILL after
// 5 s.
func (p *proc) start(t *testing.T) *proc {
	t.Helper()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.cmd.Path, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exit waits up to limit for the process to exit and returns its status;
// ok is false if it was still running.
func (p *proc) exit(limit time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
	case <-time.After(limit):
		return 0, false
	}
	if ee, isExit := errors.AsType[*exec.ExitError](p.err); isExit {
		return ee.ExitCode(), true
	}
	if p.err != nil {
		return -1, true
	}
	return 0, true
}

// waitLog waits up to limit for sub in the output.
func (p *proc) waitLog(t *testing.T, sub string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if strings.Contains(p.out.String(), sub) {
			return
		}
		select {
		case <-p.done:
			if strings.Contains(p.out.String(), sub) {
				return
			}
			t.Fatalf("siplb exited (%v) without logging %q:\n%s", p.err, sub, tail([]byte(p.out.String()), 3000))
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("siplb did not log %q within %v:\n%s", sub, limit, tail([]byte(p.out.String()), 3000))
}

// nofileEnv carries "SOFT:HARD" to a test binary started by startLimited.
const nofileEnv = "SIPLB_TEST_NOFILE"

// startLimited starts bin with args under a file limit of soft and hard
// descriptors: the test binary itself is started, and TestMain sets the
// limit and execs bin, which inherits it.
func startLimited(t *testing.T, soft, hard uint64, bin string, args ...string) *proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := newProc(self, append([]string{bin}, args...)...)
	p.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%d", nofileEnv, soft, hard))
	return p.start(t)
}

// execUnderFileLimit sets RLIMIT_NOFILE to lim ("SOFT:HARD") and replaces
// the process with argv; it returns only by exiting on an error.
func execUnderFileLimit(lim string, argv []string) {
	var soft, hard uint64
	if _, err := fmt.Sscanf(lim, "%d:%d", &soft, &hard); err != nil || len(argv) == 0 {
		fmt.Fprintf(os.Stderr, "%s=%q with %q: want SOFT:HARD and a command\n", nofileEnv, lim, argv)
		os.Exit(2)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: soft, Max: hard}); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		os.Exit(2)
	}
	os.Unsetenv(nofileEnv)
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	os.Exit(2)
}

// A second siplb on an address already served refuses to start, naming
// the listener and the first one's pid, and the first goes on serving all
// the traffic. --check takes no lock, so it passes meanwhile.
func TestSecondInstanceRefused(t *testing.T) {
	bin := buildSiplb(t)
	be := startBackend(t, "A")
	lb := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
	args := []string{"--listen", "udp://" + lb.String(), "--backend", be.url(), "--loops", "1"}
	first := startSiplb(t, bin, args...)
	cl := newClient(t, lb)
	waitServing(t, cl)

	check := startSiplb(t, bin, append([]string{"--check"}, args...)...)
	if code, ok := check.exit(10 * time.Second); !ok || code != 0 {
		t.Errorf("--check beside a serving siplb: exit %d (exited %v), want 0:\n%s", code, ok, check.out.String())
	}

	second := startSiplb(t, bin, args...)
	code, ok := second.exit(10 * time.Second)
	if !ok {
		t.Fatalf("second siplb on %s still runs after 10s:\n%s", lb, tail([]byte(second.out.String()), 2000))
	}
	want := fmt.Sprintf("listen[0] udp://%s: already served by siplb pid %d", lb, first.cmd.Process.Pid)
	if code == 0 || !strings.Contains(second.out.String(), want) {
		t.Errorf("second siplb: exit %d, output:\n%s\nwant non-zero and %q", code, second.out.String(), want)
	}

	const n = 20
	before := be.answered()
	for i := range n {
		if _, err := cl.options(fmt.Sprintf("after-second-%d", i), retry{tries: 3, wait: 300 * time.Millisecond}); err != nil {
			t.Errorf("OPTIONS through the first siplb: %v", err)
		}
	}
	if got := be.answered() - before; got < n {
		t.Errorf("backend answered %d OPTIONS through the first siplb, want at least %d", got, n)
	}
	if _, ok := first.exit(0); ok {
		t.Errorf("first siplb exited: %v\n%s", first.err, first.out.String())
	}
}

// A remote kill by descriptor exhaustion: under a file limit of 64 with
// streams.max_connections set far above it, 200 TCP connects exhaust the
// descriptors and accept fails with EMFILE. gnet's own accept used to end
// every event loop and siplb with them (exit 0); now accepting backs off,
// siplb stays up, UDP is served throughout, and a new TCP client is served
// once the flood's connections close. The warning about the key comes at
// start.
func TestFDExhaustionIsNoRemoteKill(t *testing.T) {
	bin := buildSiplb(t)
	be := startBackend(t, "A")
	port, udpPort := freeTCPPort(t), freeUDPPort(t)
	cfg := fmt.Sprintf(`listen:
  - address: tcp://127.0.0.1:%d
  - address: udp://127.0.0.1:%d
pools:
  - name: farm
    health: {disabled: true}
    backends:
      - address: %s
streams:
  max_connections: 1000
`, port, udpPort, be.url())
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	writeFileAtomic(t, path, []byte(cfg))
	p := startLimited(t, 64, 64, bin, "--config", path, "--loops", "1")
	p.waitLog(t, "siplb serving", 10*time.Second)
	if !strings.Contains(p.out.String(), "key=streams.max_connections") {
		t.Errorf("no warning naming streams.max_connections above the file limit:\n%s", p.out.String())
	}
	c := newClient(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(udpPort)))

	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeAll()
	deadline := time.Now().Add(10 * time.Second)
	for len(conns) < 200 && time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			continue
		}
		conns = append(conns, c)
	}
	if code, ok := p.exit(time.Second); ok {
		t.Fatalf("siplb exited (%d) under descriptor exhaustion:\n%s", code, tail([]byte(p.out.String()), 3000))
	}
	if _, err := c.options("fd-udp", retry{tries: 3, wait: 500 * time.Millisecond}); err != nil {
		t.Errorf("UDP OPTIONS during the exhaustion: %v", err)
	}
	if !strings.Contains(p.out.String(), "too many open files") {
		t.Errorf("the accept errors were not logged:\n%s", tail([]byte(p.out.String()), 2000))
	}
	closeAll()
	var served bool
	for try := 0; try < 20 && !served; try++ {
		tc, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		tc.Write(sipMsg("OPTIONS sip:farm@example.com SIP/2.0",
			"Via: SIP/2.0/TCP "+tc.LocalAddr().String()+";branch=z9hG4bK-fdtcp"+fmt.Sprint(try),
			"Max-Forwards: 70", "From: <sip:a@example.com>;tag=1", "To: <sip:farm@example.com>",
			"Call-ID: fd-tcp", "CSeq: 1 OPTIONS", "Content-Length: 0"))
		tc.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 2048)
		n, _ := tc.Read(buf)
		served = strings.HasPrefix(string(buf[:n]), "SIP/2.0 200")
		tc.Close()
	}
	if !served {
		t.Errorf("no new TCP client served after the flood closed:\n%s", tail([]byte(p.out.String()), 2000))
	}
}

// A listen address bound by another program (no SO_REUSEPORT, so no
// lock either) fails the bind: non-zero exit naming the address.
func TestListenAddressTaken(t *testing.T) {
	bin := buildSiplb(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := pc.LocalAddr().String()
	p := startSiplb(t, bin, "--listen", "udp://"+addr, "--backend", "udp://127.0.0.1:9", "--loops", "1")
	code, ok := p.exit(10 * time.Second)
	if !ok {
		t.Fatalf("siplb on a taken address still runs:\n%s", p.out.String())
	}
	if out := p.out.String(); code == 0 || !strings.Contains(out, addr) || !strings.Contains(out, "address already in use") {
		t.Errorf("siplb on a taken address: exit %d, output:\n%s\nwant non-zero naming %s", code, out, addr)
	}
}

// Under a soft file limit of 256 and a hard one of 512, siplb raises the
// soft limit to 512 and derives streams.max_connections from it, and says
// both in its start log.
func TestFileLimitRaisedAndLogged(t *testing.T) {
	bin := buildSiplb(t)
	lb := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
	p := startLimited(t, 256, 512, bin, "--listen", "udp://"+lb.String(), "--backend", "udp://127.0.0.1:9", "--loops", "1")
	p.waitLog(t, "siplb serving", 10*time.Second)
	cfg := &Config{Listen: []ListenConfig{{Address: "udp://" + lb.String()}}, Engine: EngineConfig{Loops: 1}}
	want := connsForFiles(512, listenerFDs(cfg))
	if want <= 0 || want > 512-fdHeadroomMin {
		t.Fatalf("connsForFiles(512) = %d, want in (0, %d]", want, 512-fdHeadroomMin)
	}
	line := fmt.Sprintf(`msg="file limit" soft=512 hard=512 max_connections=%d from="file limit"`, want)
	out := p.out.String()
	if !strings.Contains(out, line) {
		t.Errorf("start log lacks %q:\n%s", line, out)
	}
	if !strings.Contains(out, fmt.Sprintf("max_connections=%d", want)) || !strings.Contains(out, "siplb serving") {
		t.Errorf("start log lacks the derived cap:\n%s", out)
	}
}
