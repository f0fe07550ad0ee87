package main

import (
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/internal/hep"
)

// The metrics of /metrics are exposed through prometheus/client_golang: a
// registry per admin listener holding one collector of siplb's own (below)
// and the Go and process collectors. The collector reads everything at scrape
// time: the engine's counters summed over loops (engine.Server.Stats), the
// Balancer's current Table and the Checker's Status. Nothing is counted per
// packet here; the data path keeps its plain per-loop counters.

// metricsSource is what the collector reads at each scrape. Every func is
// called from the scraping goroutine and must be safe for that.
type metricsSource struct {
	stats   func() engine.Snapshot
	table   func() *balance.Table
	health  func() []balance.BackendHealth // nil: no health checker
	reloads *reloadStats                   // nil: no reloads to report
	capture func() hep.Stats               // nil: capture off
}

// replyStatuses are the statuses siplb answers with itself (engine's list,
// which it does not export): each is exported, 0 or not, so that a rate()
// over a status that has not happened yet has a series to read. Statuses
// outside the list are counted by the engine as "other".
var replyStatuses = [...]int{200, 400, 413, 416, 420, 482, 483, 500, 503, 505, 513}

// backendStates are the values of siplb_backend_state's state label, one
// series each per backend.
var backendStates = [...]balance.State{balance.Up, balance.Down, balance.Draining, balance.Disabled}

// snapshotCounter is a plain counter of engine.Snapshot.
type snapshotCounter struct {
	name, help string
	value      func(*engine.Snapshot) uint64
}

var snapshotCounters = [...]snapshotCounter{
	{"siplb_requests_received_total", "SIP requests received.", func(s *engine.Snapshot) uint64 { return s.RequestsIn }},
	{"siplb_responses_received_total", "SIP responses received.", func(s *engine.Snapshot) uint64 { return s.ResponsesIn }},
	{"siplb_requests_forwarded_total", "SIP requests forwarded.", func(s *engine.Snapshot) uint64 { return s.RequestsOut }},
	{"siplb_responses_forwarded_total", "SIP responses forwarded.", func(s *engine.Snapshot) uint64 { return s.ResponsesOut }},
	{"siplb_probe_replies_total", "Replies to health probes, consumed.", func(s *engine.Snapshot) uint64 { return s.ProbeReplies }},
	{"siplb_icmp_errors_total", "ICMP errors (port unreachable) for datagrams siplb sent.", func(s *engine.Snapshot) uint64 { return s.ICMPErrors }},
	{"siplb_icmp_ignored_total", "ICMP errors ignored: sent by an address other than the destination's (forged), or not a destination unreachable.", func(s *engine.Snapshot) uint64 { return s.ICMPIgnored + s.ICMPOther }},
	{"siplb_flood_blocks_total", "Sources the flood detector blocked (one per block; the messages dropped are drops{reason=\"flood_blocked\"}).", func(s *engine.Snapshot) uint64 { return s.FloodBlocks }},
	{"siplb_accept_errors_total", "Accept calls that failed (EMFILE, ENFILE, ENOBUFS, ECONNABORTED...); accepting backs off, no loop ends.", func(s *engine.Snapshot) uint64 { return s.AcceptErrors }},
	{"siplb_stream_budget_closes_total", "Connections closed because partial messages and handshakes held more than streams.memory_budget (oldest first).", func(s *engine.Snapshot) uint64 { return s.BudgetCloses }},
	{"siplb_stream_direct_writes_total", "Writes to a TCP connection made straight to its socket by the goroutine that had the message (a UDP socket's, another loop's), not handed to the connection's loop.", func(s *engine.Snapshot) uint64 { return s.DirectWrites }},
	{"siplb_stream_direct_fallbacks_total", "Such writes handed to the connection's loop instead: bytes were waiting on the connection, or its socket took only part.", func(s *engine.Snapshot) uint64 { return s.DirectFallbacks }},
	{"siplb_udp_to_tcp_total", "Requests over engine.udp_mtu sent over TCP to a member with also_tcp (RFC 3261 §18.1.1).", func(s *engine.Snapshot) uint64 { return s.UDPToTCP }},
	{"siplb_large_udp_total", "Requests over engine.udp_mtu sent over UDP all the same (the member takes no TCP).", func(s *engine.Snapshot) uint64 { return s.LargeUDP }},
	{"siplb_keepalives_total", "CRLF keep-alive datagrams, ignored.", func(s *engine.Snapshot) uint64 { return s.KeepAlives }},
	{"siplb_bad_tokens_total", "Flow tokens whose MAC failed (forged, copied into another dialog, or signed by a retired secret), ignored.", func(s *engine.Snapshot) uint64 { return s.BadTokens }},
	{"siplb_dns_misses_total", "Next hops not in the DNS cache, resolved off the data path.", func(s *engine.Snapshot) uint64 { return s.DNSMisses }},
	{"siplb_tls_handshake_failures_total", "Inbound TLS handshakes that failed or timed out.", func(s *engine.Snapshot) uint64 { return s.TLSHandshakeFailures }},
	// Admission (admission.go).
	{"siplb_replaces_affinity_total", "New requests hashed by the Call-ID their Replaces, Join or Refer-To Replaces names.", func(s *engine.Snapshot) uint64 { return s.ReplacesAffinity }},
	{"siplb_overload_reports_total", "Backends' RFC 7339 overload reports taken (a newer oc-seq in a response to siplb's request).", func(s *engine.Snapshot) uint64 { return s.OverloadReports }},
	{"siplb_admission_refused_total", "New dialogs answered 503 because every backend tried shed them (overload reports, max_cps).", func(s *engine.Snapshot) uint64 { return s.AdmitRefused }},
}

// siplbCollector is the prometheus.Collector of siplb's own metrics. Its
// Descs are fixed; the series of backends follow the Table of each scrape,
// so a backend removed by a reload disappears from the next one.
type siplbCollector struct {
	src metricsSource

	counters       [len(snapshotCounters)]*prometheus.Desc
	drops          *prometheus.Desc
	replies        *prometheus.Desc
	conns          *prometheus.Desc
	streamBytes    *prometheus.Desc
	connsBy        *prometheus.Desc
	closed         *prometheus.Desc
	backendUp      *prometheus.Desc
	backendState   *prometheus.Desc
	backendHealthy *prometheus.Desc
	probeRTT       *prometheus.Desc
	probeRTTEWMA   *prometheus.Desc
	beRequests     *prometheus.Desc
	beResponses    *prometheus.Desc
	probeRTTHist   *prometheus.Desc
	reloads        *prometheus.Desc
	reloadOK       *prometheus.Desc
	reloadLast     *prometheus.Desc
	buildInfo      *prometheus.Desc
	admission      admissionMetrics
	captureSent    *prometheus.Desc
	captureDropped *prometheus.Desc
	captureCPU     *prometheus.Desc
	captureGSO     *prometheus.Desc
}

func newSiplbCollector(src metricsSource) *siplbCollector {
	c := &siplbCollector{
		src:            src,
		drops:          prometheus.NewDesc("siplb_drops_total", "Messages neither forwarded nor answered, by reason.", []string{"reason"}, nil),
		replies:        prometheus.NewDesc("siplb_replies_total", "Stateless replies siplb sent itself, by status (other: a status outside the list).", []string{"status"}, nil),
		conns:          prometheus.NewDesc("siplb_connections", "TCP and TLS connections open, inbound and outbound.", nil, nil),
		connsBy:        prometheus.NewDesc("siplb_connections_open", "Stream connections open, by transport and direction (in: accepted, out: opened by siplb).", []string{"transport", "direction"}, nil),
		streamBytes:    prometheus.NewDesc("siplb_stream_buffered_bytes", "Bytes held now in partial stream messages and TLS handshakes (charged to streams.memory_budget).", nil, nil),
		closed:         prometheus.NewDesc("siplb_connections_closed_total", "Connections siplb closed, by reason.", []string{"reason"}, nil),
		backendUp:      prometheus.NewDesc("siplb_backend_up", "Whether a backend takes new calls (1) or not (0).", []string{"pool", "backend"}, nil),
		backendState:   prometheus.NewDesc("siplb_backend_state", "The effective state of a backend: 1 for its state, 0 for the others.", []string{"pool", "backend", "state"}, nil),
		backendHealthy: prometheus.NewDesc("siplb_backend_healthy", "The health mark of a backend (1 up, 0 down), whatever the operator's state.", []string{"pool", "backend"}, nil),
		probeRTT:       prometheus.NewDesc("siplb_backend_probe_rtt_seconds", "Round trip of the last answered health probe of a backend.", []string{"pool", "backend"}, nil),
		beRequests:     prometheus.NewDesc("siplb_backend_requests_total", "Requests forwarded to a backend: kind new_dialog (a pick) or in_dialog.", []string{"backend", "kind"}, nil),
		beResponses:    prometheus.NewDesc("siplb_backend_responses_total", "A backend's responses siplb routed back, by class (1xx..6xx).", []string{"backend", "class"}, nil),
		probeRTTEWMA:   prometheus.NewDesc("siplb_backend_probe_rtt_ewma_seconds", "Moving average (EWMA, about the last 8) of a backend's probe round trips.", []string{"pool", "backend"}, nil),
		probeRTTHist:   prometheus.NewDesc("siplb_backend_probe_duration_seconds", "Round trips of a backend's answered health probes.", []string{"pool", "backend"}, nil),
		reloads:        prometheus.NewDesc("siplb_config_reloads_total", "Configuration reloads (SIGHUP or POST /api/v1/reload), by result.", []string{"result"}, nil),
		reloadOK:       prometheus.NewDesc("siplb_config_last_reload_successful", "Whether the last configuration reload succeeded (1) or failed (0).", nil, nil),
		reloadLast:     prometheus.NewDesc("siplb_config_last_reload_success_timestamp_seconds", "When the configuration was last loaded successfully (at start or by a reload).", nil, nil),
		buildInfo:      prometheus.NewDesc("siplb_build_info", "The siplb build: always 1.", []string{"version", "goversion"}, nil),
		admission:      newAdmissionMetrics(),
		captureSent:    prometheus.NewDesc("siplb_capture_sent_total", "HEP frames sent to the capture.hep collector.", nil, nil),
		captureDropped: prometheus.NewDesc("siplb_capture_dropped_total", "HEP frames not sent, by reason: queue_full, too_large (over 65507 bytes), send_error (refused by the socket: the collector is down).", []string{"reason"}, nil),
		captureGSO:     prometheus.NewDesc("siplb_capture_udp_gso", "1 while HEP frames over UDP leave in GSO entries (capture.udp_gso, a kernel that has it, and none refused), else 0.", nil, nil),
		captureCPU:     prometheus.NewDesc("siplb_capture_send_cpu_seconds_total", "CPU time the HEP sender's thread spent sending frames, its system calls included (Linux; on loopback also the collector's receive path). The event loops' share of capture is not in it.", nil, nil),
	}
	for i, sc := range snapshotCounters {
		c.counters[i] = prometheus.NewDesc(sc.name, sc.help, nil, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *siplbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.counters {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{c.drops, c.replies, c.conns, c.connsBy, c.streamBytes, c.closed, c.backendUp, c.backendState,
		c.backendHealthy, c.probeRTT, c.probeRTTEWMA, c.probeRTTHist, c.beRequests, c.beResponses, c.reloads, c.reloadOK, c.reloadLast, c.buildInfo, c.captureSent, c.captureDropped, c.captureCPU, c.captureGSO} {
		ch <- d
	}
	c.admission.describe(ch)
}

// Collect implements prometheus.Collector: one Stats, one Table and one
// Status per scrape.
func (c *siplbCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	s := c.src.stats()
	for i, sc := range snapshotCounters {
		counter(c.counters[i], sc.value(&s))
	}
	for _, d := range engine.Drops() {
		counter(c.drops, s.Drop(d), d.String())
	}
	for _, st := range replyStatuses {
		counter(c.replies, s.Replies[st], strconv.Itoa(st))
	}
	counter(c.replies, s.Replies[0], "other")
	for st, v := range s.Replies { // a status the list above lacks: still exported
		if st != 0 && !knownReply(st) {
			counter(c.replies, v, strconv.Itoa(st))
		}
	}
	gauge(c.conns, float64(s.Conns))
	gauge(c.streamBytes, float64(s.StreamBytes))
	for _, tr := range []balance.Transport{balance.TCP, balance.TLS} {
		for _, in := range []bool{true, false} {
			dir := "out"
			if in {
				dir = "in"
			}
			gauge(c.connsBy, float64(s.ConnsBy[engine.ConnKind{Transport: tr, Inbound: in}]), tr.String(), dir)
		}
	}
	counter(c.closed, s.ConnsRefused, "refused")
	counter(c.closed, s.ConnsExpired, "idle")
	counter(c.closed, s.SlowClients, "slow_client")
	counter(c.closed, s.SlowReaders, "slow_reader")
	counter(c.closed, s.WriteBudgetCloses, "write_budget")

	var rtt map[string]balance.BackendHealth
	if c.src.health != nil {
		hs := c.src.health()
		rtt = make(map[string]balance.BackendHealth, len(hs))
		for _, h := range hs {
			if h.RTT.Count > 0 {
				rtt[h.Addr.String()] = h
			}
		}
	}
	t := c.src.table()
	now := time.Now()
	counted := make(map[*balance.BackendStats]bool)
	for i := range t.NumPools() {
		p := t.Pool(balance.PoolID(i))
		for _, b := range p.Backends() {
			addr := b.Addr.String()
			gauge(c.backendUp, boolValue(b.State == balance.Up), p.Name(), addr)
			for _, st := range backendStates {
				gauge(c.backendState, boolValue(b.State == st), p.Name(), addr, st.String())
			}
			gauge(c.backendHealthy, boolValue(b.Healthy()), p.Name(), addr)
			c.admission.collect(ch, p.Name(), b, b.Stats != nil && !counted[b.Stats], now)
			if b.Stats != nil && !counted[b.Stats] {
				// The counts belong to the address, whatever pools list it.
				counted[b.Stats] = true
				n := b.Stats.Read()
				counter(c.beRequests, n.NewDialogs, addr, "new_dialog")
				counter(c.beRequests, n.InDialog, addr, "in_dialog")
				for k, v := range n.Responses {
					counter(c.beResponses, v, addr, string(rune('1'+k))+"xx")
				}
			}
			if h, ok := rtt[addr]; ok {
				gauge(c.probeRTT, h.LastRTT.Seconds(), p.Name(), addr)
				gauge(c.probeRTTEWMA, h.RTT.EWMA.Seconds(), p.Name(), addr)
				buckets := make(map[float64]uint64, len(balance.RTTBuckets))
				for i, ub := range balance.RTTBuckets {
					buckets[ub.Seconds()] = h.RTT.Counts[i]
				}
				ch <- prometheus.MustNewConstHistogram(c.probeRTTHist, h.RTT.Count, h.RTT.Sum.Seconds(), buckets, p.Name(), addr)
			}
		}
	}

	if r := c.src.reloads; r != nil {
		ok, failed, last, lastOK := r.snapshot()
		counter(c.reloads, ok, "success")
		counter(c.reloads, failed, "failure")
		gauge(c.reloadOK, boolValue(lastOK))
		if !last.IsZero() {
			gauge(c.reloadLast, float64(last.UnixNano())/1e9)
		}
	}
	gauge(c.buildInfo, 1, version, runtime.Version())
	if c.src.capture != nil {
		st := c.src.capture()
		counter(c.captureSent, st.Sent)
		counter(c.captureDropped, st.Dropped, "queue_full")
		counter(c.captureDropped, st.TooLarge, "too_large")
		counter(c.captureDropped, st.SendErrors, "send_error")
		ch <- prometheus.MustNewConstMetric(c.captureCPU, prometheus.CounterValue, st.SendCPU.Seconds())
		gauge(c.captureGSO, boolValue(st.GSO))
	}
}

func knownReply(status int) bool {
	for _, s := range replyStatuses {
		if s == status {
			return true
		}
	}
	return false
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newMetricsRegistry returns the registry of one admin listener: siplb's
// collector, and the Go runtime and process collectors.
func newMetricsRegistry(src metricsSource) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newSiplbCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// reloadStats counts configuration reloads and remembers the last success,
// for siplb_config_* metrics. The zero value has seen no load; serve starts
// it with the load at start (newReloadStats). Safe for concurrent use.
type reloadStats struct {
	mu       sync.Mutex
	ok, fail uint64
	lastOK   time.Time // last successful load, at start or by a reload
	lastGood bool      // the last load succeeded
}

// newReloadStats returns stats whose last success is the load at start.
func newReloadStats(loaded time.Time) *reloadStats {
	return &reloadStats{lastOK: loaded, lastGood: true}
}

// record counts one reload that ended at at with err (nil: success).
func (r *reloadStats) record(err error, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.fail++
		r.lastGood = false
		return
	}
	r.ok++
	r.lastOK = at
	r.lastGood = true
}

// snapshot returns the counts, the last success and whether the last
// reload succeeded.
func (r *reloadStats) snapshot() (ok, failed uint64, lastOK time.Time, lastGood bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok, r.fail, r.lastOK, r.lastGood
}
