package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
)

// legacyMetrics are the names /metrics served before client_golang; scripts
// (scripts/demo.sh) and dashboards read them, so they must stay.
var legacyMetrics = []string{
	"siplb_requests_received_total", "siplb_responses_received_total",
	"siplb_requests_forwarded_total", "siplb_responses_forwarded_total",
	"siplb_drops_total", "siplb_replies_total", "siplb_probe_replies_total",
	"siplb_icmp_errors_total", "siplb_keepalives_total", "siplb_bad_tokens_total",
	"siplb_dns_misses_total", "siplb_tls_handshake_failures_total",
	"siplb_connections", "siplb_connections_closed_total", "siplb_backend_up",
}

// newMetrics are the names added with client_golang.
var newMetrics = []string{
	"siplb_backend_state", "siplb_backend_healthy", "siplb_backend_probe_rtt_seconds",
	"siplb_config_reloads_total", "siplb_config_last_reload_successful",
	"siplb_config_last_reload_success_timestamp_seconds", "siplb_build_info",
}

// testSource is a fixed source: two backends in pool "farm" (A drained at
// runtime, B marked down by health) with a probe RTT for A, a snapshot with
// some counts, one successful and one failed reload.
func testSource(t *testing.T) metricsSource {
	t.Helper()
	a, b := netip.MustParseAddrPort("127.0.0.1:5070"), netip.MustParseAddrPort("127.0.0.1:5071")
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: a}, {Addr: b}}}})
	if err != nil {
		t.Fatal(err)
	}
	bal.SetState(a, balance.Draining)
	bal.SetHealth(b, false)
	snap := engine.Snapshot{RequestsIn: 7, ResponsesIn: 5, RequestsOut: 6, ResponsesOut: 4, Replies: map[int]uint64{503: 2, 0: 1},
		ConnsRefused: 1, ConnsExpired: 2, SlowClients: 3, SlowReaders: 4, WriteBudgetCloses: 5, Conns: 9, BadTokens: 11,
		ConnsBy: map[engine.ConnKind]int{{Transport: balance.TCP, Inbound: true}: 7, {Transport: balance.TLS}: 2}}
	snap.Drops[engine.DropForeignVia] = 3
	rs := newReloadStats(time.Unix(1700000000, 0))
	rs.record(nil, time.Unix(1700000100, 500e6))
	rs.record(errors.New("line 3: bad"), time.Unix(1700000200, 0))
	return metricsSource{
		stats: func() engine.Snapshot { return snap },
		table: bal.Table,
		health: func() []balance.BackendHealth {
			var rtt balance.RTTStats // two probes of 1.5 ms
			for i, ub := range balance.RTTBuckets {
				if ub >= 2*time.Millisecond {
					rtt.Counts[i] = 2
				}
			}
			rtt.Count, rtt.Sum, rtt.EWMA = 2, 3*time.Millisecond, 1500*time.Microsecond
			return []balance.BackendHealth{{Addr: a, Pool: "farm", Up: true, LastRTT: 1500 * time.Microsecond, RTT: rtt}, {Addr: b, Pool: "farm"}}
		},
		reloads: rs,
	}
}

func TestCollectorValues(t *testing.T) {
	c := newSiplbCollector(testSource(t))
	tests := []struct {
		name string
		want string
	}{
		{name: "siplb_backend_state", want: `
# HELP siplb_backend_state The effective state of a backend: 1 for its state, 0 for the others.
# TYPE siplb_backend_state gauge
siplb_backend_state{backend="127.0.0.1:5070",pool="farm",state="up"} 0
siplb_backend_state{backend="127.0.0.1:5070",pool="farm",state="down"} 0
siplb_backend_state{backend="127.0.0.1:5070",pool="farm",state="draining"} 1
siplb_backend_state{backend="127.0.0.1:5070",pool="farm",state="disabled"} 0
siplb_backend_state{backend="127.0.0.1:5071",pool="farm",state="up"} 0
siplb_backend_state{backend="127.0.0.1:5071",pool="farm",state="down"} 1
siplb_backend_state{backend="127.0.0.1:5071",pool="farm",state="draining"} 0
siplb_backend_state{backend="127.0.0.1:5071",pool="farm",state="disabled"} 0
`},
		{name: "siplb_backend_up", want: `
# HELP siplb_backend_up Whether a backend takes new calls (1) or not (0).
# TYPE siplb_backend_up gauge
siplb_backend_up{backend="127.0.0.1:5070",pool="farm"} 0
siplb_backend_up{backend="127.0.0.1:5071",pool="farm"} 0
`},
		{name: "siplb_backend_healthy", want: `
# HELP siplb_backend_healthy The health mark of a backend (1 up, 0 down), whatever the operator's state.
# TYPE siplb_backend_healthy gauge
siplb_backend_healthy{backend="127.0.0.1:5070",pool="farm"} 1
siplb_backend_healthy{backend="127.0.0.1:5071",pool="farm"} 0
`},
		{name: "siplb_backend_probe_rtt_seconds", want: `
# HELP siplb_backend_probe_rtt_seconds Round trip of the last answered health probe of a backend.
# TYPE siplb_backend_probe_rtt_seconds gauge
siplb_backend_probe_rtt_seconds{backend="127.0.0.1:5070",pool="farm"} 0.0015
`},
		{name: "siplb_replies_total", want: `
# HELP siplb_replies_total Stateless replies siplb sent itself, by status (other: a status outside the list).
# TYPE siplb_replies_total counter
siplb_replies_total{status="200"} 0
siplb_replies_total{status="400"} 0
siplb_replies_total{status="413"} 0
siplb_replies_total{status="416"} 0
siplb_replies_total{status="420"} 0
siplb_replies_total{status="482"} 0
siplb_replies_total{status="483"} 0
siplb_replies_total{status="500"} 0
siplb_replies_total{status="503"} 2
siplb_replies_total{status="505"} 0
siplb_replies_total{status="513"} 0
siplb_replies_total{status="other"} 1
`},
		{name: "siplb_connections_closed_total", want: `
# HELP siplb_connections_closed_total Connections siplb closed, by reason.
# TYPE siplb_connections_closed_total counter
siplb_connections_closed_total{reason="refused"} 1
siplb_connections_closed_total{reason="idle"} 2
siplb_connections_closed_total{reason="slow_client"} 3
siplb_connections_closed_total{reason="slow_reader"} 4
siplb_connections_closed_total{reason="write_budget"} 5
`},
		{name: "siplb_connections", want: `
# HELP siplb_connections TCP and TLS connections open, inbound and outbound.
# TYPE siplb_connections gauge
siplb_connections 9
`},
		{name: "siplb_requests_received_total", want: `
# HELP siplb_requests_received_total SIP requests received.
# TYPE siplb_requests_received_total counter
siplb_requests_received_total 7
`},
		{name: "siplb_bad_tokens_total", want: `
# HELP siplb_bad_tokens_total Flow tokens whose MAC failed (forged, copied into another dialog, or signed by a retired secret), ignored.
# TYPE siplb_bad_tokens_total counter
siplb_bad_tokens_total 11
`},
		{name: "siplb_config_reloads_total", want: `
# HELP siplb_config_reloads_total Configuration reloads (SIGHUP or POST /api/v1/reload), by result.
# TYPE siplb_config_reloads_total counter
siplb_config_reloads_total{result="success"} 1
siplb_config_reloads_total{result="failure"} 1
`},
		{name: "siplb_config_last_reload_successful", want: `
# HELP siplb_config_last_reload_successful Whether the last configuration reload succeeded (1) or failed (0).
# TYPE siplb_config_last_reload_successful gauge
siplb_config_last_reload_successful 0
`},
		{name: "siplb_config_last_reload_success_timestamp_seconds", want: `
# HELP siplb_config_last_reload_success_timestamp_seconds When the configuration was last loaded successfully (at start or by a reload).
# TYPE siplb_config_last_reload_success_timestamp_seconds gauge
siplb_config_last_reload_success_timestamp_seconds 1.7000001005e+09
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := testutil.CollectAndCompare(c, strings.NewReader(tc.want), tc.name); err != nil {
				t.Error(err)
			}
		})
	}
	// Every drop reason has its series, and the counted one its count.
	if n := testutil.CollectAndCount(c, "siplb_drops_total"); n != len(engine.Drops()) {
		t.Errorf("siplb_drops_total: %d series, want %d (one per reason)", n, len(engine.Drops()))
	}
	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "siplb_drops_total", "siplb_build_info",
		"siplb_backend_probe_rtt_ewma_seconds", "siplb_backend_probe_duration_seconds", "siplb_connections_open")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`siplb_drops_total{reason="foreign_via"} 3`, `siplb_build_info{goversion="go`,
		`siplb_backend_probe_rtt_ewma_seconds{backend="127.0.0.1:5070",pool="farm"} 0.0015`,
		`siplb_connections_open{direction="in",transport="tcp"} 7`, `siplb_connections_open{direction="out",transport="tls"} 2`,
		`siplb_connections_open{direction="out",transport="tcp"} 0`,
		`siplb_backend_probe_duration_seconds_bucket{backend="127.0.0.1:5070",pool="farm",le="0.001"} 0`,
		`siplb_backend_probe_duration_seconds_bucket{backend="127.0.0.1:5070",pool="farm",le="0.002"} 2`,
		`siplb_backend_probe_duration_seconds_count{backend="127.0.0.1:5070",pool="farm"} 2`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("collected output lacks %q:\n%s", want, out)
		}
	}
}

// The collector passes promlint and a pedantic registry (every metric it
// collects is one it describes, label sets consistent).
func TestCollectorLint(t *testing.T) {
	c := newSiplbCollector(testSource(t))
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Errorf("pedantic registry: %v", err)
	}
}

// A removed backend leaves the next scrape: the collector follows the Table.
func TestCollectorFollowsTable(t *testing.T) {
	src := testSource(t)
	bal, err := balance.New([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: netip.MustParseAddrPort("127.0.0.1:5070")}, {Addr: netip.MustParseAddrPort("127.0.0.1:5071")}}}})
	if err != nil {
		t.Fatal(err)
	}
	src.table = bal.Table
	c := newSiplbCollector(src)
	if n := testutil.CollectAndCount(c, "siplb_backend_up"); n != 2 {
		t.Fatalf("siplb_backend_up: %d series, want 2", n)
	}
	bal.Reload([]balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: netip.MustParseAddrPort("127.0.0.1:5070")}}}})
	if n := testutil.CollectAndCount(c, "siplb_backend_up"); n != 1 {
		t.Errorf("after removing a backend: siplb_backend_up has %d series, want 1", n)
	}
}

// scrape fetches and parses /metrics from a real admin listener.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// value returns the value of the series of mf whose labels include want.
func value(mf *dto.MetricFamily, want map[string]string) (float64, bool) {
	for _, m := range mf.GetMetric() {
		match := 0
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match != len(want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// /metrics over HTTP from siplb serving in-process: every metric name,
// Go and process metrics, and values that follow what happened (calls
// forwarded, backends probed).
func TestMetricsOverHTTP(t *testing.T) {
	a, b := startBackend(t, "A"), startBackend(t, "B")
	lbAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	cfg := yamlConfig{listen: lbAddr, admin: adminAddr, health: "{interval: 200ms, timeout: 100ms}",
		backends: []string{"{address: " + a.url() + "}", "{address: " + b.url() + "}"}}
	startServe(t, cfg.bytes())
	cl := newClient(t, lbAddr)
	waitServing(t, cl)
	const calls = 5
	for i := range calls {
		if _, err := cl.call(fmt.Sprintf("metrics-%d", i), retry{tries: 3, wait: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	var mfs map[string]*dto.MetricFamily
	for {
		mfs = scrape(t, adminAddr)
		rtt, ok := mfs["siplb_backend_probe_rtt_seconds"]
		if ok && len(rtt.GetMetric()) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range slices.Concat(legacyMetrics, newMetrics, []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"}) {
		if _, ok := mfs[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// An INVITE and a BYE per call, each forwarded (the ACK too).
	if v, _ := value(mfs["siplb_requests_forwarded_total"], nil); v < 3*calls {
		t.Errorf("siplb_requests_forwarded_total = %v, want at least %d", v, 3*calls)
	}
	for _, be := range []*backend{a, b} {
		labels := map[string]string{"pool": "farm", "backend": be.addr.String()}
		if v, ok := value(mfs["siplb_backend_state"], map[string]string{"pool": "farm", "backend": be.addr.String(), "state": "up"}); !ok || v != 1 {
			t.Errorf("siplb_backend_state{backend=%s,state=up} = %v (present %v), want 1", be.addr, v, ok)
		}
		if v, ok := value(mfs["siplb_backend_probe_rtt_seconds"], labels); !ok || v <= 0 || v > 0.1 {
			t.Errorf("siplb_backend_probe_rtt_seconds{backend=%s} = %v (present %v), want in (0, 0.1]", be.addr, v, ok)
		}
	}
	if v, ok := value(mfs["siplb_config_last_reload_successful"], nil); !ok || v != 1 {
		t.Errorf("siplb_config_last_reload_successful = %v (present %v), want 1", v, ok)
	}
}
