package main

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// pinned is an open-loop run of a pinned target with the given p50 and p99.
func pinned(t, sc string, p50, p99 float64) fixture {
	f := open(t, sc, p99)
	f.res.Latency.P50 = p50
	return f
}

// round makes f round k of its target's open-loop run.
func round(f fixture, k int) fixture {
	f.mode = "rate-" + strconv.Itoa(k)
	return f
}

// The pinned section puts each scenario's pinned runs beside its unpinned
// ones, subtracts direct's p99 in the same placement, checks siplb's
// against the target, and says why when the runs were skipped.
func TestReportPinned(t *testing.T) {
	unpinned := []fixture{
		open("direct", "options", 2400),
		open("relay", "options", 6900),
		open("siplb", "options", 8200),
		open("direct", "call", 2600),
		open("siplb", "call", 5000), // no relay run unpinned
		open("direct", "register", 4000),
		open("siplb", "register", 15000), // register did not run pinned
	}
	tests := []struct {
		name    string
		fs      []fixture
		pin     string // pin.txt; empty: none
		want    []string
		notWant []string
	}{
		{
			name: "pinned and unpinned",
			fs: append(slices.Clone(unpinned),
				// OPTIONS pinned: siplb +700 µs over direct (within 1 ms),
				// the relay +400 µs, so siplb's own share is 300 µs.
				withCPU(pinned("direct_pin", "options", 90, 300), "sipecho 0.1 4.0\nsipecho_pin 0.8 4.0\n"),
				pinned("relay_pin", "options", 150, 700),
				withCPU(pinned("siplb_pin", "options", 180, 1000), "sipecho_pin 0.8 4.0\nsiplb_pin 0.16 4.0\n"),
				// Calls pinned: siplb +1500 µs, over the target; no relay.
				pinned("direct_pin", "call", 100, 500),
				pinned("siplb_pin", "call", 250, 2000),
			),
			pin: "sipload and its sipecho on CPU 0, the forwarder on CPU 1\n",
			want: []string{
				"### Pinned: the forwarder on its own core",
				"sipload and its sipecho on CPU 0, the forwarder on CPU 1.",
				"| scenario | placement | open-loop rate | direct p50 / p99 µs | relay p50 / p99 µs | siplb p50 / p99 µs | added p99 relay | added p99 siplb (target ≤ 1000 µs) | p99 siplb − relay |",
				"|---|---|--:|--:|--:|--:|--:|--:|--:|",
				"| options | pinned | 5000/s | 90.0 / 300 | 150 / 700 | 180 / 1000 | +400 µs | +700 µs ✓ | +300 µs |",
				"| options | unpinned | 5000/s | 60.0 / 2400 | 60.0 / 6900 | 60.0 / 8200 | +4500 µs | +5800 µs ✗ MISS | +1300 µs |",
				"| call | pinned | 5000/s | 100 / 500 | - | 250 / 2000 | - | +1500 µs ✗ MISS | - |",
				"| call | unpinned | 5000/s | 60.0 / 2600 | - | 60.0 / 5000 | - | +2400 µs ✗ MISS | - |",
				// The scenario's own table has the pinned rows, with the
				// pinned processes' CPU: siplb_pin 4 %, sipecho_pin 20 %.
				"| open 5000/s | siplb_pin | 5000 | 180 | 1000 | 2000 | 0 | 0 | 4% | 20% | 20% | 160.0 |",
				"| open 5000/s | direct_pin | 5000 | 90.0 | 300 | 600 | 0 | 0 | - | 20% | 20% | - |",
			},
			notWant: []string{"| register | pinned", "| register | unpinned", "kamailio p50", "Not run"},
		},
		{
			name: "kamailio pinned",
			fs: append(slices.Clone(unpinned),
				pinned("direct_pin", "options", 90, 300),
				pinned("siplb_pin", "options", 180, 1000),
				pinned("kamailio_pin", "options", 900, 4300),
			),
			want: []string{
				"| siplb p50 / p99 µs | kamailio p50 / p99 µs | added p99 siplb (target ≤ 1000 µs) | added p99 kamailio | p99 siplb − relay |",
				"| options | pinned | 5000/s | 90.0 / 300 | 180 / 1000 | 900 / 4300 | +700 µs ✓ | +4000 µs | - |",
				"| options | unpinned | 5000/s | 60.0 / 2400 | 60.0 / 8200 | - | +5800 µs ✗ MISS | - | +1300 µs |", // the unpinned relay ran
			},
			notWant: []string{"relay p50"},
		},
		{
			name: "rounds",
			fs: append(slices.Clone(unpinned),
				// Round 1 of siplb_pin was disturbed (p99 9000 µs); round 2
				// is the quieter one and stands, its worst p99 beside it.
				pinned("direct_pin", "options", 90, 300),
				round(pinned("direct_pin", "options", 95, 400), 2),
				pinned("siplb_pin", "options", 180, 9000),
				round(pinned("siplb_pin", "options", 170, 900), 2),
				round(pinned("siplb_pin", "options", 175, 1200), 3),
				// The unpinned siplb's second try, 3000 µs, beats its first.
				round(open("siplb", "options", 3000), 2),
				// Round 2 of direct's calls: its p99 above siplb's.
				pinned("direct_pin", "call", 100, 500),
				round(pinned("direct_pin", "call", 100, 400), 2),
				pinned("siplb_pin", "call", 250, 350),
				// A round file without a number, or round 1 again, is no round.
				fixture{target: "siplb_pin", scenario: "call", mode: "rate-x", res: result{Completed: 1, Latency: latency{P99: 1}}},
				fixture{target: "siplb_pin", scenario: "call", mode: "rate-1", res: result{Completed: 1, Latency: latency{P99: 1}}},
			),
			want: []string{
				"A target that ran more than once",
				"| options | pinned | 5000/s | 90.0 / 300 [400 of 2] | 170 / 900 [9000 of 3] | +600 µs ✓ | - |",
				"| options | unpinned | 5000/s | 60.0 / 2400 | 60.0 / 3000 [8200 of 2] | +600 µs ✓ | -3900 µs (below: noise) |", // against the unpinned relay,
				"| call | pinned | 5000/s | 100 / 400 [500 of 2] | 250 / 350 | -50 µs ✓ (below: noise) | - |",
				// The scenario's own table shows round 1.
				"| open 5000/s | siplb_pin | 5000 | 180 | 9000 |",
			},
		},
		{
			name:    "skipped",
			fs:      unpinned,
			pin:     "skipped: this machine has 1 CPU\n",
			want:    []string{"### Pinned: the forwarder on its own core", "Not run: this machine has 1 CPU."},
			notWant: []string{"| options | pinned"},
		},
		{
			name:    "asked for, none ran",
			fs:      unpinned,
			pin:     "sipload and its sipecho on CPU 0, the forwarder on CPU 1",
			want:    []string{"No pinned run completed"},
			notWant: []string{"| options | pinned"},
		},
		{
			name:    "not asked for",
			fs:      unpinned,
			notWant: []string{"Pinned"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]string{}
			if tc.pin != "" {
				extra["pin.txt"] = tc.pin
			}
			rep, err := readReport(writeDir(t, tc.fs, extra))
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
