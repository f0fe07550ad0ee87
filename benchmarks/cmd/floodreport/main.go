// Command floodreport turns the files of one `make bench-flood` run into its
// report: legitimate calls with and without a flood beside them, the share
// of the flood that reached the backends, and siplb's CPU per dropped
// datagram against per forwarded one.
//
//	floodreport -dir benchmarks/results/flood-RUN
//
// It reads what scripts/bench-flood.sh writes, per phase (baseline: calls
// only; flood: calls and the flood; floodonly: the flood only), each file
// optional:
//
//	PHASE.sipload.json          sipload -json
//	PHASE.sipflood.json         sipflood -json
//	PHASE.metrics.0, .1         siplb's /metrics before and after
//	PHASE.echo.0.json, .1.json  sipecho's -stats before and after (SIGUSR1)
//	PHASE.cpu                   "TICKS_BEFORE TICKS_AFTER CLK_TCK WALL_SECONDS" of siplb
//	PHASE.snmp.0, .1            /proc/net/snmp before and after
//	PHASE.udp.0, .1             /proc/net/udp (and udp6) before and after: the
//	                            drops of siplb's sockets, found by the port of
//	                            the target in PHASE.sipflood.json or sipload.json
//
// siplb's counters are read generically (see class): whatever siplb_*
// counters exist are summed by the words in their names, and the series
// used are listed in the report. It writes report.json and report.md in the
// folder and prints report.md; the exit status is 0 when at least one phase
// was found, whether or not the target (≤ 1 % of the flood at the
// backends) was met.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// phases, in the order of the table.
var phases = []string{"baseline", "flood", "floodonly"}

// phaseTitles head the table's columns.
var phaseTitles = map[string]string{"baseline": "calls only", "flood": "calls + flood", "floodonly": "flood only"}

// shareTarget is the most of the flood that may reach the backends.
const shareTarget = 0.01

var errNoPhases = errors.New("no phase files (baseline.*, flood.*, floodonly.*)")

// Phase is what one phase measured; pointers are nil where its files were
// missing.
type Phase struct {
	Name string `json:"name"`

	Calls *Calls `json:"calls,omitempty"` // the legitimate load

	FloodSent      *uint64  `json:"flood_sent,omitempty"`
	FloodPerSec    *float64 `json:"flood_sent_per_s,omitempty"`
	FloodReplies   *uint64  `json:"flood_replies,omitempty"` // datagrams back to the flood's sources
	FloodAtBackend *uint64  `json:"flood_at_backends,omitempty"`
	FloodShare     *float64 `json:"flood_share_at_backends,omitempty"` // FloodAtBackend ÷ FloodSent

	Forwarded *float64           `json:"siplb_forwarded,omitempty"` // datagrams, the cForwarded counters
	Dropped   *float64           `json:"siplb_dropped,omitempty"`
	Received  *float64           `json:"siplb_received,omitempty"`
	Replied   *float64           `json:"siplb_replied,omitempty"`
	Series    map[string]float64 `json:"siplb_series,omitempty"` // every classed series that moved, by class
	Classes   map[string]string  `json:"siplb_series_class,omitempty"`

	CPUSeconds *float64 `json:"siplb_cpu_s,omitempty"`
	CPUShare   *float64 `json:"siplb_cpu_share,omitempty"` // of one core
	// CPU per datagram, µs: per forwarded one, per dropped one, and per
	// handled one (forwarded + dropped + replied).
	CPUPerForwarded *float64 `json:"siplb_cpu_us_per_forwarded,omitempty"`
	CPUPerDropped   *float64 `json:"siplb_cpu_us_per_dropped,omitempty"`
	CPUPerHandled   *float64 `json:"siplb_cpu_us_per_handled,omitempty"`

	KernelDrops *float64 `json:"udp_rcvbuf_errors,omitempty"` // /proc/net/snmp Udp RcvbufErrors, machine-wide
	// SocketDrops are the datagrams the kernel dropped at siplb's sockets
	// because their receive buffers were full: the flood's, the calls' and
	// the backends' answers alike (siplb reads them all on those sockets).
	SocketDrops *float64 `json:"siplb_socket_drops,omitempty"`
}

// Calls is the part of sipload's result the report keeps.
type Calls struct {
	Sent      uint64  `json:"sent"`
	Completed uint64  `json:"completed"`
	Failed    uint64  `json:"failed"`
	Lost      uint64  `json:"lost"`
	Rate      float64 `json:"rate"`
	Success   float64 `json:"success_pct"`
	P50       float64 `json:"p50_us"`
	P99       float64 `json:"p99_us"`
}

// Report is report.json.
type Report struct {
	Phases []*Phase `json:"phases"`
	// Verdict: the share of the flood at the backends over the phases with
	// a flood, and whether it is within shareTarget.
	FloodShare *float64 `json:"flood_share_at_backends,omitempty"`
	ShareMet   *bool    `json:"share_target_met,omitempty"`
}

func main() {
	dir := flag.String("dir", "", "the results folder of one bench-flood run")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "floodreport: give -dir")
		os.Exit(2)
	}
	if err := run(*dir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "floodreport:", err)
		os.Exit(1)
	}
}

func run(dir string, stdout io.Writer) error {
	rep, err := load(dir)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	writeMarkdown(&md, rep)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, md.String())
	return err
}

// load reads every phase found in dir.
func load(dir string) (*Report, error) {
	rep := &Report{}
	var sent, at uint64
	flooded := false
	for _, name := range phases {
		p, found, err := loadPhase(dir, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if !found {
			continue
		}
		rep.Phases = append(rep.Phases, p)
		if p.FloodSent != nil && p.FloodAtBackend != nil {
			flooded = true
			sent += *p.FloodSent
			at += *p.FloodAtBackend
		}
	}
	if len(rep.Phases) == 0 {
		return nil, errNoPhases
	}
	if flooded && sent > 0 {
		share := float64(at) / float64(sent)
		met := share <= shareTarget
		rep.FloodShare, rep.ShareMet = &share, &met
	}
	return rep, nil
}

func ptr[T any](v T) *T { return &v }

// loadPhase reads one phase's files; found is false when there are none.
func loadPhase(dir, name string) (*Phase, bool, error) {
	path := func(suffix string) string { return filepath.Join(dir, name+"."+suffix) }
	p := &Phase{Name: name}
	found := false

	var sl struct {
		Target                        string
		Sent, Completed, Failed, Lost uint64
		Rate                          float64
		Latency                       struct {
			P50 float64 `json:"p50_us"`
			P99 float64 `json:"p99_us"`
		}
	}
	if ok, err := readJSON(path("sipload.json"), &sl); err != nil {
		return nil, false, err
	} else if ok {
		found = true
		c := &Calls{Sent: sl.Sent, Completed: sl.Completed, Failed: sl.Failed, Lost: sl.Lost, Rate: sl.Rate,
			P50: sl.Latency.P50, P99: sl.Latency.P99}
		if sl.Sent > 0 {
			c.Success = 100 * float64(sl.Completed) / float64(sl.Sent)
		}
		p.Calls = c
	}

	var fl struct {
		Target  string  `json:"target"`
		Sent    uint64  `json:"sent"`
		PerSec  float64 `json:"sent_per_s"`
		Replies uint64  `json:"replies"`
	}
	if ok, err := readJSON(path("sipflood.json"), &fl); err != nil {
		return nil, false, err
	} else if ok {
		found = true
		p.FloodSent, p.FloodPerSec, p.FloodReplies = &fl.Sent, &fl.PerSec, &fl.Replies
	}

	var e0, e1 map[string]map[string]uint64
	ok0, err := readJSON(path("echo.0.json"), &e0)
	if err != nil {
		return nil, false, err
	}
	ok1, err := readJSON(path("echo.1.json"), &e1)
	if err != nil {
		return nil, false, err
	}
	if ok0 && ok1 && p.FloodSent != nil {
		at := floodOf(e1) - min(floodOf(e0), floodOf(e1))
		p.FloodAtBackend = &at
		if *p.FloodSent > 0 {
			p.FloodShare = ptr(float64(at) / float64(*p.FloodSent))
		}
	}

	m0, ok0, err := readCounters(path("metrics.0"))
	if err != nil {
		return nil, false, err
	}
	m1, ok1, err := readCounters(path("metrics.1"))
	if err != nil {
		return nil, false, err
	}
	if ok0 && ok1 {
		found = true
		d := delta(m0, m1)
		by, used := sums(d)
		p.Forwarded, p.Dropped = ptr(by[cForwarded]), ptr(by[cDropped])
		p.Received, p.Replied = ptr(by[cReceived]), ptr(by[cReplied])
		p.Series, p.Classes = map[string]float64{}, map[string]string{}
		for _, s := range used {
			p.Series[s] = d[s]
			p.Classes[s] = classOf(s).String()
		}
	}

	if cpu, wall, ok, err := readCPU(path("cpu")); err != nil {
		return nil, false, err
	} else if ok {
		found = true
		p.CPUSeconds = &cpu
		if wall > 0 {
			p.CPUShare = ptr(cpu / wall)
		}
		per := func(n *float64) *float64 {
			if n == nil || *n <= 0 {
				return nil
			}
			return ptr(cpu * 1e6 / *n)
		}
		p.CPUPerForwarded, p.CPUPerDropped = per(p.Forwarded), per(p.Dropped)
		if p.Forwarded != nil {
			p.CPUPerHandled = per(ptr(*p.Forwarded + *p.Dropped + *p.Replied))
		}
	}

	s0, ok0, err := readSNMP(path("snmp.0"))
	if err != nil {
		return nil, false, err
	}
	s1, ok1, err := readSNMP(path("snmp.1"))
	if err != nil {
		return nil, false, err
	}
	if ok0 && ok1 {
		p.KernelDrops = ptr(s1 - s0)
	}

	target := fl.Target
	if target == "" {
		target = sl.Target
	}
	if ap, err := netip.ParseAddrPort(target); err == nil {
		u0, ok0, err := readSocketDrops(path("udp.0"), ap.Port())
		if err != nil {
			return nil, false, err
		}
		u1, ok1, err := readSocketDrops(path("udp.1"), ap.Port())
		if err != nil {
			return nil, false, err
		}
		if ok0 && ok1 {
			p.SocketDrops = ptr(u1 - u0)
		}
	}
	return p, found, nil
}

// readSocketDrops sums the drops column of the sockets bound to port in a
// copy of /proc/net/udp (and udp6, appended); false when the file is
// missing or no socket has that port.
func readSocketDrops(file string, port uint16) (float64, bool, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	want := fmt.Sprintf(":%04X", port)
	var sum float64
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		// sl local_address rem_address st … drops: 13 columns at least.
		if len(f) < 13 || f[0] == "sl" || !strings.HasSuffix(f[1], want) {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: drops %q: %w", file, f[len(f)-1], err)
		}
		sum += v
		found = true
	}
	return sum, found, nil
}

// floodOf sums the "flood" counters over a sipecho -stats snapshot.
func floodOf(st map[string]map[string]uint64) uint64 {
	var n uint64
	for _, per := range st {
		n += per["flood"]
	}
	return n
}

// readJSON decodes file into v; false when the file does not exist.
func readJSON(file string, v any) (bool, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	return true, nil
}

func readCounters(file string) (counters, bool, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	c, err := parseCounters(f)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", file, err)
	}
	return c, true, nil
}

// readCPU reads "TICKS_BEFORE TICKS_AFTER CLK_TCK WALL_SECONDS" and returns
// the CPU seconds and the wall time.
func readCPU(file string) (cpu, wall float64, ok bool, err error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	f := strings.Fields(string(b))
	if len(f) != 4 {
		return 0, 0, false, fmt.Errorf("%s: want 4 fields, got %q", file, b)
	}
	var v [4]float64
	for i, s := range f {
		if v[i], err = strconv.ParseFloat(s, 64); err != nil {
			return 0, 0, false, fmt.Errorf("%s: %w", file, err)
		}
	}
	if v[2] <= 0 {
		return 0, 0, false, fmt.Errorf("%s: CLK_TCK %v", file, v[2])
	}
	return (v[1] - v[0]) / v[2], v[3], true, nil
}

// readSNMP returns Udp RcvbufErrors from a copy of /proc/net/snmp.
func readSNMP(file string) (float64, bool, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var names []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					return 0, false, fmt.Errorf("%s: %w", file, err)
				}
				return v, true, nil
			}
		}
		return 0, false, nil
	}
	return 0, false, nil
}
