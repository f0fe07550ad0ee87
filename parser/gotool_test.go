package parser

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// goTool returns the go command the tool-running tests build with: the one
// on PATH, else the one under $GOROOT, which `go test` exports to the test
// binary. One exists wherever `go test` runs, so none is a failure, not a
// skip.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command on PATH or at %s: these tests build with it", p)
	}
	return p
}
