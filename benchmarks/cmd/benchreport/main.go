// Command benchreport turns the files of one `make bench` run into the
// report: a Markdown table per scenario (throughput, latency percentiles,
// CPU of every process), the ratios siplb/Kamailio and siplb/relay checked
// against siplb's targets, siplb's UDP I/O paths side by side, the cost of
// its edge defences (siplb against siplb_open) checked against its budget,
// cross-transport forwarding (TCP client, UDP backends) against TCP to TCP,
// the pinned runs (the forwarder on its own core) beside the unpinned ones,
// warnings (a saturated sipload, lost units), and
// plots (throughput.svg, cpu.svg, latency-SCENARIO.svg) in the same folder.
//
//	benchreport -dir benchmarks/results/RUN [-plots=false]
//
// It reads what scripts/bench.sh writes into the folder:
//
//	machine.txt                  the machine and versions, printed first
//	TARGET-SCENARIO-MODE.json    sipload -json (MODE: sat or rate)
//	TARGET-SCENARIO-rate-K.json  round K (2, 3...) of a pinned comparison
//	TARGET-SCENARIO-MODE.cpu     "PROCESS CPU_SECONDS WALL_SECONDS" per line
//	rate-SCENARIO.txt            "RATE REFERENCE_TARGET" of the open loop
//	pin.txt                      how the pinned targets ran, or "skipped: WHY"
//	warnings.txt                 the script's own warnings
//
// The report goes to stdout; the exit status is 0 whenever the folder held
// at least one run, whether or not the targets were met.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Targets in the order of the table: over UDP, siplb with gnet's UDP path
// (siplb_gnet, against the default batched path), siplb with its edge
// defences off (siplb_open, against the default, which has them on), then
// over TCP (_tcp); siplb_cross_tcp is a TCP client in front of UDP
// backends (cross-transport, against siplb_tcp's TCP backends). The _pin
// targets are direct, relay, siplb and kamailio with the forwarder alone on
// one core and sipload with its own sipecho (sipecho_pin) on the other.
var (
	targetOrder = []string{"direct", "relay", "siplb", "siplb_gnet", "siplb_open", "siplb_capture", "kamailio",
		"direct_pin", "relay_pin", "siplb_pin", "kamailio_pin", "direct_tcp", "siplb_tcp", "siplb_cross_tcp", "kamailio_tcp"}
	modeOrder = []string{"sat", "rate"}
)

// processOf is the forwarding process of a target (its name in the .cpu
// files); direct and direct_tcp have none.
var processOf = map[string]string{
	"relay": "relay", "siplb": "siplb", "siplb_gnet": "siplb_gnet", "siplb_open": "siplb_open", "siplb_capture": "siplb_capture", "kamailio": "kamailio",
	"siplb_tcp": "siplb_tcp", "kamailio_tcp": "kamailio_tcp", "siplb_cross_tcp": "siplb_cross_tcp",
	"relay_pin": "relay_pin", "siplb_pin": "siplb_pin", "kamailio_pin": "kamailio_pin",
}

// backendOf is the name in the .cpu files of the backend emulator a target
// forwards to: the pinned targets have their own.
func backendOf(target string) string {
	if strings.HasSuffix(target, pinSuffix) {
		return "sipecho_pin"
	}
	return "sipecho"
}

// errNoRuns is returned when the folder holds no sipload results.
var errNoRuns = errors.New("no TARGET-SCENARIO-MODE.json files")

type latency struct {
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

// result is the part of sipload's -json that the report reads.
type result struct {
	Sent       uint64  `json:"sent"`
	Completed  uint64  `json:"completed"`
	Failed     uint64  `json:"failed"`
	Lost       uint64  `json:"lost"`
	Window     int     `json:"window"`
	Rate       float64 `json:"rate"`
	Throughput float64 `json:"throughput_per_s"`
	Latency    latency `json:"latency"`
	CPUShare   float64 `json:"cpu_share"`
}

// cpuUse is the CPU one process (with its children) used over one sipload run.
type cpuUse struct {
	Seconds float64 // user + system
	Wall    float64 // the run's wall-clock time
}

// Share is CPU as a share of one core.
func (c cpuUse) Share() float64 {
	if c.Wall <= 0 {
		return 0
	}
	return c.Seconds / c.Wall
}

// run is one sipload run against one target.
type run struct {
	Target, Scenario, Mode string
	Res                    result
	CPU                    map[string]cpuUse // by process
}

// fwdMicros is the forwarder's CPU per completed unit, in µs; 0 when unknown.
func (r *run) fwdMicros() float64 {
	c, ok := r.CPU[processOf[r.Target]]
	if !ok || r.Res.Completed == 0 {
		return 0
	}
	return c.Seconds / float64(r.Res.Completed) * 1e6
}

// report is everything read from one results folder.
type report struct {
	Machine   string
	Warnings  []string
	Runs      map[key]*run
	Scenarios []string // in the order of the script's SCENARIOS
	Rates     map[string]string
	Rounds    map[key][]*run // rounds 2, 3... of an open-loop run (key's Mode: rate), by the pinned comparison
	Pin       string         // pin.txt: how the pinned targets ran, or "skipped: WHY"; empty: no pinned runs asked for
}

type key struct{ Target, Scenario, Mode string }

func main() {
	dir := flag.String("dir", ".", "results folder of one run")
	plots := flag.Bool("plots", true, "write the SVG plots into -dir")
	flag.Parse()
	rep, err := readReport(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	var files []string
	if *plots {
		if files, err = writePlots(rep, *dir); err != nil {
			rep.Warnings = append(rep.Warnings, "plots: "+err.Error())
		}
	}
	writeReport(os.Stdout, rep)
	if len(files) > 0 {
		fmt.Printf("\nPlots: %s\n", strings.Join(files, ", "))
	}
}

// readReport reads the results folder dir.
func readReport(dir string) (*report, error) {
	rep := &report{Runs: map[key]*run{}, Rates: map[string]string{}, Rounds: map[key][]*run{}}
	if b, err := os.ReadFile(filepath.Join(dir, "machine.txt")); err == nil {
		rep.Machine = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "pin.txt")); err == nil {
		rep.Pin = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "warnings.txt")); err == nil {
		for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				rep.Warnings = append(rep.Warnings, l)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*-*-*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(f), ".json"), "-")
		round := 1
		if len(parts) == 4 && parts[2] == "rate" {
			if round, err = strconv.Atoi(parts[3]); err != nil || round < 2 {
				continue
			}
			parts = parts[:3]
		}
		if len(parts) != 3 || !slices.Contains(modeOrder, parts[2]) {
			continue
		}
		r := &run{Target: parts[0], Scenario: parts[1], Mode: parts[2]}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &r.Res); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if r.CPU, err = readCPU(strings.TrimSuffix(f, ".json") + ".cpu"); err != nil {
			return nil, err
		}
		if round > 1 {
			k := key{r.Target, r.Scenario, r.Mode}
			rep.Rounds[k] = append(rep.Rounds[k], r)
			continue
		}
		rep.Runs[key{r.Target, r.Scenario, r.Mode}] = r
		if !slices.Contains(rep.Scenarios, r.Scenario) {
			rep.Scenarios = append(rep.Scenarios, r.Scenario)
		}
		if r.Mode == "rate" {
			if b, err := os.ReadFile(filepath.Join(dir, "rate-"+r.Scenario+".txt")); err == nil {
				rep.Rates[r.Scenario] = strings.TrimSpace(string(b))
			}
		}
	}
	if len(rep.Runs) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, errNoRuns)
	}
	slices.SortStableFunc(rep.Scenarios, func(a, b string) int { return scenarioRank(a) - scenarioRank(b) })
	return rep, nil
}

func scenarioRank(s string) int {
	switch s {
	case "options":
		return 0
	case "call":
		return 1
	case "register":
		return 2
	}
	return 3
}

// readCPU reads a .cpu file; a missing file is no CPU figures, not an error.
func readCPU(path string) (map[string]cpuUse, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]cpuUse{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s:%d: want PROCESS CPU_SECONDS WALL_SECONDS", path, line)
		}
		cpu, err1 := strconv.ParseFloat(fields[1], 64)
		wall, err2 := strconv.ParseFloat(fields[2], 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		m[fields[0]] = cpuUse{Seconds: cpu, Wall: wall}
	}
	return m, sc.Err()
}

// writeReport writes the Markdown report.
func writeReport(w io.Writer, rep *report) {
	if rep.Machine != "" {
		fmt.Fprintln(w, "```")
		fmt.Fprintln(w, rep.Machine)
		fmt.Fprintln(w, "```")
		fmt.Fprintln(w)
	}
	for _, sc := range rep.Scenarios {
		writeTable(w, rep, sc)
	}
	writeRatios(w, rep)
	warnings := append(slices.Clone(rep.Warnings), runWarnings(rep)...)
	if len(warnings) > 0 {
		fmt.Fprintln(w, "\nWarnings:")
		for _, s := range warnings {
			fmt.Fprintln(w, "- "+s)
		}
	}
}
