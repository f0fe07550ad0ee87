package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Tests of the monitoring examples: they parse, and they read only metrics
// siplb exposes.

// metricNameRE finds the names of siplb's, Go's and the process's metrics in
// a PromQL expression.
var metricNameRE = regexp.MustCompile(`\b(?:siplb|go|process)_[a-z0-9_]+\b`)

// knownMetric reports whether name is exposed, directly or as a histogram's
// or summary's series.
func knownMetric(mfs map[string]*dto.MetricFamily, name string) bool {
	if _, ok := mfs[name]; ok {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if _, ok := mfs[strings.TrimSuffix(name, suf)]; ok && strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
}

// exposed gathers the names a metrics registry exposes.
func exposed(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := newMetricsRegistry(testSource(t)).Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// The Grafana dashboard is valid JSON, has the panels the README promises,
// and every query names only metrics siplb exposes.
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("../../examples/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	mfs := exposed(t)
	var titles []string
	exprs := 0
	for _, p := range dash.Panels {
		titles = append(titles, p.Title)
		for _, tg := range p.Targets {
			exprs++
			names := metricNameRE.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %q names no siplb metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !knownMetric(mfs, n) {
					t.Errorf("panel %q: %s is not a metric siplb exposes", p.Title, n)
				}
			}
		}
	}
	for _, want := range []string{"Backend state", "Forwarded", "Replies by status", "Drops by reason", "Connections"} {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no panel titled %q in %q", want, titles)
		}
	}
	if exprs == 0 {
		t.Error("the dashboard has no queries")
	}
}

// The alert rules are valid YAML in Prometheus's rule file layout, with the
// groups and alerts the README promises, over metrics siplb exposes.
func TestPrometheusAlerts(t *testing.T) {
	data, err := os.ReadFile("../../examples/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("prometheus-alerts.yml: %v", err)
	}
	mfs := exposed(t)
	alerts := map[string]string{} // alert → group
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = g.Name
			if r.Expr == "" || r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s: want expr, labels.severity and annotations.summary", r.Alert)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			for _, n := range metricNameRE.FindAllString(r.Expr, -1) {
				if !knownMetric(mfs, n) {
					t.Errorf("alert %s: %s is not a metric siplb exposes", r.Alert, n)
				}
			}
		}
	}
	for alert, group := range map[string]string{
		"SiplbBackendDown":        "siplb-backends",
		"SiplbPoolNoBackendUp":    "siplb-backends",
		"SiplbConfigReloadFailed": "siplb-config",
	} {
		if got, ok := alerts[alert]; !ok || got != group {
			t.Errorf("alert %s in group %q (present %v), want group %q", alert, got, ok, group)
		}
	}
}
