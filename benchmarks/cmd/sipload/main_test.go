package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siplb/siplb/benchmarks/internal/echo"
)

// TestMain lets the test binary act as sipload when the tests re-execute it.
func TestMain(m *testing.M) {
	if os.Getenv("SIPLOAD_RUN_MAIN") == "1" {
		os.Args = append([]string{"sipload"}, strings.Fields(os.Getenv("SIPLOAD_ARGS"))...)
		main()
	}
	os.Exit(m.Run())
}

// sipload runs the command with args and returns its stdout and exit code.
func sipload(t *testing.T, args string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SIPLOAD_RUN_MAIN=1", "SIPLOAD_ARGS="+args)
	out, err := cmd.Output()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestExitCodes(t *testing.T) {
	srv, err := echo.Listen([]string{"127.0.0.1:0", "tcp://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(t.Context())
	t.Cleanup(func() { srv.Close() })
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	jsonFile := filepath.Join(t.TempDir(), "res.json")

	tests := []struct {
		name     string
		args     string
		wantCode int
		wantOut  string
	}{
		{name: "calls complete", args: "-scenario call -n 300 -json " + jsonFile + " -target " + srv.Addrs()[0].String(),
			wantCode: 0, wantOut: "completed 300"},
		{name: "lost", args: "-scenario options -n 5 -timeout 50ms -target " + silent.LocalAddr().String(),
			wantCode: 1, wantOut: "lost 5"},
		{name: "calls over tcp", args: "-scenario call -transport tcp -sockets 2 -n 300 -target " + srv.TCPAddrs()[0].String(),
			wantCode: 0, wantOut: "completed 300"},
		{name: "bad scenario", args: "-scenario foo", wantCode: 2},
		{name: "bad transport", args: "-transport sctp", wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := sipload(t, tc.args)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
			if !strings.Contains(squeeze(out), tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out)
			}
		})
	}
	var res struct {
		Completed uint64 `json:"completed"`
		Scenario  string `json:"scenario"`
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil || res.Completed != 300 || res.Scenario != "call" {
		t.Errorf("json %s: %v", b, err)
	}
}

// squeeze collapses runs of spaces, so checks do not depend on column widths.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
