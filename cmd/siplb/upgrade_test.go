package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
)

// Hitless upgrades, with the real binary: the new process inherits the
// sockets, the old one drains and exits, and nothing in flight is lost.

// noFlood turns the flood detector off: the load of these tests comes from
// one address, 127.0.0.1, as fast as siplb answers.
const noFlood = "security:\n  flood:\n    disabled: true\n"

// upgraded is a siplb process started for an upgrade test, from its own
// copy of the binary (a test may put another program in its place), with a
// pid file.
type upgraded struct {
	p       *proc
	bin     string // the path siplb runs from; an upgrade starts what is there
	pidFile string
	cfgPath string
	logPath string // stdout and stderr of it and its successors
	admin   string
}

// logs returns the tail of what the processes logged.
func (u *upgraded) logs() string {
	b, _ := os.ReadFile(u.logPath)
	return tail(b, 3000)
}

// startUpgradable writes cfg and starts a copy of the binary src (from buildSiplb) on it with --pid-file and the
// extra args, and waits until /readyz answers ready. Every process an
// upgrade starts is stopped by its pid (from the pid file) when the test
// ends.
func startUpgradable(t *testing.T, src, cfg, admin string, args ...string) *upgraded {
	t.Helper()
	dir := t.TempDir()
	u := &upgraded{bin: filepath.Join(dir, "siplb"), pidFile: filepath.Join(dir, "siplb.pid"),
		cfgPath: filepath.Join(dir, "siplb.yaml"), logPath: filepath.Join(dir, "siplb.log"), admin: admin}
	copyFile(t, src, u.bin)
	writeFileAtomic(t, u.cfgPath, []byte(cfg))
	logf, err := os.Create(u.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// A file, not a pipe, for its output: the successor inherits it, and
	// Wait must not wait for the successor to close a pipe.
	u.p = &proc{cmd: exec.Command(u.bin, append([]string{"--config", u.cfgPath, "--pid-file", u.pidFile}, args...)...), out: &syncBuffer{}, done: make(chan struct{})}
	u.p.cmd.Stdout, u.p.cmd.Stderr = logf, logf
	if err := u.p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.p.err = u.p.cmd.Wait(); close(u.p.done) }()
	t.Cleanup(func() {
		u.p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-u.p.done:
		case <-time.After(5 * time.Second):
			u.p.cmd.Process.Kill()
			<-u.p.done
		}
	})
	t.Cleanup(func() {
		// Successors are not the test's children: stop them by pid.
		if pid, err := readPIDFile(u.pidFile); err == nil && pid != u.p.cmd.Process.Pid {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	u.waitReady(t, 10*time.Second)
	return u
}

// waitReady waits until /readyz answers ready.
func (u *upgraded) waitReady(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if ok, _ := readyzOf(u.admin); ok {
			if _, err := readPIDFile(u.pidFile); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("siplb not ready within %v:\n%s", limit, u.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// upgrade runs `siplb upgrade` against the admin listener and returns its
// exit code and output.
func (u *upgraded) upgrade(t *testing.T) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run([]string{"upgrade", "--admin", u.admin, "--timeout", "30s"}, &out, &out)
	return code, out.String()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil { // never write over a running binary
		t.Fatal(err)
	}
}

// udpLoad runs workers clients that each make calls (INVITE, 200, ACK,
// BYE, 200) and OPTIONS transactions through lb one after another, each
// request sent once (no retransmission: a datagram lost is a transaction
// lost), until finish or max transactions are done.
type udpLoad struct {
	ok, lost atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when every worker has returned
	mu       sync.Mutex
	errs     []string
}

func runUDPLoad(t *testing.T, lb netip.AddrPort, workers, max int) *udpLoad {
	l := &udpLoad{stop: make(chan struct{}), done: make(chan struct{})}
	stop := l.stop
	var wg sync.WaitGroup
	var n atomic.Int64
	once := retry{tries: 1, wait: 3 * time.Second}
	for w := range workers {
		c := newClient(t, lb)
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if n.Add(1) > int64(max) {
					return
				}
				id := fmt.Sprintf("up-%d-%d", w, i)
				var err error
				var txs int64 = 3 // INVITE, BYE, and ACK counted with the INVITE's 200
				if i%2 == 0 {
					_, err = c.call(id, once)
				} else {
					txs = 1
					_, err = c.options(id, once)
				}
				if err != nil {
					l.lost.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(txs)
			}
		})
	}
	go func() { wg.Wait(); close(l.done) }()
	t.Cleanup(l.finish)
	return l
}

// finish stops the workers and waits for them.
func (l *udpLoad) finish() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// Under UDP load (8 clients, each request sent once), an upgrade in the
// middle of the run loses no transaction; the new process has the old
// one's operator state (a drained backend stays drained) and its locks (a
// plain second start is refused naming the new pid); the old one exits 0
// once drained.
func TestUpgradeUnderUDPLoadLosesNothing(t *testing.T) {
	b1, b2 := startBackend(t, "b1"), startBackend(t, "b2")
	lb := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)))
	admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := yamlConfig{listen: lb, admin: admin, health: "{interval: 500ms, timeout: 300ms}",
		backends: []string{"{address: " + b1.url() + "}", "{address: " + b2.url() + "}"}}
	u := startUpgradable(t, buildSiplb(t), string(cfg.bytes())+noFlood+"shutdown:\n  drain_timeout: 10s\n  idle: 300ms\n", admin, "--loops", "2")
	oldPID := u.p.cmd.Process.Pid
	waitServing(t, newClient(t, lb))
	var out bytes.Buffer
	if code := run([]string{"ctl", "--admin", admin, "drain", "farm", b2.addr.String()}, &out, &out); code != 0 {
		t.Fatalf("siplb ctl drain: %d %s", code, out.String())
	}

	load := runUDPLoad(t, lb, 8, 200000)
	time.Sleep(time.Second)
	before := load.ok.Load()
	at := time.Now()
	code, msg := u.upgrade(t)
	took := time.Since(at)
	if code != 0 {
		t.Fatalf("siplb upgrade: exit %d: %s\n%s", code, msg, u.logs())
	}
	during := load.ok.Load() - before
	// The old process drains (its UDP share ended when the new one was
	// ready) and exits; the load runs on a while against the new one.
	exitCode, exited := u.p.exit(15 * time.Second)
	time.Sleep(500 * time.Millisecond)
	load.finish()

	if !exited || exitCode != 0 {
		t.Errorf("old siplb: exited %v with %d, want 0 after its drain:\n%s", exited, exitCode, u.logs())
	}
	newPID, err := readPIDFile(u.pidFile)
	if err != nil || newPID == oldPID {
		t.Fatalf("pid file after the upgrade: %d, %v; want a new pid (old %d)", newPID, err, oldPID)
	}
	t.Logf("upgrade took %v; transactions: %d answered (%d while the upgrade ran), %d lost", took.Round(time.Millisecond), load.ok.Load(), during, load.lost.Load())
	if load.lost.Load() != 0 {
		t.Errorf("%d transactions lost across the upgrade (each request sent once), e.g. %q", load.lost.Load(), load.errs)
	}
	if during == 0 || load.ok.Load() == before {
		t.Errorf("no transaction ran during or after the upgrade (%d during, %d in all)", during, load.ok.Load())
	}
	bs, err := adminBackends(admin)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := entry(bs, b2.addr); e.State != "draining" {
		t.Errorf("the new process has %s as %q, want draining (the operator's state handed over)", b2.addr, e.State)
	}
	second := exec.Command(u.bin, "--config", u.cfgPath)
	o, _ := second.CombinedOutput()
	if want := fmt.Sprintf("already served by siplb pid %d", newPID); second.ProcessState.ExitCode() != 1 || !strings.Contains(string(o), want) {
		t.Errorf("a plain second start after the upgrade: exit %d, want 1 with %q:\n%s", second.ProcessState.ExitCode(), want, tail(o, 1000))
	}
}

// A TCP client with an INVITE in flight during an upgrade (SIGUSR2 through
// `siplb upgrade --pid-file`) gets its 200 over the connection it has, in
// one piece, and then a clean close (FIN, not a reset) once the connection
// is idle; a new connection reaches the new process. systemd hears READY=1
// from the old process, then MAINPID= of the new one with its READY=1, and
// no STOPPING=1 from the old one draining.
func TestUpgradeClosesTCPBetweenMessages(t *testing.T) {
	sd := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	be := startSlowTCPBackend(t, 1500*time.Millisecond)
	lb := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := fmt.Sprintf("listen:\n  - address: tcp://%s\npools:\n  - name: farm\n    health: {disabled: true}\n    backends:\n      - address: tcp://%s\nadmin:\n  listen: %s\nshutdown:\n  drain_timeout: 20s\n  idle: 300ms\n",
		lb, be, admin)
	u := startUpgradable(t, buildSiplb(t), cfg, admin, "--loops", "1")
	c, err := net.DialTimeout("tcp4", lb, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(tcpInvite(c.LocalAddr().String(), "inflight")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // at the backend now: its 200 is 1.3 s away
	var out bytes.Buffer
	if code := run([]string{"upgrade", "--pid-file", u.pidFile, "--timeout", "30s"}, &out, &out); code != 0 {
		t.Fatalf("siplb upgrade --pid-file: exit %d: %s\n%s", code, out.String(), u.logs())
	}
	newPID, _ := readPIDFile(u.pidFile)

	var got [][]byte
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var readErr error
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			readErr = err
			break
		}
	}
	readFramesBuf(buf, func(m []byte) { got = append(got, m) })
	if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 ")) || !bytes.Contains(got[0], []byte("Call-ID: inflight")) {
		t.Errorf("over the connection open during the upgrade: got %q, want the in-flight INVITE's 200 alone", got)
	}
	if rest := len(buf) - totalLen(got); rest != 0 {
		t.Errorf("%d bytes of a message cut short after the 200", rest)
	}
	if !errors.Is(readErr, io.EOF) {
		t.Errorf("the connection ended with %v, want a clean close (EOF) after the complete 200", readErr)
	}
	if code, ok := u.p.exit(10 * time.Second); !ok || code != 0 {
		t.Errorf("old siplb: exited %v with %d, want 0:\n%s", ok, code, u.logs())
	}
	// The listener was handed over: a new connection is served (an OPTIONS
	// the backend answers at once).
	c2, err := net.DialTimeout("tcp4", lb, 2*time.Second)
	if err != nil {
		t.Fatalf("a new connection after the upgrade: %v", err)
	}
	defer c2.Close()
	opt := sipMsg("OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/TCP "+c2.LocalAddr().String()+";branch=z9hG4bK-after;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=x", "To: <sip:bob@example.com>", "Call-ID: after", "CSeq: 1 OPTIONS", "Content-Length: 0")
	c2.Write(opt)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	var answered bool
	readFrames(c2, func(m []byte) {
		answered = bytes.HasPrefix(m, []byte("SIP/2.0 200 ")) && bytes.Contains(m, []byte("Call-ID: after"))
		c2.SetReadDeadline(time.Now())
	})
	if !answered {
		t.Error("no 200 over a new connection to the new process")
	}
	var said []string
	for len(sd.msgs) > 0 {
		if m := <-sd.msgs; m != "WATCHDOG=1\n" {
			said = append(said, m)
		}
	}
	if len(said) != 2 || !strings.HasPrefix(said[0], "READY=1\n") ||
		!strings.HasPrefix(said[1], fmt.Sprintf("MAINPID=%d\nREADY=1\n", newPID)) {
		t.Errorf("systemd heard %q; want READY=1 (old), then MAINPID=%d with READY=1 (new), and nothing of the old one's drain", said, newPID)
	}
}

// readFramesBuf calls f with each complete SIP message of buf.
func readFramesBuf(buf []byte, f func([]byte)) {
	r := &sliceConn{b: buf}
	readFrames(r, f)
}

func totalLen(ms [][]byte) int {
	n := 0
	for _, m := range ms {
		n += len(m)
	}
	return n
}

// sliceConn is a net.Conn that reads a byte slice, for readFrames.
type sliceConn struct {
	net.Conn
	b []byte
}

func (s *sliceConn) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// A new process that fails to start (its configuration invalid, a binary
// that exits, one that never gets ready) leaves the old one serving: the
// upgrade reports the failure, UDP is answered throughout, the locks still
// name the old pid, and a later upgrade with the fault gone succeeds.
func TestFailedUpgradeLeavesOldServing(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		break_  func(t *testing.T, u *upgraded) // makes the next start fail
		restore func(t *testing.T, u *upgraded)
	}{
		{name: "invalid configuration",
			break_: func(t *testing.T, u *upgraded) {
				writeFileAtomic(t, u.cfgPath, []byte("listen: [{address: udp://127.0.0.1:1}]\npools: [{name: x, wieght: 1}]\n"))
			}},
		{name: "binary exits",
			break_: func(t *testing.T, u *upgraded) {
				writeFileAtomic(t, u.bin, []byte("#!/bin/sh\nexit 3\n"))
				os.Chmod(u.bin, 0o755)
			}},
		{name: "never ready", args: []string{"--upgrade-timeout", "4s"},
			break_: func(t *testing.T, u *upgraded) {
				writeFileAtomic(t, u.bin, []byte("#!/bin/sh\nexec sleep 30\n"))
				os.Chmod(u.bin, 0o755)
			}},
	}
	src := buildSiplb(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := startBackend(t, "b")
			lb := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)))
			admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
			cfg := string(yamlConfig{listen: lb, admin: admin, backends: []string{"{address: " + b.url() + "}"}}.bytes()) + noFlood +
				"shutdown:\n  idle: 300ms\n"
			u := startUpgradable(t, src, cfg, admin, append([]string{"--loops", "1"}, tc.args...)...)
			good, err := os.ReadFile(u.bin)
			if err != nil {
				t.Fatal(err)
			}
			oldPID := u.p.cmd.Process.Pid
			cl := newClient(t, lb)
			waitServing(t, cl)

			tc.break_(t, u)
			load := runUDPLoad(t, lb, 2, 100000)
			code, msg := u.upgrade(t)
			load.finish()
			if code != ctlRefused || !strings.Contains(msg, "upgrade failed, this process serves on") {
				t.Fatalf("siplb upgrade with a failing new process: exit %d %q, want %d and the failure", code, msg, ctlRefused)
			}
			if _, ok := u.p.exit(0); ok {
				t.Fatalf("the old siplb exited after a failed upgrade:\n%s", u.logs())
			}
			if load.lost.Load() != 0 || load.ok.Load() == 0 {
				t.Errorf("while the upgrade failed: %d answered, %d lost (%q), want all answered", load.ok.Load(), load.lost.Load(), load.errs)
			}
			if _, err := cl.options("after-failure", retry{tries: 1, wait: 2 * time.Second}); err != nil {
				t.Errorf("after the failed upgrade: %v", err)
			}
			if pid, _ := readPIDFile(u.pidFile); pid != oldPID {
				t.Errorf("pid file names %d, want the old %d", pid, oldPID)
			}
			if ok, why := readyzOf(admin); !ok {
				t.Errorf("/readyz of the old process after the failed upgrade: %q", why)
			}
			// With the fault gone, a plain second start is still refused:
			// the locks answer for the old process again.
			writeFileAtomic(t, u.cfgPath, []byte(cfg))
			copyFileBytes(t, good, u.bin)
			o, _ := exec.Command(u.bin, "--config", u.cfgPath).CombinedOutput()
			if want := fmt.Sprintf("already served by siplb pid %d", oldPID); !strings.Contains(string(o), want) {
				t.Errorf("a plain second start after the failed upgrade: want %q:\n%s", want, tail(o, 1000))
			}
			// And the upgrade goes through.
			if code, msg := u.upgrade(t); code != 0 {
				t.Fatalf("upgrade once the fault is gone: exit %d %q\n%s", code, msg, u.logs())
			}
			if code, ok := u.p.exit(10 * time.Second); !ok || code != 0 {
				t.Errorf("old siplb after the second upgrade: exited %v with %d, want 0:\n%s", ok, code, u.logs())
			}
			if _, err := cl.options("after-upgrade", retry{tries: 1, wait: 2 * time.Second}); err != nil {
				t.Errorf("after the upgrade: %v", err)
			}
		})
	}
}

func copyFileBytes(t *testing.T, b []byte, to string) {
	t.Helper()
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// POST /api/v1/upgrade on a siplb that cannot upgrade (serve in a test has
// no upgrader) answers 501, and `siplb upgrade` exits 1 naming why.
func TestUpgradeRefusedWithoutUpgrader(t *testing.T) {
	b := startBackend(t, "b")
	lb := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)))
	admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	startServe(t, yamlConfig{listen: lb, admin: admin, backends: []string{"{address: " + b.url() + "}"}}.bytes())
	deadline := time.Now().Add(5 * time.Second)
	for ok, _ := readyzOf(admin); !ok && time.Now().Before(deadline); ok, _ = readyzOf(admin) {
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Post("http://"+admin+"/api/v1/upgrade", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("POST /api/v1/upgrade: %s, want 501", resp.Status)
	}
	var out bytes.Buffer
	if code := run([]string{"upgrade", "--admin", admin}, &out, &out); code != ctlRefused || !strings.Contains(out.String(), "cannot upgrade") {
		t.Errorf("siplb upgrade: exit %d %q, want %d naming why", code, out.String(), ctlRefused)
	}
}

// The state a successor takes over: health marks of members still
// configured, and the operator's states of members whose pool line is
// unchanged (as a reload keeps them).
func TestApplyHandoverState(t *testing.T) {
	a, b := netip.MustParseAddrPort("127.0.0.1:5070"), netip.MustParseAddrPort("127.0.0.1:5071")
	pools := []balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{
		{Addr: a, Transport: balance.UDP, Weight: 1, Priority: 1},
		{Addr: b, Transport: balance.UDP, Weight: 2, Priority: 1},
	}}}
	line := func(addr string, weight int, healthy bool, override string) handoverBackend {
		return handoverBackend{Pool: "farm", Addr: addr, Transport: "udp", Weight: weight, Priority: 1, Healthy: healthy, Override: override}
	}
	tests := []struct {
		name              string
		st                []handoverBackend
		wantMarks, wantSt int
		wantA, wantB      balance.State // effective states afterwards
		wantHealthyA      bool
	}{
		{name: "marks and states", st: []handoverBackend{line(a.String(), 1, false, ""), line(b.String(), 2, true, "draining")},
			wantMarks: 2, wantSt: 1, wantA: balance.Down, wantB: balance.Draining},
		{name: "state of a changed line dropped", st: []handoverBackend{line(a.String(), 1, true, ""), line(b.String(), 5, true, "disabled")},
			wantMarks: 2, wantSt: 0, wantA: balance.Up, wantB: balance.Up, wantHealthyA: true},
		{name: "unknown pool and address ignored", st: []handoverBackend{{Pool: "other", Addr: a.String(), Transport: "udp", Override: "disabled"},
			line("127.0.0.1:1", 1, false, "disabled"), line("not an address", 1, false, "")},
			wantA: balance.Up, wantB: balance.Up, wantHealthyA: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bal, err := balance.New(pools)
			if err != nil {
				t.Fatal(err)
			}
			marks, states := applyState(bal, handoverState{Backends: tc.st})
			if marks != tc.wantMarks || states != tc.wantSt {
				t.Errorf("applyState = %d marks, %d states; want %d, %d", marks, states, tc.wantMarks, tc.wantSt)
			}
			for _, m := range bal.Table().Pool(0).Backends() {
				want := tc.wantA
				if m.Addr == b {
					want = tc.wantB
				}
				if m.State != want {
					t.Errorf("%s: state %s, want %s", m.Addr, m.State, want)
				}
				if m.Addr == a && m.Healthy() != tc.wantHealthyA {
					t.Errorf("%s: healthy %v, want %v", m.Addr, m.Healthy(), tc.wantHealthyA)
				}
			}
			// What a predecessor hands over is what a successor applies.
			if got := snapshotState(bal); len(got.Backends) != 2 {
				t.Errorf("snapshotState: %d backends, want 2", len(got.Backends))
			}
		})
	}
}
