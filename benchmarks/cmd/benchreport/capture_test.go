package main

import (
	"bytes"
	"strings"
	"testing"
)

// The capture section compares siplb_capture with siplb per scenario that
// ran both, splits siplb_capture's CPU into the data path and the sender
// where the run has the sender's figure, and is absent when no scenario
// ran both.
func TestReportCapture(t *testing.T) {
	dir := writeDir(t, []fixture{
		// 40000 options in 4 s: siplb 0.4 s (10 µs/unit), siplb_capture
		// 0.5 s (12.5 µs/unit: +25 %), of which the sender 0.08 s (2 µs a
		// unit): the data path 10.5 µs, +5 %.
		sat("siplb", "options", 10000, 40000, "siplb 0.4 4.0\n"),
		sat("siplb_capture", "options", 9000, 40000, "siplb_capture 0.5 4.0\nsiplb_capture_send 0.08 4.0\n"),
		// register: the data path +10 %, over the target.
		sat("siplb", "register", 10000, 40000, "siplb 0.4 4.0\n"),
		sat("siplb_capture", "register", 9000, 40000, "siplb_capture 0.5 4.0\nsiplb_capture_send 0.06 4.0\n"),
		// invite: no sender figure (a results folder of an older script).
		sat("siplb", "invite", 10000, 40000, "siplb 0.4 4.0\n"),
		sat("siplb_capture", "invite", 9000, 40000, "siplb_capture 0.5 4.0\n"),
		sat("siplb", "call", 3000, 9000, "siplb 0.2 3.0\n"), // no capture run
	}, nil)
	rep, err := readReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeCapture(&b, rep)
	out := b.String()
	for _, want := range []string{
		"### siplb with capture.hep on",
		"| options | saturation | 9000 | 10000 | 12.5 | 2.0 | 10.0 | +25.0 % | +5.0 % ✓ |",
		"| register | saturation | 9000 | 10000 | 12.5 | 1.5 | 10.0 | +25.0 % | +10.0 % ✗ MISS |",
		"| invite | saturation | 9000 | 10000 | 12.5 | - | 10.0 | +25.0 % | - |",
	} {
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
