package main

import (
	"fmt"
	"io"
	"strings"
)

// siplb's targets (issue 5): against Kamailio and the raw relay in the same
// run, for OPTIONS and calls; added latency at the open-loop rate.
const (
	wantVsKamailio = 2.0
	wantVsRelay    = 0.8
	wantAddedP99us = 1000.0
)

// targetScenarios are the scenarios the targets apply to.
var targetScenarios = map[string]bool{"options": true, "call": true}

// sipLoadWarnShare is sipload's CPU share above which it may be the
// bottleneck of a run.
const sipLoadWarnShare = 0.9

// writeTable writes the rows of one scenario: every target at saturation,
// then every target at the open-loop rate.
func writeTable(w io.Writer, rep *report, sc string) {
	fmt.Fprintf(w, "### %s\n\n", sc)
	if rate, ref, ok := strings.Cut(rep.Rates[sc], " "); ok {
		fmt.Fprintf(w, "Open loop at %s/s, a share (RATE_SHARE) of %s's saturation rate, the same for every target.\n\n", rate, ref)
	}
	fmt.Fprint(w, "| load | target | per second | p50 µs | p99 µs | p99.9 µs | lost | failed |")
	for _, p := range processOrder {
		fmt.Fprintf(w, " %s CPU |", p)
	}
	fmt.Fprint(w, " sipload CPU | forwarder CPU µs/unit |\n|---|---|--:|--:|--:|--:|--:|--:|")
	fmt.Fprint(w, strings.Repeat("--:|", len(processOrder)+2), "\n")
	for _, mode := range modeOrder {
		for _, t := range targetOrder {
			r := rep.Runs[key{t, sc, mode}]
			if r == nil {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %d | %d |", loadLabel(r), t, r.Res.Throughput,
				us(r.Res.Latency.P50), us(r.Res.Latency.P99), us(r.Res.Latency.P999), r.Res.Lost, r.Res.Failed)
			for _, p := range processOrder {
				c, ok := r.CPU[p]
				if !ok {
					fmt.Fprint(w, " - |")
					continue
				}
				fmt.Fprintf(w, " %.0f%% |", 100*c.Share())
			}
			fmt.Fprintf(w, " %.0f%% |", 100*r.Res.CPUShare)
			if m := r.fwdMicros(); m > 0 {
				fmt.Fprintf(w, " %.1f |\n", m)
			} else {
				fmt.Fprint(w, " - |\n")
			}
		}
	}
	fmt.Fprintln(w)
}

// loadLabel names how a run was loaded: a closed loop at saturation or an
// open loop at a fixed rate.
func loadLabel(r *run) string {
	if r.Mode == "rate" {
		return fmt.Sprintf("open %.0f/s", r.Res.Rate)
	}
	if r.Res.Window > 0 {
		return fmt.Sprintf("saturation (window %d)", r.Res.Window)
	}
	return "saturation"
}

// us formats a latency in µs: one decimal below 100.
func us(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// ratios are siplb's figures relative to the other targets in one scenario;
// a zero field is unknown (a target missing from the run).
type ratios struct {
	VsKamailio, VsRelay, VsDirect float64 // throughput at saturation
	CPUKamailio, CPURelay         float64 // forwarder CPU per unit: kamailio÷siplb, siplb÷relay
	AddedP99                      float64 // µs, siplb − direct at the open-loop rate
	HaveAdded                     bool
	Rate                          float64
}

func computeRatios(rep *report, sc string) ratios {
	var q ratios
	get := func(t, mode string) *run { return rep.Runs[key{t, sc, mode}] }
	lb := get("siplb", "sat")
	div := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return a / b
	}
	if lb != nil {
		if k := get("kamailio", "sat"); k != nil {
			q.VsKamailio = div(lb.Res.Throughput, k.Res.Throughput)
			q.CPUKamailio = div(k.fwdMicros(), lb.fwdMicros())
		}
		if r := get("relay", "sat"); r != nil {
			q.VsRelay = div(lb.Res.Throughput, r.Res.Throughput)
			q.CPURelay = div(lb.fwdMicros(), r.fwdMicros())
		}
		if d := get("direct", "sat"); d != nil {
			q.VsDirect = div(lb.Res.Throughput, d.Res.Throughput)
		}
	}
	lr, dr := get("siplb", "rate"), get("direct", "rate")
	if lr != nil && dr != nil && lr.Res.Completed > 0 && dr.Res.Completed > 0 {
		q.AddedP99 = lr.Res.Latency.P99 - dr.Res.Latency.P99
		q.HaveAdded = true
		q.Rate = lr.Res.Rate
	}
	return q
}

// writeRatios writes siplb against the others, per scenario, with the
// targets checked where they apply.
func writeRatios(w io.Writer, rep *report) {
	fmt.Fprintln(w, "### siplb against the others")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| scenario | siplb/kamailio (target ≥ %.1f×) | siplb/relay (target ≥ %.1f×) | siplb/direct | CPU per unit: kamailio÷siplb | CPU per unit: siplb÷relay | added p99 at the open-loop rate (target ≤ %.0f µs) |\n",
		wantVsKamailio, wantVsRelay, wantAddedP99us)
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for _, sc := range rep.Scenarios {
		q := computeRatios(rep, sc)
		checked := targetScenarios[sc]
		added := "-"
		if q.HaveAdded {
			added = fmt.Sprintf("%+.0f µs at %.0f/s%s", q.AddedP99, q.Rate, verdict(checked, q.AddedP99 <= wantAddedP99us))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", sc,
			times(q.VsKamailio, checked, q.VsKamailio >= wantVsKamailio),
			times(q.VsRelay, checked, q.VsRelay >= wantVsRelay),
			times(q.VsDirect, false, false),
			times(q.CPUKamailio, false, false),
			times(q.CPURelay, false, false),
			added)
	}
}

// times formats a ratio, with the verdict when a target applies.
func times(v float64, checked, met bool) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×%s", v, verdict(checked, met))
}

func verdict(checked, met bool) string {
	switch {
	case !checked:
		return ""
	case met:
		return " ✓"
	}
	return " ✗ MISS"
}

// runWarnings flags the runs whose figures need care: a sipload that may
// have been the bottleneck, units lost or failed, an open loop not kept up.
func runWarnings(rep *report) []string {
	var out []string
	for _, sc := range rep.Scenarios {
		for _, mode := range modeOrder {
			for _, t := range targetOrder {
				r := rep.Runs[key{t, sc, mode}]
				if r == nil {
					continue
				}
				name := t + " " + sc + " " + loadLabel(r)
				if r.Res.CPUShare > sipLoadWarnShare {
					out = append(out, fmt.Sprintf("%s: sipload used %.0f%% of a core; it may be the bottleneck of this run",
						name, 100*r.Res.CPUShare))
				}
				if r.Res.Lost > 0 || r.Res.Failed > 0 {
					out = append(out, fmt.Sprintf("%s: %d lost and %d failed of %d started", name, r.Res.Lost, r.Res.Failed, r.Res.Sent))
				}
				if mode == "rate" && r.Res.Rate > 0 && r.Res.Throughput < 0.95*r.Res.Rate {
					out = append(out, fmt.Sprintf("%s: completed %.0f/s, below the offered rate (saturated)", name, r.Res.Throughput))
				}
			}
		}
	}
	return out
}
