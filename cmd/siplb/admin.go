package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
)

// startAdmin serves /metrics (Prometheus text format), /backends (JSON) and
// /healthz on addr. Counters are summed from the loops at scrape time. If
// serving fails after the start, the error is sent on failed (buffered).
func startAdmin(addr string, srv *engine.Server, bal *balance.Balancer, checker *balance.Checker, log *slog.Logger) (stop func(), failed <-chan error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("admin.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		writeMetrics(w, srv.Stats(), bal.Table())
	})
	mux.HandleFunc("GET /backends", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(backendsView(bal.Table(), checker.Status()))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	// Profiles for operators and `make bench`: the admin listener is
	// meant for loopback or a management network only.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fail := make(chan error, 1)
	go func() {
		if err := hs.Serve(ln); err != nil && err != http.ErrServerClosed {
			fail <- fmt.Errorf("admin.listen %s: %w", addr, err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, fail, nil
}

type backendView struct {
	Pool      string `json:"pool"`
	Address   string `json:"address"`
	Transport string `json:"transport"`
	Weight    int    `json:"weight"`
	Priority  int    `json:"priority"`
	State     string `json:"state"`
	Health    string `json:"health,omitempty"`     // why it is up or down, from the health checks
	Since     string `json:"since,omitempty"`      // when that last changed
	LastRTT   string `json:"last_rtt,omitempty"`   // round trip of the last answered probe
	LastReply int    `json:"last_reply,omitempty"` // status of the last probe answer
}

func backendsView(t *balance.Table, health []balance.BackendHealth) []backendView {
	byAddr := make(map[netip.AddrPort]balance.BackendHealth, len(health))
	for _, h := range health {
		byAddr[h.Addr] = h
	}
	var out []backendView
	for i := range t.NumPools() {
		p := t.Pool(balance.PoolID(i))
		for _, b := range p.Backends() {
			v := backendView{
				Pool: p.Name(), Address: b.Addr.String(), Transport: b.Transport.String(),
				Weight: b.Weight, Priority: b.Priority, State: b.State.String(),
			}
			if h, ok := byAddr[b.Addr]; ok {
				v.Health = h.Reason
				if !h.Since.IsZero() {
					v.Since = h.Since.UTC().Format(time.RFC3339)
				}
				if h.LastRTT > 0 {
					v.LastRTT = h.LastRTT.String()
				}
				v.LastReply = h.LastReply
			}
			out = append(out, v)
		}
	}
	return out
}

func writeMetrics(w http.ResponseWriter, s engine.Snapshot, t *balance.Table) {
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("siplb_requests_received_total", "SIP requests received.", s.RequestsIn)
	counter("siplb_responses_received_total", "SIP responses received.", s.ResponsesIn)
	counter("siplb_requests_forwarded_total", "SIP requests forwarded.", s.RequestsOut)
	counter("siplb_responses_forwarded_total", "SIP responses forwarded.", s.ResponsesOut)
	fmt.Fprintf(w, "# HELP siplb_drops_total Messages neither forwarded nor answered, by reason.\n# TYPE siplb_drops_total counter\n")
	for _, d := range engine.Drops() {
		fmt.Fprintf(w, "siplb_drops_total{reason=%q} %d\n", d.String(), s.Drop(d))
	}
	fmt.Fprintf(w, "# HELP siplb_replies_total Stateless replies siplb sent itself, by status.\n# TYPE siplb_replies_total counter\n")
	for st, v := range s.Replies {
		fmt.Fprintf(w, "siplb_replies_total{status=\"%d\"} %d\n", st, v)
	}
	counter("siplb_probe_replies_total", "Replies to health probes, consumed.", s.ProbeReplies)
	counter("siplb_icmp_errors_total", "ICMP errors (port unreachable) for datagrams siplb sent.", s.ICMPErrors)
	counter("siplb_keepalives_total", "CRLF keep-alive datagrams, ignored.", s.KeepAlives)
	counter("siplb_dns_misses_total", "Next hops not in the DNS cache, resolved off the data path.", s.DNSMisses)
	counter("siplb_tls_handshake_failures_total", "Inbound TLS handshakes that failed or timed out.", s.TLSHandshakeFailures)
	fmt.Fprintf(w, "# HELP siplb_connections TCP connections open.\n# TYPE siplb_connections gauge\nsiplb_connections %d\n", s.Conns)
	fmt.Fprintf(w, "# HELP siplb_connections_closed_total Connections siplb closed, by reason.\n# TYPE siplb_connections_closed_total counter\n")
	fmt.Fprintf(w, "siplb_connections_closed_total{reason=\"refused\"} %d\n", s.ConnsRefused)
	fmt.Fprintf(w, "siplb_connections_closed_total{reason=\"idle\"} %d\n", s.ConnsExpired)
	fmt.Fprintf(w, "siplb_connections_closed_total{reason=\"slow_client\"} %d\n", s.SlowClients)
	fmt.Fprintf(w, "# HELP siplb_backend_up Whether a backend takes new calls (1) or not (0).\n# TYPE siplb_backend_up gauge\n")
	for i := range t.NumPools() {
		p := t.Pool(balance.PoolID(i))
		for _, b := range p.Backends() {
			up := 0
			if b.State == balance.Up {
				up = 1
			}
			fmt.Fprintf(w, "siplb_backend_up{pool=%q,backend=%q,state=%q} %d\n", p.Name(), b.Addr.String(), b.State.String(), up)
		}
	}
}
