package main

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/siplb/siplb/balance"
)

const admissionBase = "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n"

func TestAdmissionConfig(t *testing.T) {
	bad := []struct {
		name, in, want string
	}{
		{name: "replaces_affinity on another algorithm", in: admissionBase + "    algorithm: round-robin\n    replaces_affinity: true\n    backends:\n      - address: udp://127.0.0.1:5070\n",
			want: "line 6: pools[0].replaces_affinity: is only for the algorithms that hash the Call-ID"},
		{name: "negative pool max_cps", in: admissionBase + "    max_cps: -1\n    backends:\n      - address: udp://127.0.0.1:5070\n",
			want: "line 5: pools[0].max_cps: must be between 0"},
		{name: "backend max_cps too large", in: admissionBase + "    backends:\n      - address: udp://127.0.0.1:5070\n        max_cps: 2000000\n",
			want: "line 7: pools[0].backends[0].max_cps: must be between 0"},
	}
	for _, tc := range bad {
		if _, err := parseConfig([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	good := []struct {
		name           string
		in             string
		noReplaces     bool
		noOverload     bool
		poolCPS, beCPS float64
	}{
		{name: "defaults", in: admissionBase + "    backends:\n      - address: udp://127.0.0.1:5070\n"},
		{name: "all set", in: admissionBase + "    replaces_affinity: false\n    overload_control: false\n    max_cps: 50\n    backends:\n      - address: udp://127.0.0.1:5070\n        max_cps: 20\n",
			noReplaces: true, noOverload: true, poolCPS: 50, beCPS: 20},
	}
	for _, tc := range good {
		cfg, err := parseConfig([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		pools, err := cfg.pools()
		if err != nil {
			t.Fatal(err)
		}
		pc := pools[0]
		if pc.DisableReplacesAffinity != tc.noReplaces || pc.DisableOverloadControl != tc.noOverload || pc.MaxCPS != tc.poolCPS || pc.Backends[0].MaxCPS != tc.beCPS {
			t.Errorf("%s: pool config %+v", tc.name, pc)
		}
		if _, err := balance.New(pools); err != nil {
			t.Errorf("%s: balance.New: %v", tc.name, err)
		}
	}
}

// The API and the metrics show a backend's cap, its overload report in
// force and its refusals.
func TestAdmissionVisible(t *testing.T) {
	pools := []balance.PoolConfig{{Name: "farm", Backends: []balance.BackendConfig{{Addr: apiA, MaxCPS: 1}, {Addr: apiB}}}}
	ta := startTestAdmin(t, pools, "", nil)
	tab := ta.bal.Table()
	a, _ := tab.Lookup(apiA)
	now := time.Now()
	a.Overload().Report(balance.OverloadReport{Reduction: 100, Validity: 60_000, Seq: 1}, now.UnixNano())
	adm := balance.Admit{Dialog: 1, Now: now.UnixNano()}
	for range 3 { // the pick of a round of new dialogs: A sheds, B takes them
		tab.Pool(0).PickAdmitted(nil, &adm)
	}
	var flat []backendInfo
	if got := ta.do(t, "GET", "/api/v1/backends", "", &flat); got != 200 {
		t.Fatalf("GET /api/v1/backends = %d", got)
	}
	var bi *backendInfo
	for i := range flat {
		if flat[i].Address == apiA.String() {
			bi = &flat[i]
		}
	}
	if bi == nil {
		t.Fatalf("no entry for %s in %+v", apiA, flat)
	}
	if bi.MaxCPS != 1 || bi.OverloadReduction != 100 || bi.OverloadExpires == "" || bi.ShedOverload == 0 {
		t.Errorf("backend %s: admission %+v, want max_cps 1, reduction 100, an expiry and refusals", apiA, bi.admissionInfo)
	}

	src := testSource(t)
	src.table = ta.bal.Table
	mfs, err := newMetricsRegistry(src).Gather()
	if err != nil {
		t.Fatal(err)
	}
	find := func(name string, labels map[string]string) *dto.Metric {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
						continue next
					}
				}
				return m
			}
		}
		return nil
	}
	addr := apiA.String()
	if m := find("siplb_backend_overload_reduction_ratio", map[string]string{"backend": addr}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("siplb_backend_overload_reduction_ratio{backend=%q} = %v, want 1", addr, m)
	}
	if m := find("siplb_backend_shed_total", map[string]string{"backend": addr, "reason": "overload"}); m == nil || m.GetCounter().GetValue() == 0 {
		t.Errorf("siplb_backend_shed_total{reason=overload} = %v, want > 0", m)
	}
	if m := find("siplb_backend_max_cps", map[string]string{"backend": addr}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("siplb_backend_max_cps = %v, want 1", m)
	}
	for _, name := range []string{"siplb_replaces_affinity_total", "siplb_overload_reports_total", "siplb_admission_refused_total"} {
		if find(name, nil) == nil {
			t.Errorf("%s not exposed", name)
		}
	}
}
