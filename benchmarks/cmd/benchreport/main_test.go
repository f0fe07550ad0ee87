package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fixture is one sipload run written into a results folder.
type fixture struct {
	target, scenario, mode string
	res                    result
	cpu                    string // the .cpu file; empty: none
}

func sat(t, sc string, perSec float64, completed uint64, cpu string) fixture {
	return fixture{target: t, scenario: sc, mode: "sat", cpu: cpu, res: result{
		Sent: completed, Completed: completed, Window: 200, Throughput: perSec, CPUShare: 0.5,
		Latency: latency{P50: 300, P99: 900, P999: 1500},
	}}
}

// withCPU gives f a .cpu file.
func withCPU(f fixture, cpu string) fixture {
	f.cpu = cpu
	return f
}

func open(t, sc string, p99 float64) fixture {
	return fixture{target: t, scenario: sc, mode: "rate", res: result{
		Sent: 1000, Completed: 1000, Rate: 5000, Throughput: 5000, CPUShare: 0.2,
		Latency: latency{P50: 60, P99: p99, P999: p99 * 2},
	}}
}

func writeDir(t *testing.T, fs []fixture, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range fs {
		b, err := json.Marshal(f.res)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Join(dir, f.target+"-"+f.scenario+"-"+f.mode)
		if err := os.WriteFile(base+".json", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if f.cpu != "" {
			if err := os.WriteFile(base+".cpu", []byte(f.cpu), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, s := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReport(t *testing.T) {
	// 40000 units in 4 s: siplb used 0.4 s (10 µs/unit), kamailio 1.2 s
	// on 20000 units (60 µs/unit), the relay 0.32 s on 40000 (8 µs/unit).
	full := []fixture{
		sat("direct", "options", 12000, 48000, "sipecho 1.0 4.0\n"),
		sat("relay", "options", 11000, 44000, "sipecho 1.0 4.0\nrelay 0.352 4.0\n"),
		sat("siplb", "options", 10000, 40000, "sipecho 1.0 4.0\nsiplb 0.4 4.0\n"),
		sat("kamailio", "options", 4000, 20000, "sipecho 1.0 4.0\nkamailio 1.2 4.0\n"),
		open("direct", "options", 200),
		open("siplb", "options", 700),
		sat("siplb", "call", 3000, 9000, "siplb 0.2 3.0\n"),
		sat("kamailio", "call", 2000, 6000, "kamailio 0.3 3.0\n"),
		open("direct", "call", 200),
		open("siplb", "call", 1800),
	}
	tests := []struct {
		name    string
		fs      []fixture
		extra   map[string]string
		want    []string
		notWant []string
	}{
		{
			name:  "all targets",
			fs:    full,
			extra: map[string]string{"machine.txt": "cpu: Test CPU\ncores: 2\n", "rate-options.txt": "5000 siplb\n"},
			want: []string{
				"cpu: Test CPU",
				"### options", "### call",
				"Open loop at 5000/s, a share (RATE_SHARE) of siplb's saturation rate",
				"| saturation (window 200) | siplb | 10000 | 300 | 900 | 1500 | 0 | 0 | 10% | 25% | 50% | 10.0 |",
				"| open 5000/s | direct | 5000 | 60.0 | 200 | 400 | 0 | 0 |",
				"| options | 2.50× ✓ | 0.91× ✓ | 0.83× | 6.00× | 1.25× | +500 µs at 5000/s ✓ |",
				"| call | 1.50× ✗ MISS | - | - | 2.25× | - | +1600 µs at 5000/s ✗ MISS |",
			},
			notWant: []string{"Warnings:", "over TCP", "batch (default) against gnet", "edge defences", "across transports"},
		},
		{
			name: "tcp rows and udp i/o",
			fs: append(slices.Clone(full),
				sat("siplb_gnet", "options", 8000, 32000, "sipecho 1.0 4.0\nsiplb_gnet 0.48 4.0\n"),
				open("siplb_gnet", "options", 900),
				sat("direct_tcp", "call", 6000, 24000, "sipecho 1.0 4.0\n"),
				sat("siplb_tcp", "call", 3000, 12000, "sipecho 1.0 4.0\nsiplb_tcp 0.6 4.0\n"),
				sat("kamailio_tcp", "call", 1000, 4000, "sipecho 1.0 4.0\nkamailio_tcp 0.8 4.0\n"),
			),
			want: []string{
				"| saturation (window 200) | siplb_tcp | 3000 | 300 | 900 | 1500 | 0 | 0 | 15% | 25% | 50% | 50.0 |",
				"| saturation (window 200) | direct_tcp | 6000 | 300 | 900 | 1500 | 0 | 0 | - | 25% | 50% | - |",
				// TCP: 3× Kamailio's throughput, 4× cheaper per call, half of direct; no target checked.
				"| call over TCP | 3.00× | - | 0.50× | 4.00× | - | - |",
				"### siplb's UDP I/O: batch (default) against gnet",
				// 10 µs per unit batched, 15 µs with gnet.
				"| options | 10000 | 8000 | 1.25× | 10.0 | 15.0 | 1.50× | 700 µs | 900 µs |",
			},
			notWant: []string{"options over TCP"},
		},
		{
			name: "edge defences",
			fs: append(slices.Clone(full),
				// OPTIONS: 10 µs per unit on, 9.8 µs off: +2.0 %, within the
				// budget; at the open-loop rate 50 µs on, 48 µs off.
				sat("siplb_open", "options", 10100, 40400, "sipecho 1.0 4.0\nsiplb_open 0.396 4.0\n"),
				withCPU(open("siplb", "options", 700), "siplb 0.05 0.2\n"),
				withCPU(open("siplb_open", "options", 650), "siplb_open 0.048 0.2\n"),
				// Calls: 22.2 µs on, 20.2 µs off: +10.0 %, over it; no
				// open loop for siplb_open.
				sat("siplb_open", "call", 3300, 9900, "siplb_open 0.2 3.0\n"),
				// REGISTER: siplb_open without a .cpu file, siplb without a run.
				sat("siplb_open", "register", 9000, 36000, ""),
			),
			want: []string{
				"| saturation (window 200) | siplb_open | 10100 | 300 | 900 | 1500 | 0 | 0 | 10% | 25% | 50% | 9.8 |",
				"| open 5000/s | siplb_open | 5000 | 60.0 | 650 | 1300 | 0 | 0 | 24% | - | 20% | 48.0 |",
				"### siplb's edge defences: on (default) against off",
				"| scenario | on per second | off per second | on/off | on CPU µs/unit | off CPU µs/unit | CPU per unit on÷off − 1 (target ≤ +3 %) |",
				"| options | 10000 | 10100 | 0.99× | 10.0 | 9.8 | +2.0 % ✓ | 50.0 | 48.0 | +4.2 % |",
				"| call | 3000 | 3300 | 0.91× | 22.2 | 20.2 | +10.0 % ✗ MISS | - | - | - |",
				// The ratios against the others still come from siplb alone.
				"| options | 2.50× ✓ | 0.91× ✓ | 0.83× | 6.00× | 1.25× | +500 µs at 5000/s ✓ |",
			},
			notWant: []string{"| register | 9000", "batch (default) against gnet"},
		},
		{
			name: "across transports",
			fs: append(slices.Clone(full),
				// TCP→UDP p99 1000 µs, TCP→TCP 950 µs: +50 µs, within the
				// target; 0.25 s of CPU over 1000 calls, 250 µs a call.
				withCPU(open("siplb_cross_tcp", "call", 1000), "siplb_cross_tcp 0.25 0.2\n"),
				withCPU(open("siplb_tcp", "call", 950), "siplb_tcp 0.2 0.2\n"),
				// OPTIONS: +400 µs, over it.
				open("siplb_cross_tcp", "options", 1300),
				open("siplb_tcp", "options", 900),
				// REGISTER: no TCP→TCP run to compare with.
				open("siplb_cross_tcp", "register", 900),
			),
			want: []string{
				"| open 5000/s | siplb_cross_tcp | 5000 | 60.0 | 1000 | 2000 | 0 | 0 | 125% | - | 20% | 250.0 |",
				"### siplb across transports: TCP client to UDP backends against TCP to TCP",
				"(target ≤ 100 µs)",
				"| options | 5000/s | 60.0 | 60.0 | 1300 | 900 | +400 µs ✗ MISS | - | - |",
				"| call | 5000/s | 60.0 | 60.0 | 1000 | 950 | +50 µs ✓ | 250.0 | 200.0 |",
			},
			notWant: []string{"| register | 5000/s"},
		},
		{
			name: "edge defences without cpu figures",
			fs: []fixture{
				sat("siplb", "options", 10000, 40000, "siplb 0.4 4.0\n"),
				sat("siplb_open", "options", 10100, 40400, ""),
			},
			want: []string{"| options | 10000 | 10100 | 0.99× | 10.0 | - | - | - | - | - |"},
		},
		{
			name: "warnings",
			fs: []fixture{
				func() fixture {
					f := sat("siplb", "register", 9000, 100, "")
					f.res.CPUShare = 0.95
					f.res.Lost, f.res.Failed, f.res.Sent = 3, 2, 105
					return f
				}(),
				func() fixture {
					f := open("kamailio", "register", 900)
					f.res.Throughput = 3000
					return f
				}(),
				open("siplb_pin", "register", 800),
				func() fixture { // a pinned run's second round lost units
					f := open("siplb_pin", "register", 900)
					f.mode = "rate-2"
					f.res.Lost, f.res.Sent = 7, 1000
					return f
				}(),
			},
			extra: map[string]string{"warnings.txt": "bench: KAMAILIO NOT AVAILABLE\n"},
			want: []string{
				"Warnings:",
				"- bench: KAMAILIO NOT AVAILABLE",
				"siplb register saturation (window 200): sipload used 95% of a core",
				"siplb register saturation (window 200): 3 lost and 2 failed of 105 started",
				"kamailio register open 5000/s: completed 3000/s, below the offered rate",
				"siplb_pin register open 5000/s (round 2): 7 lost and 0 failed of 1000 started",
				"| register | - | - | - | - | - | - |", // no target checked for register
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeDir(t, tc.fs, tc.extra)
			rep, err := readReport(dir)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			writeReport(&b, rep)
			got := b.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("report lacks %q; report:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("report has %q; report:\n%s", w, got)
				}
			}
		})
	}
}

func TestPlots(t *testing.T) {
	dir := writeDir(t, []fixture{
		sat("relay", "options", 11000, 44000, "relay 0.352 4.0\n"),
		sat("siplb", "options", 10000, 40000, "siplb 0.4 4.0\n"),
		sat("siplb_open", "options", 10100, 40400, "siplb_open 0.396 4.0\n"),
		open("direct", "options", 200),
		open("siplb", "options", 700),
		open("siplb_open", "options", 650),
		sat("siplb", "call", 3000, 9000, "siplb 0.2 3.0\n"),
	}, nil)
	rep, err := readReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := writePlots(rep, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"throughput.svg", "cpu.svg", "latency-options.svg"} // no open loop for call
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Errorf("writePlots = %q, want %q", files, want)
	}
	for _, f := range want {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("%s is not an SVG", f)
		}
	}
}

func TestReadReportErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  error
	}{
		{name: "empty folder", files: nil, want: errNoRuns},
		{name: "only other json", files: map[string]string{"stats.json": "{}"}, want: errNoRuns},
		{name: "bad json", files: map[string]string{"siplb-options-sat.json": "{"}},
		{name: "bad cpu line", files: map[string]string{"siplb-options-sat.json": "{}", "siplb-options-sat.cpu": "siplb 1\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readReport(writeDir(t, nil, tc.files))
			if err == nil {
				t.Fatal("readReport = nil error, want one")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("readReport: %v, want %v", err, tc.want)
			}
		})
	}
}
