package parser

import (
	"os/exec"
	"testing"
)

// goTool returns the go command the tool-running tests build with. A test
// binary copied to a machine without a Go toolchain has none to run; that
// is the one reason these tests skip.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH to run: this test builds with the go command")
	}
	return p
}
