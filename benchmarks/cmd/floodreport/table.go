package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// writeMarkdown writes the report: one column per phase, the verdicts, and
// the siplb series every sum was made of.
func writeMarkdown(w io.Writer, rep *Report) {
	fmt.Fprint(w, "## siplb under a flood\n\n|  |")
	for _, p := range rep.Phases {
		fmt.Fprintf(w, " %s |", phaseTitles[p.Name])
	}
	fmt.Fprint(w, "\n|---|")
	for range rep.Phases {
		fmt.Fprint(w, "--:|")
	}
	fmt.Fprintln(w)
	row := func(title string, cell func(p *Phase) string) {
		seen := false
		cells := make([]string, len(rep.Phases))
		for i, p := range rep.Phases {
			if cells[i] = cell(p); cells[i] == "" {
				cells[i] = "–"
			} else {
				seen = true
			}
		}
		if seen {
			fmt.Fprintf(w, "| %s | %s |\n", title, strings.Join(cells, " | "))
		}
	}
	calls := func(f func(c *Calls) string) func(p *Phase) string {
		return func(p *Phase) string {
			if p.Calls == nil {
				return ""
			}
			return f(p.Calls)
		}
	}
	row("legitimate calls started", calls(func(c *Calls) string {
		return fmt.Sprintf("%s (%s/s)", count(float64(c.Sent)), count(c.Rate))
	}))
	row("**calls completed**", calls(func(c *Calls) string { return fmt.Sprintf("**%.1f %%**", c.Success) }))
	row("calls failed / lost", calls(func(c *Calls) string { return fmt.Sprintf("%d / %d", c.Failed, c.Lost) }))
	row("call setup p50 (INVITE → 200)", calls(func(c *Calls) string { return ms(c.P50) }))
	row("**call setup p99**", calls(func(c *Calls) string { return "**" + ms(c.P99) + "**" }))
	row("flood messages sent", func(p *Phase) string {
		if p.FloodSent == nil {
			return ""
		}
		return fmt.Sprintf("%s (%s/s)", count(float64(*p.FloodSent)), count(*p.FloodPerSec))
	})
	row("**flood messages at the backends**", func(p *Phase) string {
		if p.FloodAtBackend == nil {
			return ""
		}
		s := count(float64(*p.FloodAtBackend))
		if p.FloodShare != nil {
			s += fmt.Sprintf(" (**%s**)", pct(*p.FloodShare))
		}
		return s
	})
	row("datagrams back to the flood's sources", func(p *Phase) string { return countp(p.FloodReplies) })
	row("siplb datagrams received", func(p *Phase) string { return countf(p.Received) })
	row("siplb datagrams forwarded", func(p *Phase) string { return countf(p.Forwarded) })
	row("siplb datagrams dropped", func(p *Phase) string { return countf(p.Dropped) })
	row("siplb stateless replies", func(p *Phase) string { return countf(p.Replied) })
	row("dropped, of the datagrams siplb handled", func(p *Phase) string {
		if p.Dropped == nil {
			return ""
		}
		if h := *p.Forwarded + *p.Dropped + *p.Replied; h > 0 {
			return pct(*p.Dropped / h)
		}
		return ""
	})
	row("siplb CPU", func(p *Phase) string {
		if p.CPUSeconds == nil {
			return ""
		}
		s := fmt.Sprintf("%.2f s", *p.CPUSeconds)
		if p.CPUShare != nil {
			s += fmt.Sprintf(" (%.0f %% of a core)", 100**p.CPUShare)
		}
		return s
	})
	row("siplb CPU per forwarded datagram", func(p *Phase) string { return us(p.CPUPerForwarded) })
	row("siplb CPU per dropped datagram", func(p *Phase) string { return us(p.CPUPerDropped) })
	row("siplb CPU per datagram handled", func(p *Phase) string { return us(p.CPUPerHandled) })
	row("kernel drops at siplb's sockets (buffer full)", func(p *Phase) string { return countf(p.SocketDrops) })
	row("kernel UDP receive-buffer drops (machine)", func(p *Phase) string { return countf(p.KernelDrops) })
	fmt.Fprintln(w)

	byName := map[string]*Phase{}
	for _, p := range rep.Phases {
		byName[p.Name] = p
	}
	base, fl, only := byName["baseline"], byName["flood"], byName["floodonly"]
	if base != nil && fl != nil && base.Calls != nil && fl.Calls != nil {
		fmt.Fprintf(w, "- Legitimate calls: %.1f %% completed, p99 %s alone; %.1f %% completed, p99 %s beside the flood.\n",
			base.Calls.Success, ms(base.Calls.P99), fl.Calls.Success, ms(fl.Calls.P99))
	}
	if rep.FloodShare != nil {
		verdict := "met"
		if !*rep.ShareMet {
			verdict = "NOT MET"
		}
		fmt.Fprintf(w, "- Flood at the backends: %s of what was sent, over the phases with a flood (target ≤ %s: %s).\n",
			pct(*rep.FloodShare), pct(shareTarget), verdict)
	}
	if only != nil && base != nil && only.CPUPerDropped != nil && base.CPUPerForwarded != nil {
		fmt.Fprintf(w, "- siplb CPU per dropped datagram (flood only) %s against %s per forwarded one (calls only): %.2f×. "+
			"Each is the phase's whole CPU over its drops or forwards: the first is an upper bound, close when drops are most of what siplb handled.\n",
			us(only.CPUPerDropped), us(base.CPUPerForwarded), *only.CPUPerDropped / *base.CPUPerForwarded)
	} else if only != nil && only.Dropped != nil && *only.Dropped == 0 {
		fmt.Fprintln(w, "- siplb dropped nothing in the flood-only phase: no CPU per dropped datagram.")
	}
	fmt.Fprintln(w, "\nsiplb counters used (change over each phase; classes by the words in the name):")
	fmt.Fprintln(w)
	for _, p := range rep.Phases {
		if len(p.Series) == 0 {
			continue
		}
		names := make([]string, 0, len(p.Series))
		for s := range p.Series {
			names = append(names, s)
		}
		slices.Sort(names)
		fmt.Fprintf(w, "- %s:", phaseTitles[p.Name])
		for _, s := range names {
			fmt.Fprintf(w, " `%s` %s %s;", s, p.Classes[s], count(p.Series[s]))
		}
		fmt.Fprintln(w)
	}
}

// count writes n with thousands separators.
func count(n float64) string {
	s := strconv.FormatFloat(n, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func countp(n *uint64) string {
	if n == nil {
		return ""
	}
	return count(float64(*n))
}

func countf(n *float64) string {
	if n == nil {
		return ""
	}
	return count(*n)
}

func ms(usec float64) string { return fmt.Sprintf("%.2f ms", usec/1000) }

func us(v *float64) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%.2f µs", *v)
}

func pct(share float64) string {
	switch {
	case share == 0:
		return "0 %"
	case share < 0.001:
		return fmt.Sprintf("%.4f %%", 100*share)
	}
	return fmt.Sprintf("%.2f %%", 100*share)
}
