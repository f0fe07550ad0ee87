package main

import (
	"fmt"
	"io"
	"strings"
)

// pinSuffix ends the name of a pinned target: direct_pin, relay_pin,
// siplb_pin, kamailio_pin.
const pinSuffix = "_pin"

// pinSkipped starts pin.txt when the pinned runs could not be made.
const pinSkipped = "skipped:"

// pinForwarders are the forwarders of the pinned table, in its column
// order; each is compared with direct in the same placement.
var pinForwarders = []string{"relay", "siplb", "kamailio"}

// writePinned writes the pinned runs (the forwarder alone on one core,
// sipload with its own sipecho on the other) beside the unpinned ones at
// the same open-loop rate, per scenario that ran pinned: p50 and p99 of
// direct and of every forwarder, what each forwarder adds to direct's p99
// in the same placement (siplb's checked against wantAddedP99us), and
// siplb's p99 over the relay's, the part no forwarder avoids left out.
// With pin.txt saying the runs were skipped, the heading and why; nothing
// when no pinned run was asked for.
func writePinned(w io.Writer, rep *report) {
	var scenarios []string
	for _, sc := range rep.Scenarios {
		if rep.Runs[key{"direct" + pinSuffix, sc, "rate"}] != nil {
			scenarios = append(scenarios, sc)
		}
	}
	if rep.Pin == "" && len(scenarios) == 0 {
		return
	}
	fmt.Fprintln(w, "\n### Pinned: the forwarder on its own core")
	fmt.Fprintln(w)
	if why, ok := strings.CutPrefix(rep.Pin, pinSkipped); ok {
		fmt.Fprintf(w, "Not run: %s.\n", strings.TrimSpace(why))
		return
	}
	if rep.Pin != "" {
		fmt.Fprintf(w, "%s.\n\n", rep.Pin)
	}
	if len(scenarios) == 0 {
		fmt.Fprintln(w, "No pinned run completed (see the warnings).")
		return
	}
	fmt.Fprintln(w, "Open loop at the rate of the unpinned rows. *added p99* is a forwarder's p99 less direct's in the same placement:",
		"pinned, the forwarder alone on one core and sipload with its sipecho on the other; unpinned, every process anywhere on the machine's cores.",
		"The relay parses nothing: what it adds is what one more process and two more loopback hops cost here; *siplb − relay* is siplb's own share.")
	fmt.Fprintln(w)
	var fwds []string // the forwarders that ran pinned in some scenario
	for _, f := range pinForwarders {
		for _, sc := range scenarios {
			if rep.Runs[key{f + pinSuffix, sc, "rate"}] != nil {
				fwds = append(fwds, f)
				break
			}
		}
	}
	fmt.Fprint(w, "| scenario | placement | open-loop rate | direct p50 / p99 µs |")
	for _, f := range fwds {
		fmt.Fprintf(w, " %s p50 / p99 µs |", f)
	}
	for _, f := range fwds {
		if f == "siplb" {
			fmt.Fprintf(w, " added p99 siplb (target ≤ %.0f µs) |", wantAddedP99us)
			continue
		}
		fmt.Fprintf(w, " added p99 %s |", f)
	}
	fmt.Fprintln(w, " p99 siplb − relay |")
	fmt.Fprintln(w, "|---|---|--:|--:|"+strings.Repeat("--:|", 2*len(fwds)+1))
	for _, sc := range scenarios {
		for _, placement := range []string{"pinned", "unpinned"} {
			suffix := ""
			if placement == "pinned" {
				suffix = pinSuffix
			}
			get := func(t string) *run {
				if r := rep.Runs[key{t + suffix, sc, "rate"}]; r != nil && r.Res.Completed > 0 {
					return r
				}
				return nil
			}
			d := get("direct")
			rate := "-"
			for _, t := range append([]string{"direct"}, fwds...) {
				if r := get(t); r != nil && r.Res.Rate > 0 {
					rate = fmt.Sprintf("%.0f/s", r.Res.Rate)
					break
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |", sc, placement, rate, p50p99(d))
			for _, f := range fwds {
				fmt.Fprintf(w, " %s |", p50p99(get(f)))
			}
			for _, f := range fwds {
				fmt.Fprintf(w, " %s |", addedP99(get(f), d, f == "siplb" && targetScenarios[sc]))
			}
			fmt.Fprintf(w, " %s |\n", addedP99(get("siplb"), get("relay"), false))
		}
	}
}

// p50p99 formats a run's p50 and p99 in µs; "-" without a run.
func p50p99(r *run) string {
	if r == nil {
		return "-"
	}
	return us(r.Res.Latency.P50) + " / " + us(r.Res.Latency.P99)
}

// addedP99 formats r's p99 less base's, with the verdict against
// wantAddedP99us when checked; "-" when either run is missing.
func addedP99(r, base *run, checked bool) string {
	if r == nil || base == nil {
		return "-"
	}
	d := r.Res.Latency.P99 - base.Res.Latency.P99
	return fmt.Sprintf("%+.0f µs%s", d, verdict(checked, d <= wantAddedP99us))
}
