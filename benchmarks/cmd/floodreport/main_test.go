package main

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCounters(t *testing.T) {
	in := `# HELP siplb_requests_received_total SIP requests received.
# TYPE siplb_requests_received_total counter
siplb_requests_received_total 12
# TYPE siplb_drops_total counter
siplb_drops_total{reason="malformed_request"} 3
siplb_drops_total{reason="odd } \" value"} 4 1700000000000
# TYPE siplb_connections gauge
siplb_connections 7
siplb_untyped_total 5
siplb_untyped_gauge 9

`
	got, err := parseCounters(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := counters{
		"siplb_requests_received_total":                 12,
		`siplb_drops_total{reason="malformed_request"}`: 3,
		`siplb_drops_total{reason="odd } \" value"}`:    4,
		"siplb_untyped_total":                           5,
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for s, v := range want {
		if got[s] != v {
			t.Errorf("%s = %v, want %v", s, got[s], v)
		}
	}
	for _, bad := range []string{"siplb_x{a=\"1\" 3", "{a=\"1\"} 3", "siplb_x", "siplb_x abc", "siplb_x 1 2 3"} {
		if _, err := parseCounters(strings.NewReader(bad + "\n")); !errors.Is(err, errSample) {
			t.Errorf("parseCounters(%q): %v, want errSample", bad, err)
		}
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		series string
		want   class
	}{
		{series: "siplb_requests_forwarded_total", want: cForwarded},
		{series: "siplb_responses_forwarded_total", want: cForwarded},
		{series: `siplb_drops_total{reason="flood"}`, want: cDropped},
		{series: "siplb_flood_blocked_total", want: cDropped},
		{series: `siplb_scanner_total{ua="sipvicious"}`, want: cDropped},
		{series: "siplb_replies_limited_total", want: cDropped},
		{series: `siplb_replies_total{status="400"}`, want: cReplied},
		{series: "siplb_requests_received_total", want: cReceived},
		{series: "siplb_icmp_errors_total", want: cOther},
		{series: "kamailio_drops_total", want: cOther},
	}
	for _, tc := range tests {
		if got := classOf(tc.series); got != tc.want {
			t.Errorf("classOf(%s) = %v, want %v", tc.series, got, tc.want)
		}
	}
}

// writeFiles writes name → content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const udpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"

// udpTable is a /proc/net/udp with two siplb sockets on port 27060
// (0x69B4) that dropped a and b, and another socket that dropped 999.
func udpTable(a, b string) string {
	return udpHeader +
		" 10: 0100007F:69B4 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0000000000000000 " + a + "\n" +
		" 11: 0100007F:69B4 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 2 2 0000000000000000 " + b + "\n" +
		" 12: 0100007F:69BE 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 3 2 0000000000000000 999\n"
}

func metrics(fwd, drops, replies float64) string {
	return "# TYPE siplb_requests_forwarded_total counter\nsiplb_requests_forwarded_total " + ftoa(fwd) + "\n" +
		"# TYPE siplb_drops_total counter\nsiplb_drops_total{reason=\"flood\"} " + ftoa(drops) + "\n" +
		"# TYPE siplb_replies_total counter\nsiplb_replies_total{status=\"400\"} " + ftoa(replies) + "\n"
}

func ftoa(v float64) string { b, _ := json.Marshal(v); return string(b) }

func TestReport(t *testing.T) {
	dir := t.TempDir()
	snmp := func(rcvbuf string) string {
		return "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 1 2 3 4 " + rcvbuf + " 0\n"
	}
	writeFiles(t, dir, map[string]string{
		"baseline.sipload.json": `{"target":"127.0.0.1:27060","sent":2000,"completed":1990,"failed":4,"lost":6,"rate":200,
			"latency":{"p50_us":400,"p99_us":3000}}`,
		"baseline.metrics.0": metrics(0, 0, 0),
		"baseline.metrics.1": metrics(14000, 0, 0),
		"baseline.cpu":       "100 170 100 10.0\n", // 0.7 s
		"baseline.udp.0":     udpTable("0", "0"),
		"baseline.udp.1":     udpTable("0", "0"),

		"flood.sipload.json":  `{"target":"127.0.0.1:27060","sent":2000,"completed":1000,"rate":200,"latency":{"p50_us":900,"p99_us":50000}}`,
		"flood.sipflood.json": `{"target":"127.0.0.1:27060","sent":100000,"sent_per_s":10000,"replies":10}`,
		"flood.echo.0.json":   `{"127.0.0.1:27070":{"INVITE":5},"127.0.0.1:27071":{}}`,
		"flood.echo.1.json":   `{"127.0.0.1:27070":{"INVITE":600,"flood":400},"127.0.0.1:27071":{"flood":100}}`,

		"floodonly.sipflood.json": `{"target":"127.0.0.1:27060","sent":50000,"sent_per_s":10000,"replies":0}`,
		"floodonly.echo.0.json":   `{"127.0.0.1:27070":{"flood":500}}`,
		"floodonly.echo.1.json":   `{"127.0.0.1:27070":{"flood":500}}`,
		"floodonly.metrics.0":     metrics(14000, 0, 0),
		"floodonly.metrics.1":     metrics(14000, 20000, 0),
		"floodonly.cpu":           "200 240 100 5.0\n", // 0.4 s
		"floodonly.snmp.0":        snmp("10"),
		"floodonly.snmp.1":        snmp("30010"),
		"floodonly.udp.0":         udpTable("5", "5"),
		"floodonly.udp.1":         udpTable("15005", "15005"),
	})
	var stdout strings.Builder
	if err := run(dir, &stdout); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Phases) != 3 {
		t.Fatalf("%d phases, want 3", len(rep.Phases))
	}
	base, fl, only := rep.Phases[0], rep.Phases[1], rep.Phases[2]
	near := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil {
			t.Errorf("%s missing, want %v", name, want)
		} else if math.Abs(*got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", name, *got, want)
		}
	}
	if base.Calls == nil || base.Calls.Success != 99.5 || base.Calls.P99 != 3000 {
		t.Errorf("baseline calls %+v", base.Calls)
	}
	near("baseline forwarded", base.Forwarded, 14000)
	near("baseline CPU per forwarded (µs)", base.CPUPerForwarded, 0.7e6/14000)
	near("baseline CPU share", base.CPUShare, 0.07)
	if base.CPUPerDropped != nil {
		t.Errorf("baseline CPU per dropped %v with nothing dropped", *base.CPUPerDropped)
	}
	if fl.FloodAtBackend == nil || *fl.FloodAtBackend != 500 {
		t.Errorf("flood at backends %v, want 500 (over both sockets)", fl.FloodAtBackend)
	}
	near("flood share", fl.FloodShare, 0.005)
	if only.FloodAtBackend == nil || *only.FloodAtBackend != 0 {
		t.Errorf("flood-only at backends %v, want 0", only.FloodAtBackend)
	}
	near("flood-only dropped", only.Dropped, 20000)
	near("flood-only CPU per dropped (µs)", only.CPUPerDropped, 0.4e6/20000)
	near("flood-only kernel drops", only.KernelDrops, 30000)
	near("flood-only siplb socket drops", only.SocketDrops, 30000)
	near("report share", rep.FloodShare, 500.0/150000)
	if rep.ShareMet == nil || !*rep.ShareMet {
		t.Errorf("share target met = %v, want true", rep.ShareMet)
	}
	md := stdout.String()
	for _, want := range []string{"| **calls completed** | **99.5 %** | **50.0 %** | – |", "0.50 %", "met)",
		"20.00 µs", "| kernel drops at siplb's sockets (buffer full) | 0 | – | 30,000 |", "`siplb_drops_total{reason=\"flood\"}` dropped 20,000"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if saved, _ := os.ReadFile(filepath.Join(dir, "report.md")); string(saved) != md {
		t.Error("report.md differs from what was printed")
	}
}

func TestReportTargetMissed(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"flood.sipflood.json": `{"target":"127.0.0.1:27060","sent":1000}`,
		"flood.echo.0.json":   `{}`,
		"flood.echo.1.json":   `{"127.0.0.1:27070":{"flood":11}}`,
	})
	var stdout strings.Builder
	if err := run(dir, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "1.10 % of what was sent") || !strings.Contains(stdout.String(), "NOT MET") {
		t.Errorf("report:\n%s", stdout.String())
	}
}

func TestReportErrors(t *testing.T) {
	if err := run(t.TempDir(), new(strings.Builder)); !errors.Is(err, errNoPhases) {
		t.Errorf("empty folder: %v, want errNoPhases", err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"flood.metrics.0": "siplb_x{ 1\n", "flood.metrics.1": ""})
	if err := run(dir, new(strings.Builder)); !errors.Is(err, errSample) {
		t.Errorf("bad metrics: %v, want errSample", err)
	}
	dir = t.TempDir()
	writeFiles(t, dir, map[string]string{"baseline.cpu": "1 2 3\n"})
	if err := run(dir, new(strings.Builder)); err == nil {
		t.Error("a cpu file of 3 fields: no error")
	}
}
