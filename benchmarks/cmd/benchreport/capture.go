package main

import (
	"fmt"
	"io"
)

// writeCapture writes siplb as it runs by default against siplb_capture
// (the same configuration with capture.hep mirroring every message to
// hepsink), for the scenarios that ran both at saturation: throughput, CPU
// per unit and what capture adds to it (the sender's goroutine and its
// sends included: they are siplb's CPU); the same at the open-loop rate
// where both ran it. Nothing when no scenario ran both.
func writeCapture(w io.Writer, rep *report) {
	header := false
	for _, sc := range rep.Scenarios {
		off, on := rep.Runs[key{"siplb", sc, "sat"}], rep.Runs[key{"siplb_capture", sc, "sat"}]
		if on == nil || off == nil {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\n### siplb with capture.hep on (HEPv3 to hepsink) against off (default)")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| scenario | on per second | off per second | on/off | on CPU µs/unit | off CPU µs/unit | CPU per unit on÷off − 1 | open-loop CPU µs/unit on | open-loop CPU µs/unit off | open-loop on÷off − 1 |")
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
			header = true
		}
		satCost := "-"
		if c, ok := extraCost(on, off); ok {
			satCost = percent(c)
		}
		onRate, offRate := rep.Runs[key{"siplb_capture", sc, "rate"}], rep.Runs[key{"siplb", sc, "rate"}]
		rateOn, rateOff, rateCost := "-", "-", "-"
		if onRate != nil && offRate != nil {
			rateOn, rateOff = micros(onRate.fwdMicros()), micros(offRate.fwdMicros())
			if c, ok := extraCost(onRate, offRate); ok {
				rateCost = percent(c)
			}
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", sc, on.Res.Throughput, off.Res.Throughput,
			times(div(on.Res.Throughput, off.Res.Throughput), false, false), micros(on.fwdMicros()), micros(off.fwdMicros()),
			satCost, rateOn, rateOff, rateCost)
	}
}
