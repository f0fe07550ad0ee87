package balance

import (
	"net/netip"
	"sync/atomic"
)

// BackendStats are a backend's traffic counts: requests forwarded to it (new
// dialogs and in-dialog apart) and its responses by class. They belong to the address and outlive
// reloads and health changes (every Table's Backend for that address points
// at the same BackendStats), so counters never go back.
//
// Counting is on the hot path: the counts are striped, each event loop
// writing its own stripe (Scratch's), so loops never contend for a line;
// Read sums the stripes.
type BackendStats struct {
	stripes [statStripes]statStripe
	ol      Overload // admission state of the address (overload.go)
}

// statStripes is the number of stripes: loops beyond it share them.
const statStripes = 16

type statStripe struct {
	newDialogs, inDialog atomic.Uint64
	responses            [6]atomic.Uint64 // 1xx..6xx
	_                    [128 - 8*8]byte  // one stripe per pair of cache lines
}

// BackendCounts is a read of BackendStats.
type BackendCounts struct {
	NewDialogs, InDialog uint64    // requests forwarded to it: a new dialog (a pick), or in a dialog
	Responses            [6]uint64 // its responses siplb routed back, by class: [0] 1xx ... [5] 6xx
}

// Forwarded counts a request forwarded to the backend on stripe.
func (s *BackendStats) Forwarded(stripe int, newDialog bool) {
	st := &s.stripes[stripe%statStripes]
	if newDialog {
		st.newDialogs.Add(1)
	} else {
		st.inDialog.Add(1)
	}
}

// Response counts one of the backend's responses, by its status.
func (s *BackendStats) Response(stripe, status int) {
	if c := status/100 - 1; c >= 0 && c < 6 {
		s.stripes[stripe%statStripes].responses[c].Add(1)
	}
}

// Read sums the stripes.
func (s *BackendStats) Read() BackendCounts {
	var c BackendCounts
	for i := range s.stripes {
		st := &s.stripes[i]
		c.NewDialogs += st.newDialogs.Load()
		c.InDialog += st.inDialog.Load()
		for k := range c.Responses {
			c.Responses[k] += st.responses[k].Load()
		}
	}
	return c
}

// statsFor returns the stats of addr for the table being built: the ones
// the previous table had, else new ones. Called with the Balancer's lock
// held (table builds); addresses no table holds any more are forgotten, so
// churning members (DNS discovery) cannot grow the map.
func (ov *overlay) statsFor(addr netip.AddrPort, building map[netip.AddrPort]*BackendStats) *BackendStats {
	s := building[addr]
	if s == nil {
		if s = ov.stats[addr]; s == nil {
			s = new(BackendStats)
		}
		building[addr] = s
	}
	return s
}
