package load

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// cpuWarnShare is the share of one core above which sipload warns that it
// may itself be the bottleneck.
const cpuWarnShare = 0.90

// Result is what one Run measured. Units are transactions (options,
// register) or calls.
type Result struct {
	Scenario  string  `json:"scenario"`
	Target    string  `json:"target"`
	Transport string  `json:"transport"` // udp or tcp
	Sockets   int     `json:"sockets"`
	Window    int     `json:"window,omitempty"` // closed loop
	Rate      float64 `json:"rate,omitempty"`   // open loop, units per second

	Sent      uint64 `json:"sent"`      // units started
	Completed uint64 `json:"completed"` // ended with a 2xx (a call: the BYE's 2xx)
	Failed    uint64 `json:"failed"`    // ended with a non-2xx final response
	Lost      uint64 `json:"lost"`      // timed out, or still outstanding at the end
	// FailedByStatus counts the failures per final status code ("486").
	FailedByStatus map[string]uint64 `json:"failed_by_status,omitempty"`
	Unmatched      uint64            `json:"unmatched"` // responses matching no outstanding transaction
	Invalid        uint64            `json:"invalid"`   // datagrams that were not SIP

	// Elapsed is the whole run, drain included; Active runs from the start
	// to the last completion and is what Throughput divides by.
	Elapsed    time.Duration `json:"elapsed_ns"`
	Active     time.Duration `json:"active_ns"`
	Throughput float64       `json:"throughput_per_s"`

	// Latency is first request → final response (a call: INVITE → 200);
	// ByeLatency is BYE → final response, calls only.
	Latency    Latency  `json:"latency"`
	ByeLatency *Latency `json:"bye_latency,omitempty"`

	Backends []BackendShare `json:"backends"` // by count, largest first

	CPU      time.Duration `json:"cpu_ns"`    // user + system time of the process during the run
	CPUShare float64       `json:"cpu_share"` // CPU / Elapsed: 1.0 is one core busy
}

// Latency summarises a latency histogram, in microseconds with a relative
// error under 1%.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p99_9_us"`
	Max   float64 `json:"max_us"`
}

// BackendShare is how many units one backend answered (host:port of the
// 2xx's Contact; "unknown" when it had none).
type BackendShare struct {
	Addr  string  `json:"addr"`
	Count uint64  `json:"count"`
	Share float64 `json:"share"` // of all units a backend answered
}

// OK reports whether every unit started was completed (and some were).
func (res *Result) OK() bool {
	return res.Sent > 0 && res.Completed == res.Sent
}

// result gathers the counters after every goroutine of the run has ended.
func (r *runner) result(end, cpu time.Duration) *Result {
	// Units still outstanding never got their answer.
	for _, s := range r.slots {
		s.mu.Lock()
		if s.phase != phaseIdle {
			r.lost.Add(1)
			s.phase = phaseIdle
		}
		s.mu.Unlock()
	}
	res := &Result{
		Scenario:  r.cfg.Scenario.String(),
		Target:    r.targetS,
		Sockets:   len(r.socks),
		Transport: r.cfg.Transport.String(),
		Sent:      r.started.Load(),
		Completed: r.completed.Load(),
		Failed:    r.failed.Load(),
		Lost:      r.lost.Load(),
		Elapsed:   end,
		CPU:       cpu,
	}
	if r.cfg.Rate > 0 {
		res.Rate = r.cfg.Rate
	} else {
		res.Window = r.cfg.Window
	}
	var setup, bye hist
	var status [700]uint64
	backends := map[string]uint64{}
	for _, sk := range r.socks {
		setup.merge(&sk.setup)
		bye.merge(&sk.bye)
		for i, n := range sk.status {
			status[i] += n
		}
		for _, b := range sk.backends {
			backends[b.addr] += b.count
		}
		res.Active = max(res.Active, sk.lastDone)
		res.Unmatched += sk.unmatched
		res.Invalid += sk.invalid
	}
	for code, n := range status {
		if n > 0 {
			if res.FailedByStatus == nil {
				res.FailedByStatus = map[string]uint64{}
			}
			res.FailedByStatus[strconv.Itoa(code)] = n
		}
	}
	if res.Active > 0 {
		res.Throughput = float64(res.Completed) / res.Active.Seconds()
	}
	if end > 0 {
		res.CPUShare = cpu.Seconds() / end.Seconds()
	}
	res.Latency = summarize(&setup)
	if r.cfg.Scenario == Call {
		l := summarize(&bye)
		res.ByeLatency = &l
	}
	var total uint64
	for _, n := range backends {
		total += n
	}
	for addr, n := range backends {
		if addr == "" {
			addr = "unknown"
		}
		res.Backends = append(res.Backends, BackendShare{Addr: addr, Count: n, Share: float64(n) / float64(total)})
	}
	slices.SortFunc(res.Backends, func(a, b BackendShare) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Addr, b.Addr))
	})
	return res
}

func summarize(h *hist) Latency {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	l := Latency{
		Count: h.n,
		P50:   us(h.quantile(0.50)),
		P99:   us(h.quantile(0.99)),
		P999:  us(h.quantile(0.999)),
		Max:   us(h.quantile(1)),
	}
	if h.n > 0 {
		l.Mean = float64(h.sum) / float64(h.n) / 1e3
	}
	return l
}

// WriteText writes the result for a person to read.
func (res *Result) WriteText(w io.Writer) error {
	unit, first := "transactions", "OPTIONS→2xx"
	switch res.Scenario {
	case "call":
		unit, first = "calls", "INVITE→200"
	case "register":
		first = "REGISTER→2xx"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	mode := fmt.Sprintf("closed loop, window %d", res.Window)
	if res.Rate > 0 {
		mode = fmt.Sprintf("open loop, %.0f/s", res.Rate)
	}
	fmt.Fprintf(tw, "scenario\t%s (%s, %s, %d sockets) → %s\n", res.Scenario, mode, res.Transport, res.Sockets, res.Target)
	fmt.Fprintf(tw, "sent\t%d %s\n", res.Sent, unit)
	fmt.Fprintf(tw, "completed\t%d\n", res.Completed)
	fmt.Fprintf(tw, "failed\t%d%s\n", res.Failed, failedDetail(res.FailedByStatus))
	fmt.Fprintf(tw, "lost\t%d (timeout)\n", res.Lost)
	if res.Unmatched > 0 || res.Invalid > 0 {
		fmt.Fprintf(tw, "unmatched\t%d responses, %d invalid datagrams\n", res.Unmatched, res.Invalid)
	}
	fmt.Fprintf(tw, "duration\t%s (active %s)\n", res.Elapsed.Round(time.Millisecond), res.Active.Round(time.Microsecond))
	fmt.Fprintf(tw, "throughput\t%.1f %s/s\n", res.Throughput, unit)
	writeLatency(tw, first, res.Latency)
	if res.ByeLatency != nil {
		writeLatency(tw, "BYE→200", *res.ByeLatency)
	}
	fmt.Fprintf(tw, "cpu\t%s user+sys, %.1f%% of one core\n", res.CPU.Round(time.Millisecond), 100*res.CPUShare)
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.CPUShare > cpuWarnShare {
		fmt.Fprintf(w, "WARNING: sipload used %.0f%% of one core; it may be the bottleneck of this run\n", 100*res.CPUShare)
	}
	fmt.Fprintln(w, "backends:")
	bw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, b := range res.Backends {
		fmt.Fprintf(bw, "  %s\t%d\t%.1f%%\t\n", b.Addr, b.Count, 100*b.Share)
	}
	if len(res.Backends) == 0 {
		fmt.Fprintln(bw, "  (none answered)")
	}
	return bw.Flush()
}

func writeLatency(w io.Writer, name string, l Latency) {
	fmt.Fprintf(w, "latency %s\tp50 %.1fµs  p99 %.1fµs  p99.9 %.1fµs  max %.1fµs  mean %.1fµs  (n=%d)\n",
		name, l.P50, l.P99, l.P999, l.Max, l.Mean, l.Count)
}

func failedDetail(by map[string]uint64) string {
	if len(by) == 0 {
		return ""
	}
	codes := make([]string, 0, len(by))
	for c := range by {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	s := " ("
	for i, c := range codes {
		if i > 0 {
			s += ", "
		}
		s += c + ": " + strconv.FormatUint(by[c], 10)
	}
	return s + ")"
}
