package main

import (
	"fmt"
	"io"
	"math"
)

// senderProcess is the name in the .cpu files of siplb_capture's HEP
// sender: the CPU its thread spent sending over a run, read by the script
// from siplb_capture_send_cpu_seconds_total (part of siplb_capture's own).
const senderProcess = "siplb_capture_send"

// captureTarget is the data path's share of capture: what Capture adds on
// the event loops, per message (issue 14).
const captureTarget = 0.05

// writeCapture writes siplb as it runs by default against siplb_capture
// (the same configuration with capture.hep mirroring every message to
// hepsink), for the scenarios that ran both at saturation: throughput, CPU
// per unit and what capture adds to it, whole and on the data path (the
// process less the sender's thread, which the kernel's sends, and on
// loopback the collector's receive path, cost); the same at the open-loop
// rate where both ran it. Nothing when no scenario ran both.
func writeCapture(w io.Writer, rep *report) {
	header := false
	for _, sc := range rep.Scenarios {
		on, off := rep.Runs[key{"siplb_capture", sc, "sat"}], rep.Runs[key{"siplb", sc, "sat"}]
		if on == nil || off == nil {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\n### siplb with capture.hep on (HEPv3 to hepsink) against off (default)")
			fmt.Fprintln(w)
			fmt.Fprintf(w, "| scenario | mode | on per second | off per second | on CPU µs/unit | of it the sender | off CPU µs/unit | CPU per unit on÷off − 1 | data path on÷off − 1 (target ≤ +%.0f %%) |\n", 100*captureTarget)
			fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|")
			header = true
		}
		writeCaptureRow(w, sc, "saturation", on, off)
		if on, off := rep.Runs[key{"siplb_capture", sc, "rate"}], rep.Runs[key{"siplb", sc, "rate"}]; on != nil && off != nil {
			writeCaptureRow(w, sc, fmt.Sprintf("open %.0f/s", on.Res.Rate), on, off)
		}
	}
}

func writeCaptureRow(w io.Writer, sc, mode string, on, off *run) {
	all, sender, path := "-", "-", "-"
	if c, ok := extraCost(on, off); ok {
		all = percent(c)
	}
	if s, ok := senderMicros(on); ok {
		sender = micros(s)
		if a, b := on.fwdMicros(), off.fwdMicros(); a > 0 && b > 0 {
			c := (a-s)/b - 1
			// Judged as shown, to a tenth of a percent.
			path = percent(c) + verdict(true, math.Round(c*1000) <= captureTarget*1000)
		}
	}
	fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s |\n", sc, mode, on.Res.Throughput, off.Res.Throughput,
		micros(on.fwdMicros()), sender, micros(off.fwdMicros()), all, path)
}

// senderMicros is the HEP sender's CPU per completed unit of r, in µs;
// false when the run has no sender figure.
func senderMicros(r *run) (float64, bool) {
	c, ok := r.CPU[senderProcess]
	if !ok || r.Res.Completed == 0 {
		return 0, false
	}
	return c.Seconds / float64(r.Res.Completed) * 1e6, true
}
