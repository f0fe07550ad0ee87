package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writePlots writes throughput.svg, cpu.svg and latency-SCENARIO.svg into
// dir and returns their names. A plot with nothing to show is skipped.
func writePlots(rep *report, dir string) ([]string, error) {
	var files []string
	var errs []error
	save := func(p *plot.Plot, name string, width vg.Length) {
		if p == nil {
			return
		}
		if err := p.Save(width, 4*vg.Inch, filepath.Join(dir, name)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		files = append(files, name)
	}
	p, err := barPlot(rep, "Throughput at saturation (closed loop)", "units per second", targetOrder,
		func(r *run) float64 { return r.Res.Throughput })
	errs = append(errs, err)
	save(p, "throughput.svg", 7*vg.Inch)
	p, err = barPlot(rep, "Forwarder CPU per unit at saturation", "µs of CPU per transaction or call",
		[]string{"relay", "siplb", "siplb_gnet", "siplb_open", "siplb_capture", "kamailio", "siplb_tcp", "siplb_cross_tcp", "kamailio_tcp"}, (*run).fwdMicros)
	errs = append(errs, err)
	save(p, "cpu.svg", 7*vg.Inch)
	for _, sc := range rep.Scenarios {
		p, err := latencyPlot(rep, sc)
		errs = append(errs, err)
		save(p, "latency-"+sc+".svg", 5*vg.Inch)
	}
	return files, errors.Join(errs...)
}

// barPlot groups one bar per target by scenario, from the saturation runs;
// nil when no run has a value.
func barPlot(rep *report, title, ylabel string, targets []string, value func(*run) float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	const width = 16
	shown, top := 0, 0.0
	for i, t := range targets {
		vals := make(plotter.Values, len(rep.Scenarios))
		seen := false
		for j, sc := range rep.Scenarios {
			if r := rep.Runs[key{t, sc, "sat"}]; r != nil {
				vals[j] = value(r)
				seen = seen || vals[j] > 0
				top = max(top, vals[j])
			}
		}
		if !seen {
			continue
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = vg.Length(float64(i)-float64(len(targets)-1)/2) * width
		p.Add(b)
		p.Legend.Add(t, b)
		shown++
	}
	if shown == 0 {
		return nil, nil
	}
	p.NominalX(rep.Scenarios...)
	// Room for the legend above the bars and for the outer bars' offsets.
	p.Y.Min, p.Y.Max = 0, top*1.3
	p.X.Min, p.X.Max = -0.7, float64(len(rep.Scenarios))-0.3
	p.Y.Tick.Marker = plot.TickerFunc(wholeTicks)
	return p, nil
}

// wholeTicks are the default ticks labelled without decimals.
func wholeTicks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

// latencyPlot draws p50, p99 and p99.9 of every target at the open-loop
// rate of one scenario, on a log scale; nil when there is no such run. A
// pinned target is drawn dashed, in the colour and shape of its unpinned
// one.
func latencyPlot(rep *report, sc string) (*plot.Plot, error) {
	p := plot.New()
	p.Y.Label.Text = "latency, µs (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	var rate float64
	for i, t := range targetOrder {
		r := rep.Runs[key{t, sc, "rate"}]
		if r == nil || r.Res.Completed == 0 {
			continue
		}
		rate = r.Res.Rate
		ps := []float64{r.Res.Latency.P50, r.Res.Latency.P99, r.Res.Latency.P999}
		if slices.Min(ps) <= 0 {
			continue
		}
		xys := make(plotter.XYs, len(ps))
		for k, v := range ps {
			xys[k] = plotter.XY{X: float64(k), Y: v}
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		style := i
		if base, pinned := strings.CutSuffix(t, pinSuffix); pinned {
			style = slices.Index(targetOrder, base)
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		l.Color = plotutil.Color(style)
		pts.Color = plotutil.Color(style)
		pts.Shape = plotutil.Shape(style)
		p.Add(l, pts)
		p.Legend.Add(t, l, pts)
	}
	if rate == 0 {
		return nil, nil
	}
	p.Title.Text = fmt.Sprintf("%s latency, open loop at %.0f/s", sc, rate)
	p.NominalX("p50", "p99", "p99.9")
	return p, nil
}
