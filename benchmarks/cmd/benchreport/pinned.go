package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
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
// Where a target ran more than once (PIN_ROUNDS), its figures are those of
// the try with the lowest p99, the one least disturbed by the rest of the
// machine, with the highest p99 of its tries beside them.
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
	if maxTries(rep, scenarios) > 1 {
		fmt.Fprintln(w, "A target that ran more than once (PIN_ROUNDS, alternating with the others) shows the try with the lowest p99,",
			"the one the rest of the machine disturbed least, and in brackets the highest p99 of its tries, with their count.")
	}
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
			get := func(t string) *run { return best(tries(rep, t+suffix, sc)) }
			cell := func(t string) string { return p50p99(tries(rep, t+suffix, sc)) }
			d := get("direct")
			rate := "-"
			for _, t := range append([]string{"direct"}, fwds...) {
				if r := get(t); r != nil && r.Res.Rate > 0 {
					rate = fmt.Sprintf("%.0f/s", r.Res.Rate)
					break
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |", sc, placement, rate, cell("direct"))
			for _, f := range fwds {
				fmt.Fprintf(w, " %s |", cell(f))
			}
			for _, f := range fwds {
				fmt.Fprintf(w, " %s |", addedP99(get(f), d, f == "siplb" && targetScenarios[sc]))
			}
			fmt.Fprintf(w, " %s |\n", addedP99(get("siplb"), get("relay"), false))
		}
	}
}

// tries are the completed open-loop runs of target t in scenario sc: the
// run and its further rounds.
func tries(rep *report, t, sc string) []*run {
	k := key{t, sc, "rate"}
	var out []*run
	for _, r := range append([]*run{rep.Runs[k]}, rep.Rounds[k]...) {
		if r != nil && r.Res.Completed > 0 {
			out = append(out, r)
		}
	}
	return out
}

// maxTries is the most tries any target made in the scenarios.
func maxTries(rep *report, scenarios []string) int {
	n := 0
	for k, rs := range rep.Rounds {
		if k.Mode == "rate" && slices.Contains(scenarios, k.Scenario) {
			n = max(n, 1+len(rs))
		}
	}
	return n
}

// best is the try with the lowest p99; nil when there is none.
func best(rs []*run) *run {
	if len(rs) == 0 {
		return nil
	}
	return slices.MinFunc(rs, func(a, b *run) int { return cmp.Compare(a.Res.Latency.P99, b.Res.Latency.P99) })
}

// p50p99 formats the best try's p50 and p99 in µs, and with more than one
// try the highest p99 of them and their count; "-" without a try.
func p50p99(rs []*run) string {
	b := best(rs)
	if b == nil {
		return "-"
	}
	s := us(b.Res.Latency.P50) + " / " + us(b.Res.Latency.P99)
	if len(rs) > 1 {
		worst := slices.MaxFunc(rs, func(a, b *run) int { return cmp.Compare(a.Res.Latency.P99, b.Res.Latency.P99) })
		s += fmt.Sprintf(" [%s of %d]", us(worst.Res.Latency.P99), len(rs))
	}
	return s
}

// addedP99 formats r's p99 less base's, with the verdict against
// wantAddedP99us when checked; "-" when either run is missing. Below zero,
// the base's tail was longer than the one with a forwarder more in the
// path: the machine's noise, and said so.
func addedP99(r, base *run, checked bool) string {
	if r == nil || base == nil {
		return "-"
	}
	d := r.Res.Latency.P99 - base.Res.Latency.P99
	s := fmt.Sprintf("%+.0f µs%s", d, verdict(checked, d <= wantAddedP99us))
	if d < 0 {
		s += " (below: noise)"
	}
	return s
}
