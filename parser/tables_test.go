package parser

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestTablesGenerated fails when tables.go is not what gen_tables.go
// writes: edit the generator, then run go generate.
func TestTablesGenerated(t *testing.T) {
	want, err := os.ReadFile("tables.go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gen, err := os.ReadFile("gen_tables.go")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gen_tables.go"), gen, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool(t), "run", "gen_tables.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_tables.go: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "tables.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("tables.go is stale: run go generate ./parser")
	}
}
