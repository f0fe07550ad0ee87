// Command benchreport prints the table of a `make bench` run: for each
// scenario, sipload's results straight to a backend and through siplb, read
// from the -json files of one run, with the ratio.
//
//	benchreport -dir benchmarks/results/RUN options call
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type latency struct {
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
}

type result struct {
	Completed  uint64  `json:"completed"`
	Failed     uint64  `json:"failed"`
	Lost       uint64  `json:"lost"`
	Throughput float64 `json:"throughput_per_s"`
	Latency    latency `json:"latency"`
	CPUShare   float64 `json:"cpu_share"`
}

func main() {
	dir := flag.String("dir", ".", "folder with direct-SCENARIO.json, siplb-SCENARIO.json and siplb-SCENARIO.cpu")
	flag.Parse()
	fmt.Printf("%-9s %-7s %12s %9s %9s %10s %8s %8s %10s\n",
		"scenario", "path", "per second", "p50 µs", "p99 µs", "p99.9 µs", "lost", "failed", "siplb CPU")
	for _, sc := range flag.Args() {
		direct, err1 := load(filepath.Join(*dir, "direct-"+sc+".json"))
		lb, err2 := load(filepath.Join(*dir, "siplb-"+sc+".json"))
		if err1 != nil || err2 != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", sc, err1, err2)
			os.Exit(1)
		}
		cpu := "-"
		if b, err := os.ReadFile(filepath.Join(*dir, "siplb-"+sc+".cpu")); err == nil {
			if v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil {
				cpu = fmt.Sprintf("%.0f%%", v*100)
			}
		}
		row(sc, "direct", direct, "-")
		row(sc, "siplb", lb, cpu)
		if direct.Throughput > 0 {
			fmt.Printf("%-9s %-7s %11.2fx\n", sc, "ratio", lb.Throughput/direct.Throughput)
		}
	}
}

func row(sc, path string, r result, cpu string) {
	fmt.Printf("%-9s %-7s %12.0f %9.0f %9.0f %10.0f %8d %8d %10s\n",
		sc, path, r.Throughput, r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Lost, r.Failed, cpu)
}

func load(path string) (result, error) {
	var r result
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}
