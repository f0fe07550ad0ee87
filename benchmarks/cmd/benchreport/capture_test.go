package main

import (
	"bytes"
	"strings"
	"testing"
)

// The capture section compares siplb_capture with siplb per scenario that
// ran both, and is absent when none did.
func TestReportCapture(t *testing.T) {
	dir := writeDir(t, []fixture{
		// 40000 options in 4 s: siplb 0.4 s (10 µs/unit), siplb_capture
		// 0.5 s (12.5 µs/unit: +25 %).
		sat("siplb", "options", 10000, 40000, "siplb 0.4 4.0\n"),
		sat("siplb_capture", "options", 9000, 40000, "siplb_capture 0.5 4.0\n"),
		sat("siplb", "call", 3000, 9000, "siplb 0.2 3.0\n"), // no capture run
	}, nil)
	rep, err := readReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeCapture(&b, rep)
	out := b.String()
	for _, want := range []string{"### siplb with capture.hep on", "| options | 9000 | 10000 | 0.90× | 12.5 | 10.0 | +25.0 % |"} {
		if !strings.Contains(out, want) {
			t.Errorf("capture section lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "| call |") {
		t.Errorf("capture section has a row for call, which ran without capture:\n%s", out)
	}
	b.Reset()
	rep, err = readReport(writeDir(t, []fixture{sat("siplb", "options", 10000, 40000, "siplb 0.4 4.0\n")}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if writeCapture(&b, rep); b.Len() != 0 {
		t.Errorf("capture section without a capture run: %q", b.String())
	}
}
