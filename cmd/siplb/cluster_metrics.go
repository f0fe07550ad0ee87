package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/cluster"
)

// clusterCollector exports the cluster's state at scrape time: members by
// state, facts held by kind, facts refused, and the backends this member
// probes.
type clusterCollector struct {
	rt      *clusterRuntime
	table   func() *balance.Table
	members *prometheus.Desc
	facts   *prometheus.Desc
	refused *prometheus.Desc
	owned   *prometheus.Desc
}

func newClusterCollector(rt *clusterRuntime, table func() *balance.Table) *clusterCollector {
	return &clusterCollector{rt: rt, table: table,
		members: prometheus.NewDesc("siplb_cluster_members", "Cluster members this one knows, by state (alive, suspect, dead, left).", []string{"state"}, nil),
		facts:   prometheus.NewDesc("siplb_cluster_facts", "Shared facts held, by kind (health, state, ring).", []string{"kind"}, nil),
		refused: prometheus.NewDesc("siplb_cluster_facts_refused_total", "Facts from other members refused: invalid, or past the bound of facts held.", nil, nil),
		owned:   prometheus.NewDesc("siplb_cluster_backends_probed", "Configured backends this member probes (it owns them); the others take its verdicts.", nil, nil),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.members
	ch <- c.facts
	ch <- c.refused
	ch <- c.owned
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	var st cluster.Status
	if n := c.rt.node.Load(); n != nil {
		st = n.Status()
	}
	st.Self = c.rt.name
	members := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range st.Members {
		members[m.State]++
	}
	for s, n := range members {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n), s)
	}
	facts := map[cluster.Kind]int{cluster.Health: 0, cluster.State: 0, cluster.Ring: 0}
	for _, f := range st.Facts {
		facts[f.Kind]++
	}
	for k, n := range facts {
		ch <- prometheus.MustNewConstMetric(c.facts, prometheus.GaugeValue, float64(n), k.String())
	}
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.Dropped))
	owned := 0
	for _, p := range c.rt.info(c.table()).Probing {
		if p.Owner == st.Self {
			owned++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.owned, prometheus.GaugeValue, float64(owned))
}
