package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
)

func TestAPIStats(t *testing.T) {
	const token = "stats-token"
	snap := engine.Snapshot{RequestsIn: 10, ResponsesIn: 9, RequestsOut: 8, ResponsesOut: 7,
		Replies: map[int]uint64{503: 4, 400: 2, 0: 1}, Conns: 3}
	snap.Drops[engine.DropNoBackend] = 5
	snap.Drops[engine.DropFlood] = 6
	bal, err := balance.New(farmPools())
	if err != nil {
		t.Fatal(err)
	}
	a := &adminServer{bal: bal, ctl: newControl(bal, func() error { return errNothingToReload }), token: token,
		stats: func() engine.Snapshot { return snap }}
	srv := httptest.NewServer(a.handler())
	t.Cleanup(srv.Close)
	ta := &testAdmin{url: srv.URL}

	if got := ta.do(t, "GET", "/api/v1/stats", "", nil); got != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/stats without the token = %d, want 401", got)
	}
	before := time.Now().Add(-time.Second)
	var st statsInfo
	if got := ta.do(t, "GET", "/api/v1/stats", "Bearer "+token, &st); got != 200 {
		t.Fatalf("GET /api/v1/stats = %d, want 200", got)
	}
	at, err := time.Parse(time.RFC3339Nano, st.Time)
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("time %q: %v, want about now", st.Time, err)
	}
	want := statsInfo{Time: st.Time, RequestsReceived: 10, ResponsesReceived: 9, RequestsForwarded: 8, ResponsesForwarded: 7,
		Replies: 7, RepliesByStatus: map[string]uint64{"503": 4, "400": 2, "other": 1}, Drops: 11, Connections: 3}
	if fmt.Sprint(st.RepliesByStatus) != fmt.Sprint(want.RepliesByStatus) {
		t.Errorf("replies_by_status = %v, want %v", st.RepliesByStatus, want.RepliesByStatus)
	}
	if st.DropsByReason["no_backend"] != 5 || st.DropsByReason["flood_blocked"] != 6 || len(st.DropsByReason) != len(engine.Drops()) {
		t.Errorf("drops_by_reason = %v, want no_backend 5, flood_blocked 6 and every other reason 0", st.DropsByReason)
	}
	st.RepliesByStatus, st.DropsByReason, want.RepliesByStatus = nil, nil, nil
	if fmt.Sprintf("%+v", st) != fmt.Sprintf("%+v", want) {
		t.Errorf("GET /api/v1/stats = %+v, want %+v", st, want)
	}
}
