package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/internal/hep"
)

// adminServer is what the admin listener serves from: the Balancer, the
// engine's counters, the Checker's view and serve's control.
type adminServer struct {
	bal    *balance.Balancer
	stats  func() engine.Snapshot
	health func() []balance.BackendHealth // nil: no health checker
	hep    func() hep.Stats               // nil: capture off
	ctl    *control
	token  string // bearer token of /api/v1 and /debug/pprof; "" for none
	log    *slog.Logger
}

// startAdmin serves the admin listener on cfg.Listen: /metrics (Prometheus),
// /backends (JSON), /healthz, /readyz, the control API under /api/v1 and
// pprof. It stops answering ready when ctx is done. The returned func shuts
// it down; if serving fails after the start, the error is sent on failed
// (buffered).
func startAdmin(ctx context.Context, cfg AdminConfig, ctl *control, srv *engine.Server, bal *balance.Balancer, checker *balance.Checker, capture func() hep.Stats, log *slog.Logger) (stop func(), failed <-chan error, err error) {
	token, err := cfg.token()
	if err != nil {
		return nil, nil, err
	}
	addr := cfg.Listen
	ln, err := ctl.listenAdmin("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("admin.listen: %w", err)
	}
	a := &adminServer{bal: bal, stats: srv.Stats, health: checker.Status, hep: capture, ctl: ctl, token: token, log: log}
	context.AfterFunc(ctx, func() { ctl.stopping.Store(true) })
	hs := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	fail := make(chan error, 1)
	go func() {
		if err := hs.Serve(ln); err != nil && err != http.ErrServerClosed {
			fail <- fmt.Errorf("admin.listen %s: %w", addr, err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String(), "token", token != "")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, fail, nil
}

// handler routes the admin listener. /metrics, /backends, /healthz,
// /readyz and the status page's assets under /ui are open (they change
// nothing); the control API and the profiles need the token when one is
// set, and the API refuses cross-origin browser requests.
func (a *adminServer) handler() http.Handler {
	mux := http.NewServeMux()
	reg := newMetricsRegistry(metricsSource{stats: a.stats, table: a.bal.Table, health: a.health, reloads: a.ctl.reloads, capture: a.hep})
	if a.ctl.cluster != nil {
		reg.MustRegister(newClusterCollector(a.ctl.cluster, a.bal.Table)) // cluster_metrics.go
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /backends", func(w http.ResponseWriter, _ *http.Request) {
		var health []balance.BackendHealth
		if a.health != nil {
			health = a.health()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(backendsView(a.bal.Table(), health))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		var health []balance.BackendHealth
		if a.health != nil {
			health = a.health()
		}
		ok, why := a.ctl.readiness(health, time.Now())
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	api := http.NewServeMux()
	a.apiRoutes(api)
	// A browser on another site must not drive the API through the
	// operator's browser (CSRF), token or not: state changes from a
	// cross-origin page are refused (Sec-Fetch-Site / Origin vs Host);
	// siplb ctl, curl and the status page (same origin) are not affected.
	mux.Handle("/api/v1/", http.NewCrossOriginProtection().Handler(a.ctl.gate(a.token, api)))
	uiRoutes(mux) // the status page; it holds no data, its calls to /api/v1 carry the token
	// Profiles for operators and `make bench`: a CPU profile costs the data
	// path, so they need the token too.
	prof := http.NewServeMux()
	prof.HandleFunc("GET /debug/pprof/", pprof.Index)
	prof.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	prof.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/pprof/", a.ctl.gate(a.token, prof))
	return mux
}

// token returns the bearer token of the control API: admin.token, or the
// first line of admin.token_file; "" when neither is set. Errors name the
// key. A token is RFC 6750's b64token, so it fits an Authorization header
// as it is.
func (c AdminConfig) token() (string, error) {
	tok, key := c.Token, "admin.token"
	if c.TokenFile != "" {
		key = "admin.token_file"
		data, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", invalid(key, "%v", err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		tok = strings.TrimSpace(first)
		if tok == "" {
			return "", invalid(key, "%s holds no token", c.TokenFile)
		}
	}
	if !b64token(tok) {
		return "", invalid(key, "want letters, digits and -._~+/ (then = padding), as a bearer token (RFC 6750)")
	}
	return tok, nil
}

// b64token reports whether s is RFC 6750 §2.1's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=", or empty.
func b64token(s string) bool {
	t := strings.TrimRight(s, "=")
	if s != "" && t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~+/", c) >= 0:
		default:
			return false
		}
	}
	return true
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
