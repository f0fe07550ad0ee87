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

// wantCrossP99us is the most a TCP client's p99 in front of UDP backends
// (siplb_cross_tcp) may exceed the same client's in front of TCP backends
// (siplb_tcp) at the same open-loop rate (issue 15): crossing transports
// must cost no more than staying on one.
const wantCrossP99us = 100.0

// wantDefenceCost is the most siplb's edge defences (flood detector, scanner
// filter) may add to its CPU per message, as a share: siplb against
// siplb_open, the same configuration with them off.
const wantDefenceCost = 0.03

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
	fmt.Fprint(w, " forwarder CPU | sipecho CPU | sipload CPU | forwarder CPU µs/unit |\n")
	fmt.Fprint(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, mode := range modeOrder {
		for _, t := range targetOrder {
			r := rep.Runs[key{t, sc, mode}]
			if r == nil {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %d | %d |", loadLabel(r), t, r.Res.Throughput,
				us(r.Res.Latency.P50), us(r.Res.Latency.P99), us(r.Res.Latency.P999), r.Res.Lost, r.Res.Failed)
			for _, p := range []string{processOf[t], backendOf(t)} {
				c, ok := r.CPU[p]
				if !ok || p == "" {
					fmt.Fprint(w, " - |")
					continue
				}
				fmt.Fprintf(w, " %.0f%% |", 100*c.Share())
			}
			fmt.Fprintf(w, " %.0f%% |", 100*r.Res.CPUShare)
			fmt.Fprintf(w, " %s |\n", micros(r.fwdMicros()))
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

// micros formats a CPU cost per unit in µs; "-" when unknown.
func micros(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
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

// lineup names the targets one row of the ratio table compares; an empty
// name is absent.
type lineup struct {
	label                       string // the row's suffix after the scenario
	lb, kamailio, relay, direct string
	checked                     bool // siplb's targets apply
}

// lineups are the rows of the ratio table per scenario: over UDP, where
// siplb's targets apply, and over TCP.
var lineups = []lineup{
	{lb: "siplb", kamailio: "kamailio", relay: "relay", direct: "direct", checked: true},
	{label: " over TCP", lb: "siplb_tcp", kamailio: "kamailio_tcp", direct: "direct_tcp"},
}

func computeRatios(rep *report, sc string, l lineup) ratios {
	var q ratios
	get := func(t, mode string) *run {
		if t == "" {
			return nil
		}
		return rep.Runs[key{t, sc, mode}]
	}
	if lb := get(l.lb, "sat"); lb != nil {
		if k := get(l.kamailio, "sat"); k != nil {
			q.VsKamailio = div(lb.Res.Throughput, k.Res.Throughput)
			q.CPUKamailio = div(k.fwdMicros(), lb.fwdMicros())
		}
		if r := get(l.relay, "sat"); r != nil {
			q.VsRelay = div(lb.Res.Throughput, r.Res.Throughput)
			q.CPURelay = div(lb.fwdMicros(), r.fwdMicros())
		}
		if d := get(l.direct, "sat"); d != nil {
			q.VsDirect = div(lb.Res.Throughput, d.Res.Throughput)
		}
	}
	lr, dr := get(l.lb, "rate"), get(l.direct, "rate")
	if lr != nil && dr != nil && lr.Res.Completed > 0 && dr.Res.Completed > 0 {
		q.AddedP99 = lr.Res.Latency.P99 - dr.Res.Latency.P99
		q.HaveAdded = true
		q.Rate = lr.Res.Rate
	}
	return q
}

func div(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// hasRuns reports whether rep holds a run of target t in scenario sc.
func hasRuns(rep *report, t, sc string) bool {
	for _, mode := range modeOrder {
		if rep.Runs[key{t, sc, mode}] != nil {
			return true
		}
	}
	return false
}

// writeRatios writes siplb against the others, per scenario and transport,
// with the targets checked where they apply, then the UDP I/O comparison.
func writeRatios(w io.Writer, rep *report) {
	fmt.Fprintln(w, "### siplb against the others")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| scenario | siplb/kamailio (target ≥ %.1f×) | siplb/relay (target ≥ %.1f×) | siplb/direct | CPU per unit: kamailio÷siplb | CPU per unit: siplb÷relay | added p99 at the open-loop rate (target ≤ %.0f µs) |\n",
		wantVsKamailio, wantVsRelay, wantAddedP99us)
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for _, sc := range rep.Scenarios {
		for _, l := range lineups {
			if l.label != "" && !hasRuns(rep, l.lb, sc) {
				continue
			}
			q := computeRatios(rep, sc, l)
			checked := l.checked && targetScenarios[sc]
			added := "-"
			if q.HaveAdded {
				added = fmt.Sprintf("%+.0f µs at %.0f/s%s", q.AddedP99, q.Rate, verdict(checked, q.AddedP99 <= wantAddedP99us))
			}
			fmt.Fprintf(w, "| %s%s | %s | %s | %s | %s | %s | %s |\n", sc, l.label,
				times(q.VsKamailio, checked, q.VsKamailio >= wantVsKamailio),
				times(q.VsRelay, checked, q.VsRelay >= wantVsRelay),
				times(q.VsDirect, false, false),
				times(q.CPUKamailio, false, false),
				times(q.CPURelay, false, false),
				added)
		}
	}
	writeUDPIO(w, rep)
	writeDefences(w, rep)
	writeCross(w, rep)
	writeCapture(w, rep)
	writePinned(w, rep)
}

// writeCross writes siplb with a TCP client in front of UDP backends
// (siplb_cross_tcp) against TCP backends (siplb_tcp), at the open-loop rate
// of the scenarios that ran both, checked against wantCrossP99us; nothing
// when none did.
func writeCross(w io.Writer, rep *report) {
	header := false
	for _, sc := range rep.Scenarios {
		x, t := rep.Runs[key{"siplb_cross_tcp", sc, "rate"}], rep.Runs[key{"siplb_tcp", sc, "rate"}]
		if x == nil || t == nil || x.Res.Completed == 0 || t.Res.Completed == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\n### siplb across transports: TCP client to UDP backends against TCP to TCP")
			fmt.Fprintln(w)
			fmt.Fprintf(w, "| scenario | open-loop rate | p50 µs TCP→UDP | p50 µs TCP→TCP | p99 µs TCP→UDP | p99 µs TCP→TCP | p99 TCP→UDP − TCP→TCP (target ≤ %.0f µs) | CPU µs/unit TCP→UDP | CPU µs/unit TCP→TCP |\n", wantCrossP99us)
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
			header = true
		}
		d := x.Res.Latency.P99 - t.Res.Latency.P99
		fmt.Fprintf(w, "| %s | %.0f/s | %s | %s | %s | %s | %+.0f µs%s | %s | %s |\n", sc, x.Res.Rate,
			us(x.Res.Latency.P50), us(t.Res.Latency.P50), us(x.Res.Latency.P99), us(t.Res.Latency.P99),
			d, verdict(true, d <= wantCrossP99us), micros(x.fwdMicros()), micros(t.fwdMicros()))
	}
}

// writeUDPIO writes siplb's default batched UDP path (recvmmsg/sendmmsg)
// against gnet's one-datagram-a-syscall path (target siplb_gnet), for the
// scenarios that ran both; nothing when none did.
func writeUDPIO(w io.Writer, rep *report) {
	header := false
	for _, sc := range rep.Scenarios {
		b, g := rep.Runs[key{"siplb", sc, "sat"}], rep.Runs[key{"siplb_gnet", sc, "sat"}]
		if b == nil || g == nil {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\n### siplb's UDP I/O: batch (default) against gnet")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| scenario | batch per second | gnet per second | batch/gnet | batch CPU µs/unit | gnet CPU µs/unit | CPU per unit gnet÷batch | open-loop p99 batch | open-loop p99 gnet |")
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
			header = true
		}
		p99 := func(t string) string {
			if r := rep.Runs[key{t, sc, "rate"}]; r != nil && r.Res.Completed > 0 {
				return us(r.Res.Latency.P99) + " µs"
			}
			return "-"
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s |\n", sc, b.Res.Throughput, g.Res.Throughput,
			times(div(b.Res.Throughput, g.Res.Throughput), false, false), micros(b.fwdMicros()), micros(g.fwdMicros()),
			times(div(g.fwdMicros(), b.fwdMicros()), false, false), p99("siplb"), p99("siplb_gnet"))
	}
}

// writeDefences writes siplb as it runs by default, edge defences on,
// against siplb_open (the flood detector and the scanner filter off), for
// the scenarios that ran both at saturation: throughput, CPU per unit and
// what the defences add to it, checked against wantDefenceCost; the same
// cost at the open-loop rate where both ran it. Nothing when no scenario
// ran both.
func writeDefences(w io.Writer, rep *report) {
	writeOnOff(w, rep, "siplb's edge defences: on (default) against off", "siplb", "siplb_open", wantDefenceCost)
}

// writeOnOff writes target on against target off for the scenarios that
// ran both at saturation: throughput, CPU per unit and what on adds to it,
// checked against want (none when want < 0); the same at the open-loop
// rate where both ran it. Nothing when no scenario ran both.
func writeOnOff(w io.Writer, rep *report, title, onTarget, offTarget string, want float64) {
	header := false
	for _, sc := range rep.Scenarios {
		on, off := rep.Runs[key{onTarget, sc, "sat"}], rep.Runs[key{offTarget, sc, "sat"}]
		if on == nil || off == nil {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\n### "+title)
			fmt.Fprintln(w)
			target := ""
			if want >= 0 {
				target = fmt.Sprintf(" (target ≤ +%.0f %%)", 100*want)
			}
			fmt.Fprintf(w, "| scenario | on per second | off per second | on/off | on CPU µs/unit | off CPU µs/unit | CPU per unit on÷off − 1%s | open-loop CPU µs/unit on | open-loop CPU µs/unit off | open-loop on÷off − 1 |\n", target)
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
			header = true
		}
		satCost := "-"
		if cost, ok := extraCost(on, off); ok {
			satCost = percent(cost)
			if want >= 0 {
				satCost += verdict(true, cost <= want)
			}
		}
		onRate, offRate := rep.Runs[key{onTarget, sc, "rate"}], rep.Runs[key{offTarget, sc, "rate"}]
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

// extraCost is on's forwarder CPU per unit over off's, less one: what on
// adds per unit, as a share of off's; false when either is unknown.
func extraCost(on, off *run) (float64, bool) {
	a, b := on.fwdMicros(), off.fwdMicros()
	if a <= 0 || b <= 0 {
		return 0, false
	}
	return a/b - 1, true
}

// percent formats a share as a signed percentage with one decimal.
func percent(v float64) string {
	return fmt.Sprintf("%+.1f %%", 100*v)
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
				// The further rounds of an open-loop run (pinned runs)
				// are warned of as the first is.
				for i, rr := range append([]*run{r}, rep.Rounds[key{t, sc, mode}]...) {
					name := t + " " + sc + " " + loadLabel(rr)
					if i > 0 {
						name += fmt.Sprintf(" (round %d)", i+1)
					}
					out = append(out, oneRunWarnings(rr, name)...)
				}
			}
		}
	}
	return out
}

// oneRunWarnings are runWarnings' for one run, named name.
func oneRunWarnings(r *run, name string) []string {
	var out []string
	if r.Res.CPUShare > sipLoadWarnShare {
		out = append(out, fmt.Sprintf("%s: sipload used %.0f%% of a core; it may be the bottleneck of this run",
			name, 100*r.Res.CPUShare))
	}
	if r.Res.Lost > 0 || r.Res.Failed > 0 {
		out = append(out, fmt.Sprintf("%s: %d lost and %d failed of %d started", name, r.Res.Lost, r.Res.Failed, r.Res.Sent))
	}
	if r.Mode == "rate" && r.Res.Rate > 0 && r.Res.Throughput < 0.95*r.Res.Rate {
		out = append(out, fmt.Sprintf("%s: completed %.0f/s, below the offered rate (saturated)", name, r.Res.Throughput))
	}
	return out
}
