package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siplb/siplb/balance"
)

// The admin API's and the metrics' view of the admission of new dialogs
// (balance/overload.go): members' RFC 7339 overload reports and max_cps.

// admissionInfo is the admission part of backendInfo.
type admissionInfo struct {
	MaxCPS            float64 `json:"max_cps,omitempty"`          // its cap on new dialogs per second, 0 (left out) for none
	OverloadReduction int     `json:"overload_reduction"`         // the % of new dialogs its overload report sheds now (0: none in force)
	OverloadExpires   string  `json:"overload_expires,omitempty"` // RFC 3339, when the report in force ends
	ShedOverload      uint64  `json:"shed_overload"`              // new dialogs it refused by its overload reports
	ShedMaxCPS        uint64  `json:"shed_max_cps"`               // new dialogs it refused past its max_cps
}

// admissionOf reads the admission state of b at now.
func admissionOf(b *balance.Backend, now time.Time) admissionInfo {
	ai := admissionInfo{MaxCPS: b.MaxCPS}
	if b.Stats == nil {
		return ai
	}
	st := b.Overload().Read(now.UnixNano())
	ai.OverloadReduction, ai.ShedOverload, ai.ShedMaxCPS = st.Reduction, st.ShedOverload, st.ShedRate
	if st.ExpiresMs > 0 {
		ai.OverloadExpires = time.UnixMilli(st.ExpiresMs).UTC().Format(time.RFC3339Nano)
	}
	return ai
}

// admissionMetrics are the per-backend series of admission.
type admissionMetrics struct {
	reduction, shed, maxCPS *prometheus.Desc
}

func newAdmissionMetrics() admissionMetrics {
	return admissionMetrics{
		reduction: prometheus.NewDesc("siplb_backend_overload_reduction_ratio", "The share of new dialogs a backend's RFC 7339 overload report sheds now (0..1; 0 when none is in force).", []string{"backend"}, nil),
		shed:      prometheus.NewDesc("siplb_backend_shed_total", "New dialogs a backend refused, by reason: overload (its overload report) or max_cps; each went to the next member or got a 503.", []string{"backend", "reason"}, nil),
		maxCPS:    prometheus.NewDesc("siplb_backend_max_cps", "A backend's cap on new dialogs per second (0: none).", []string{"pool", "backend"}, nil),
	}
}

func (a admissionMetrics) describe(ch chan<- *prometheus.Desc) {
	ch <- a.reduction
	ch <- a.shed
	ch <- a.maxCPS
}

// collect sends b's series: its cap for its pool; the state of its address
// once (perAddr).
func (a admissionMetrics) collect(ch chan<- prometheus.Metric, pool string, b *balance.Backend, perAddr bool, now time.Time) {
	addr := b.Addr.String()
	ch <- prometheus.MustNewConstMetric(a.maxCPS, prometheus.GaugeValue, b.MaxCPS, pool, addr)
	if !perAddr || b.Stats == nil {
		return
	}
	st := b.Overload().Read(now.UnixNano())
	ch <- prometheus.MustNewConstMetric(a.reduction, prometheus.GaugeValue, float64(st.Reduction)/100, addr)
	ch <- prometheus.MustNewConstMetric(a.shed, prometheus.CounterValue, float64(st.ShedOverload), addr, "overload")
	ch <- prometheus.MustNewConstMetric(a.shed, prometheus.CounterValue, float64(st.ShedRate), addr, "max_cps")
}
