package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
)

// The control API: JSON under /api/v1 on the admin listener, the face that
// `siplb ctl` and scripts use. Every route requires the bearer token when
// admin.token (or admin.token_file) is set.
//
//	GET  /api/v1/pools                                   pools, their backends, health
//	GET  /api/v1/pools/{pool}
//	GET  /api/v1/backends                                every backend, flat
//	POST /api/v1/pools/{pool}/{action}                   action on every member
//	POST /api/v1/backends/{pool}/{address}/{action}      drain, undrain, disable, enable
//	GET  /api/v1/route?pool=P&callid=X                   the backend a new call with that key gets
//	GET  /api/v1/stats                                   the engine's totals, for rates (the status page)
//	POST /api/v1/reload                                  what SIGHUP does; 200 with the changes or 422
//	GET  /api/v1/cluster                                 members, who probes what, the shared facts and their versions

// apiError is the body of every answer that is not a success.
type apiError struct {
	Error  string        `json:"error"`
	Errors []configIssue `json:"errors,omitempty"` // a reload's configuration errors
}

// configIssue is one defect of a configuration a reload refused.
type configIssue struct {
	Line    int    `json:"line,omitempty"` // 0 when the error has no line
	Key     string `json:"key,omitempty"`  // the key path, when the error names one
	Message string `json:"message"`
}

// backendInfo is one backend of one pool in the API's answers.
//
// Per-backend traffic counters (requests and responses forwarded to and
// from each backend) are not here: the engine counts per event loop, not
// per backend. They will come as requests_forwarded / responses_forwarded
// when it does.
type backendInfo struct {
	Pool      string `json:"pool"`
	Address   string `json:"address"`
	Transport string `json:"transport"`
	Weight    int    `json:"weight"`
	Priority  int    `json:"priority"`
	// State is the effective state: up, down, draining or disabled.
	State string `json:"state"`
	// OperatorState is the operator's part of it (up, draining, disabled):
	// from the configuration, or set through this API when RuntimeOverride.
	OperatorState   string `json:"operator_state"`
	RuntimeOverride bool   `json:"runtime_override"`
	Healthy         bool   `json:"healthy"` // the health mark, whatever the operator's state
	Probed          bool   `json:"probed"`  // the health checker probes it
	Health          string `json:"health,omitempty"`
	Since           string `json:"since,omitempty"` // RFC 3339, when health last changed
	// LastRTTSeconds is the round trip of the last answered probe;
	// RTTEWMASeconds their moving average (about the last 8).
	LastRTTSeconds float64 `json:"last_rtt_seconds,omitempty"`
	RTTEWMASeconds float64 `json:"rtt_ewma_seconds,omitempty"`
	LastReply      int     `json:"last_reply,omitempty"` // status of the last probe answer
	ProbeFailures  int     `json:"probe_failures"`       // consecutive failed probes
	ProbeSuccesses int     `json:"probe_successes"`      // consecutive answered probes
	// Traffic counts of the address (the same in every pool that lists it).
	NewDialogs uint64            `json:"new_dialogs"`         // requests forwarded to it as a new dialog's pick
	InDialog   uint64            `json:"in_dialog"`           // requests forwarded to it inside a dialog
	Responses  map[string]uint64 `json:"responses,omitempty"` // its responses routed back, by class ("2xx": n)
	admissionInfo
}

// poolInfo is one pool in the API's answers.
type poolInfo struct {
	Name      string        `json:"name"`
	Algorithm string        `json:"algorithm"`
	Up        int           `json:"up"` // members that take new calls
	Backends  []backendInfo `json:"backends"`
}

// actionResult answers a state change: the members it applied to.
type actionResult struct {
	Pool     string         `json:"pool"`
	Action   string         `json:"action"`
	Backends []actionMember `json:"backends"`
}

type actionMember struct {
	Address string `json:"address"`
	State   string `json:"state"`   // effective state afterwards
	Changed bool   `json:"changed"` // whether the operator state changed
}

// routeInfo answers /api/v1/route.
type routeInfo struct {
	Pool      string `json:"pool"`
	Algorithm string `json:"algorithm"`
	KeyParam  string `json:"key_param"` // the query parameter that was hashed
	Key       string `json:"key"`
	Backend   string `json:"backend"`
	Transport string `json:"transport"`
	State     string `json:"state"`
}

// reloadResult answers a successful reload.
type reloadResult struct {
	Reloaded bool         `json:"reloaded"`
	Changes  []poolChange `json:"changes"`
}

// actions maps an action of the API to the operator state it sets. undrain
// and enable both return a backend to up; the two names read well in
// scripts.
var actions = map[string]balance.State{
	"drain":   balance.Draining,
	"undrain": balance.Up,
	"disable": balance.Disabled,
	"enable":  balance.Up,
}

// routeParams maps a hashed algorithm to the query parameter carrying its
// key, as the data path extracts it (engine's poolKey).
var routeParams = map[balance.Algorithm]string{
	balance.HashCallID:     "callid",
	balance.HashFromUser:   "from_user",
	balance.HashToUser:     "to_user",
	balance.HashRequestURI: "ruri",
	// The latency algorithms hash the Call-ID over the current table's
	// latency costs.
	balance.LeastLatency:    "callid",
	balance.LeastLatencyP2C: "callid",
}

// apiRoutes registers the /api/v1 routes on mux.
func (a *adminServer) apiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/pools", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.pools())
	})
	mux.HandleFunc("GET /api/v1/pools/{pool}", func(w http.ResponseWriter, r *http.Request) {
		for _, p := range a.pools() {
			if p.Name == r.PathValue("pool") {
				writeJSON(w, http.StatusOK, p)
				return
			}
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("pool %q is not configured", r.PathValue("pool")))
	})
	mux.HandleFunc("GET /api/v1/backends", func(w http.ResponseWriter, _ *http.Request) {
		out := []backendInfo{}
		for _, p := range a.pools() {
			out = append(out, p.Backends...)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /api/v1/pools/{pool}/{action}", func(w http.ResponseWriter, r *http.Request) {
		a.act(w, r.PathValue("pool"), "", r.PathValue("action"))
	})
	mux.HandleFunc("POST /api/v1/backends/{pool}/{address}/{action}", func(w http.ResponseWriter, r *http.Request) {
		a.act(w, r.PathValue("pool"), r.PathValue("address"), r.PathValue("action"))
	})
	mux.HandleFunc("GET /api/v1/route", a.route)
	mux.HandleFunc("GET /api/v1/stats", a.statsTotals)
	mux.HandleFunc("POST /api/v1/reload", a.reload)
	mux.HandleFunc("POST /api/v1/upgrade", a.upgrade)
	mux.HandleFunc("GET /api/v1/cluster", a.clusterRoute)
}

// pools describes the current Table with the Checker's view of each member.
func (a *adminServer) pools() []poolInfo {
	t := a.bal.Table()
	byAddr := map[netip.AddrPort]balance.BackendHealth{}
	if a.health != nil {
		for _, h := range a.health() {
			byAddr[h.Addr] = h
		}
	}
	out := make([]poolInfo, 0, t.NumPools())
	for i := range t.NumPools() {
		p := t.Pool(balance.PoolID(i))
		pi := poolInfo{Name: p.Name(), Algorithm: p.Algorithm().String(), Backends: []backendInfo{}}
		for _, b := range p.Backends() {
			_, override := a.bal.Override(b.Addr)
			bi := backendInfo{
				Pool: p.Name(), Address: b.Addr.String(), Transport: b.Transport.String(),
				Weight: b.Weight, Priority: b.Priority, State: b.State.String(),
				OperatorState: b.ConfigState().String(), RuntimeOverride: override, Healthy: b.Healthy(),
			}
			if b.Stats != nil {
				n := b.Stats.Read()
				bi.NewDialogs, bi.InDialog = n.NewDialogs, n.InDialog
				for k, v := range n.Responses {
					if v > 0 {
						if bi.Responses == nil {
							bi.Responses = make(map[string]uint64)
						}
						bi.Responses[string(rune('1'+k))+"xx"] = v
					}
				}
			}
			bi.admissionInfo = admissionOf(b, time.Now())
			if h, ok := byAddr[b.Addr]; ok {
				bi.Probed = true
				bi.Health = h.Reason
				if !h.Since.IsZero() {
					bi.Since = h.Since.UTC().Format(time.RFC3339Nano)
				}
				bi.LastRTTSeconds = h.LastRTT.Seconds()
				bi.RTTEWMASeconds = h.RTT.EWMA.Seconds()
				bi.LastReply = h.LastReply
				bi.ProbeFailures, bi.ProbeSuccesses = h.Failures, h.Successes
			}
			if b.State == balance.Up {
				pi.Up++
			}
			pi.Backends = append(pi.Backends, bi)
		}
		out = append(out, pi)
	}
	return out
}

// act applies an action to the member addr of pool, or to every member of
// pool when addr is empty. The state is set per address (as health is), so
// it applies in every pool that lists the address.
func (a *adminServer) act(w http.ResponseWriter, pool, addr, action string) {
	st, ok := actions[action]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q: want drain, undrain, disable or enable", action))
		return
	}
	t := a.bal.Table()
	id, ok := t.PoolByName(pool)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("pool %q is not configured", pool))
		return
	}
	var targets []netip.AddrPort
	if addr == "" {
		for _, b := range t.Pool(id).Backends() {
			targets = append(targets, b.Addr)
		}
	} else {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("backend address %q: want IP:PORT", addr))
			return
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		found := false
		for _, b := range t.Pool(id).Backends() {
			found = found || b.Addr == ap
		}
		if !found {
			writeError(w, http.StatusNotFound, fmt.Sprintf("backend %s is not a member of pool %q", ap, pool))
			return
		}
		targets = append(targets, ap)
	}
	res := actionResult{Pool: pool, Action: action, Backends: []actionMember{}}
	for _, ap := range targets {
		changed, err := a.bal.SetState(ap, st)
		if err != nil { // a reload removed it meanwhile
			writeError(w, http.StatusConflict, fmt.Sprintf("backend %s: %v", ap, err))
			return
		}
		a.ctl.cluster.publishState(ap, st) // every member takes it (no-op outside a cluster)
		m := actionMember{Address: ap.String(), Changed: changed}
		if b, ok := a.bal.Table().Lookup(ap); ok {
			m.State = b.State.String()
		}
		res.Backends = append(res.Backends, m)
	}
	if a.log != nil {
		a.log.Info("backend state set through the admin API", "pool", pool, "backend", addr, "action", action)
	}
	writeJSON(w, http.StatusOK, res)
}

// route answers which backend a new call with the given key would reach
// now: the pool's Pick over the key its algorithm hashes, as the data path
// does for an initial request. Only hashed algorithms have an answer; the
// generic parameter key stands for whichever one the algorithm takes.
func (a *adminServer) route(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pool := q.Get("pool")
	if pool == "" {
		writeError(w, http.StatusBadRequest, "pool: the query parameter is required")
		return
	}
	t := a.bal.Table()
	id, ok := t.PoolByName(pool)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("pool %q is not configured", pool))
		return
	}
	p := t.Pool(id)
	param, hashed := routeParams[p.Algorithm()]
	if !hashed {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("pool %q uses %s: which backend a call gets does not depend on a key", pool, p.Algorithm()))
		return
	}
	used := param
	key, ok := q[param]
	if !ok {
		used = "key"
		key, ok = q["key"]
	}
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: required by pool %q (%s); or key", param, pool, p.Algorithm()))
		return
	}
	b, ok := p.Pick([]byte(key[0]))
	if !ok {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("pool %q has no backend up: a new call gets 503", pool))
		return
	}
	writeJSON(w, http.StatusOK, routeInfo{Pool: pool, Algorithm: p.Algorithm().String(), KeyParam: used, Key: key[0],
		Backend: b.Addr.String(), Transport: b.Transport.String(), State: b.State.String()})
}

// statsInfo answers /api/v1/stats: the engine's counters since start,
// summed over its loops, and when they were read, so that a client divides
// their differences by the server's clock.
type statsInfo struct {
	Time               string            `json:"time"` // RFC 3339, when the counters were read
	RequestsReceived   uint64            `json:"requests_received"`
	ResponsesReceived  uint64            `json:"responses_received"`
	RequestsForwarded  uint64            `json:"requests_forwarded"`
	ResponsesForwarded uint64            `json:"responses_forwarded"`
	Replies            uint64            `json:"replies"`           // stateless replies siplb made
	RepliesByStatus    map[string]uint64 `json:"replies_by_status"` // "503", ..., "other"; statuses never sent are absent
	Drops              uint64            `json:"drops"`
	DropsByReason      map[string]uint64 `json:"drops_by_reason"` // every reason, as siplb_drops_total labels it
	Connections        int               `json:"connections"`     // TCP and TLS connections open now
}

// statsTotals answers the engine's Snapshot as statsInfo.
func (a *adminServer) statsTotals(w http.ResponseWriter, _ *http.Request) {
	s := a.stats()
	out := statsInfo{Time: time.Now().UTC().Format(time.RFC3339Nano),
		RequestsReceived: s.RequestsIn, ResponsesReceived: s.ResponsesIn,
		RequestsForwarded: s.RequestsOut, ResponsesForwarded: s.ResponsesOut,
		RepliesByStatus: map[string]uint64{}, DropsByReason: map[string]uint64{}, Connections: s.Conns}
	for st, n := range s.Replies {
		k := "other"
		if st != 0 {
			k = strconv.Itoa(st)
		}
		out.RepliesByStatus[k] += n
		out.Replies += n
	}
	for _, d := range engine.Drops() {
		out.DropsByReason[d.String()] = s.Drop(d)
		out.Drops += s.Drop(d)
	}
	writeJSON(w, http.StatusOK, out)
}

// reload does what SIGHUP does and answers what changed, or why nothing did.
func (a *adminServer) reload(w http.ResponseWriter, _ *http.Request) {
	changes, err := a.ctl.reloadChanges()
	switch {
	case errors.Is(err, errNothingToReload):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: "reload failed, the running configuration is kept: " + err.Error(), Errors: configIssues(err)})
	default:
		writeJSON(w, http.StatusOK, reloadResult{Reloaded: true, Changes: changes})
	}
}

var (
	// lineRE finds "line N: message" in a configuration error: one for a
	// validation error, several for YAML's unmarshal errors.
	lineRE = regexp.MustCompile(`(?m)line (\d+): (.*)$`)
	// keyRE splits "pools[0].backends[1].address: message".
	keyRE = regexp.MustCompile(`^([a-z_]+(?:\[\d+\])?(?:\.[a-z_0-9]+(?:\[\d+\])?)*): (.*)$`)
)

// configIssues splits a configuration error into its lines and key paths.
func configIssues(err error) []configIssue {
	msg := err.Error()
	var out []configIssue
	for _, m := range lineRE.FindAllStringSubmatch(msg, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, splitKey(configIssue{Line: n, Message: m[2]}))
	}
	if len(out) == 0 {
		// "path: pools[0].x: msg" without a line (the key is not in the
		// file), or an error that names no key (an unreadable file).
		text := msg
		if i := strings.Index(msg, ": "); i >= 0 && !keyRE.MatchString(msg) {
			if keyRE.MatchString(msg[i+2:]) {
				text = msg[i+2:]
			}
		}
		out = append(out, splitKey(configIssue{Message: text}))
	}
	return out
}

func splitKey(ci configIssue) configIssue {
	if m := keyRE.FindStringSubmatch(ci.Message); m != nil {
		ci.Key, ci.Message = m[1], m[2]
	}
	return ci
}

// requireToken wraps h so that each request must carry "Authorization:
// Bearer <token>" (RFC 6750); token "" lets every request through. The
// comparison is of SHA-256 digests in constant time, so it tells neither
// the token's length nor how much of it matched.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="siplb"`)
			writeError(w, http.StatusUnauthorized, "a valid admin token is required: Authorization: Bearer <admin.token>")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}
