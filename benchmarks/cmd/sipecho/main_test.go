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

func TestSIGTERMWritesStats(t *testing.T) {
	stats := filepath.Join(t.TempDir(), "stats.json")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SIPECHO_RUN_MAIN=1", "SIPECHO_ARGS=-listen 127.0.0.1:0 -stats "+stats)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := bufio.NewScanner(stderr)
	var addr string
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "sipecho: listening on udp "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("sipecho printed no listening address")
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "OPTIONS sip:echo@" + addr + " SIP/2.0\r\nVia: SIP/2.0/UDP " + c.LocalAddr().String() +
		";branch=z9hG4bK1\r\nFrom: <sip:t@h>;tag=1\r\nTo: <sip:echo@h>\r\nCall-ID: main-test\r\n" +
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

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for lines.Scan() { // drain the table
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sipecho exit: %v", err)
	}
	b, err := os.ReadFile(stats)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]uint64
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("stats %q: %v", b, err)
	}
	if got[addr]["OPTIONS"] != 1 {
		t.Errorf("stats = %s, want one OPTIONS on %s", b, addr)
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
