package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as sipecho when the tests re-execute it.
func TestMain(m *testing.M) {
	if os.Getenv("SIPECHO_RUN_MAIN") == "1" {
		os.Args = append([]string{"sipecho"}, strings.Fields(os.Getenv("SIPECHO_ARGS"))...)
		main()
	}
	os.Exit(m.Run())
}

// sipecho is the test binary re-executed as sipecho with args; it is
// killed when the test ends.
type sipecho struct {
	cmd   *exec.Cmd
	addr  string // its first UDP address
	lines *bufio.Scanner
}

func startSipecho(t *testing.T, args string) *sipecho {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SIPECHO_RUN_MAIN=1", "SIPECHO_ARGS="+args)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	p := &sipecho{cmd: cmd, lines: bufio.NewScanner(stderr)}
	for p.lines.Scan() {
		if a, ok := strings.CutPrefix(p.lines.Text(), "sipecho: listening on udp "); ok {
			p.addr = a
			break
		}
	}
	if p.addr == "" {
		t.Fatal("sipecho printed no listening address")
	}
	return p
}

// options sends one OPTIONS with callID and waits for its 200.
func (p *sipecho) options(t *testing.T, callID string) {
	t.Helper()
	c, err := net.Dial("udp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "OPTIONS sip:echo@" + p.addr + " SIP/2.0\r\nVia: SIP/2.0/UDP " + c.LocalAddr().String() +
		";branch=z9hG4bK1\r\nFrom: <sip:t@h>;tag=1\r\nTo: <sip:echo@h>\r\nCall-ID: " + callID + "\r\n" +
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 OK\r\n") {
		t.Fatalf("answer %q, %v", buf[:n], err)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *sipecho) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for p.lines.Scan() { // drain the table
		}
	}()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("sipecho exit: %v", err)
	}
}

func readStats(t *testing.T, file string) map[string]map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]uint64
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("stats %q: %v", b, err)
	}
	return got
}

func TestSIGTERMWritesStats(t *testing.T) {
	stats := filepath.Join(t.TempDir(), "stats.json")
	p := startSipecho(t, "-listen 127.0.0.1:0 -stats "+stats)
	p.options(t, "main-test")
	p.stop(t)
	if got := readStats(t, stats); got[p.addr]["OPTIONS"] != 1 {
		t.Errorf("stats = %v, want one OPTIONS on %s", got, p.addr)
	}
}

func TestSIGUSR1WritesStatsAndGoesOn(t *testing.T) {
	stats := filepath.Join(t.TempDir(), "stats.json")
	p := startSipecho(t, "-listen 127.0.0.1:0 -stats "+stats)
	for i, want := range []map[string]uint64{
		{"OPTIONS": 1, "flood": 1},
		{"OPTIONS": 2, "flood": 1},
	} {
		p.options(t, []string{"flood-1@h", "legit@h"}[i])
		os.Remove(stats)
		if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, err := os.Stat(stats); err != nil; _, err = os.Stat(stats) {
			if time.Now().After(deadline) {
				t.Fatalf("snapshot %d: no %s after SIGUSR1", i, stats)
			}
			time.Sleep(10 * time.Millisecond)
		}
		got := readStats(t, stats)[p.addr]
		for k, n := range want {
			if got[k] != n {
				t.Errorf("snapshot %d: stats[%s] = %d, want %d (all: %v)", i, k, got[k], n, got)
			}
		}
	}
	p.stop(t) // still running after two SIGUSR1
	if got := readStats(t, stats)[p.addr]; got["OPTIONS"] != 2 {
		t.Errorf("final stats = %v, want 2 OPTIONS", got)
	}
}

func TestWithTCP(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{name: "plain", in: []string{"127.0.0.1:5070"}, want: []string{"127.0.0.1:5070", "tcp://127.0.0.1:5070"}},
		{name: "udp scheme", in: []string{"udp://127.0.0.1:5070"}, want: []string{"udp://127.0.0.1:5070", "tcp://127.0.0.1:5070"}},
		{name: "tcp already there", in: []string{"127.0.0.1:5070", "tcp://127.0.0.1:5070"},
			want: []string{"127.0.0.1:5070", "tcp://127.0.0.1:5070"}},
		{name: "tcp only", in: []string{"tcp://127.0.0.1:5071"}, want: []string{"tcp://127.0.0.1:5071"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := withTCP(tc.in); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("withTCP(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
