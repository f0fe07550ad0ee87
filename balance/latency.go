package balance

import (
	"math"
	"math/bits"
	"net/netip"
	"time"

	"github.com/siplb/siplb/internal/fnv1a"
)

// Latency-aware choice (LeastLatency, LeastLatencyP2C), in the spirit of
// Kamailio dispatcher's latency-optimized algorithm (13): the Checker's
// probe round trips, smoothed (RTTStats.EWMA), and its recent unanswered
// probes become a latency mark per backend address, published through
// Balancer.SetLatency. Marks are coarse on purpose, so that a Table is
// rebuilt only when a backend gets clearly faster or slower, not at every
// probe, and the choice stays a pure function of the key and the Table
// between two such changes: a Call-ID whose INVITE, CANCEL and re-sent
// INVITE (after a 401) come in a row reaches one backend, as with
// HashCallID, and two instances that measured the same levels agree.
//
// The level of a round trip is the number of half-octaves it is above
// latencyFloor, floor(2·log2(rtt/latencyFloor)), within [0, maxLatencyLevel];
// a new EWMA moves the level only when it leaves the current level's range
// by a quarter of a step (hysteresis), so an EWMA on a boundary does not
// flap. A member's cost, in its priority group, is its level plus
// 2 per unanswered probe among its last 8 (each one counts as a doubling of
// the round trip), less the least cost in the group, at most maxLatencyCost.
// A member with no answered probe yet counts the least level of the group
// (it is probed at once). One back from an outage keeps the timeouts of its
// window, so its share ramps up (doubles) with each answered probe.
// LeastLatency scales each Weight by 2^(-cost/2), i.e. by the fastest
// member's round trip over this one's; LeastLatencyP2C takes the first two
// members of the key's rendezvous order and sends to the cheaper one. A pool whose probing is off has no marks: both are then
// HashCallID exactly.

// Limits of the latency marks.
const (
	// latencyFloor is the round trip below which backends count as equally
	// fast: on a LAN, differences under a millisecond are the probe's own
	// scheduling noise rather than the backend's load.
	latencyFloor = time.Millisecond
	// maxLatencyLevel is the highest level, 2^20 ms (about 17 minutes): any
	// round trip a probe Timeout allows.
	maxLatencyLevel = 40
	// latencyHysteresis is how far, in levels, an EWMA must leave its
	// level's range [level, level+1) to change it.
	latencyHysteresis = 0.25
	// latencyWindow is the number of recent probes whose timeouts count.
	latencyWindow = 8
	// maxLatencyCost caps the cost: the slowest member keeps 2^-10 of its
	// share under LeastLatency, so it is never starved outright.
	maxLatencyCost = 20
)

// latencyMark is what the Table knows about a backend's latency. The zero
// value is "not measured".
type latencyMark struct {
	known    bool  // an answered probe gave level
	level    int8  // 0..maxLatencyLevel
	timeouts uint8 // unanswered among the last latencyWindow probes
}

// update returns m after a probe: rtt is the EWMA of the answered round
// trips (≤ 0: none yet), timeouts those of the last latencyWindow probes.
func (m latencyMark) update(rtt time.Duration, timeouts int) latencyMark {
	n := latencyMark{timeouts: uint8(min(max(timeouts, 0), latencyWindow))}
	if rtt <= 0 {
		return n
	}
	raw := 2 * math.Log2(float64(rtt)/float64(latencyFloor))
	n.known = true
	if m.known && raw >= float64(m.level)-latencyHysteresis && raw < float64(m.level)+1+latencyHysteresis {
		n.level = m.level
		return n
	}
	n.level = int8(min(max(math.Floor(raw), 0), maxLatencyLevel))
	return n
}

// SetLatency records what health checking measured of every member with
// address addr (in all pools): rtt, the EWMA of its probes' round trips (0
// when none was answered), and timeouts, how many of its last 8 probes went
// unanswered. Marks are coarse (latency.go's comment): when the mark changes
// and a pool that lists addr chooses by latency, SetLatency publishes a new
// Table and returns true. It returns false otherwise, and for an address
// that is not configured. The Checker calls it after each settled probe.
func (b *Balancer) SetLatency(addr netip.AddrPort, rtt time.Duration, timeouts int) bool {
	addr = unmap(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.table.Load()
	if _, ok := prev.byAddr[addr]; !ok {
		return false
	}
	old := b.ov.lat[addr]
	m := old.update(rtt, timeouts)
	if m == old {
		return false
	}
	if b.ov.lat == nil {
		b.ov.lat = make(map[netip.AddrPort]latencyMark)
	}
	b.ov.lat[addr] = m
	if len(b.ov.lat) > 2*len(prev.byAddr)+8 {
		// Addresses that left every pool (Reload, DNS discovery) are
		// forgotten, so member churn cannot grow the map.
		for a := range b.ov.lat {
			if _, ok := prev.byAddr[a]; !ok {
				delete(b.ov.lat, a)
			}
		}
	}
	if !prev.latencyMember(addr) {
		return false // kept for a Reload that changes the algorithm
	}
	b.table.Store(buildTable(b.cfgs, &b.ov, prev, prev.gen+1))
	return true
}

// latencyMember reports whether a pool that chooses by latency lists addr.
func (t *Table) latencyMember(addr netip.AddrPort) bool {
	for _, p := range t.pools {
		if p.alg != LeastLatency && p.alg != LeastLatencyP2C {
			continue
		}
		for _, m := range p.members {
			if m.Addr == addr {
				return true
			}
		}
	}
	return false
}

// LatencyCost returns b's latency cost in its priority group, in
// half-octaves of round trip above the group's fastest member (0: as fast
// as any; see latency.go), as the latency algorithms see it in this Table;
// 0 for a member that is not Up.
func (b *Backend) LatencyCost() int { return int(b.latCost) }

// prepareLatency fills g.cost and g.latW from the latency marks of g.avail,
// after g.hashW. With no difference of cost, latW is hashW and LeastLatency
// is the rendezvous of the configured weights.
func (g *group) prepareLatency() {
	g.cost = make([]int16, len(g.avail))
	ref, known := int16(maxLatencyLevel), false
	for _, b := range g.avail {
		if b.lat.known {
			ref, known = min(ref, int16(b.lat.level)), true
		}
	}
	if !known {
		ref = 0
	}
	least := int16(math.MaxInt16)
	for i, b := range g.avail {
		c := ref
		if b.lat.known {
			c = int16(b.lat.level)
		}
		c += 2 * int16(b.lat.timeouts)
		g.cost[i] = c
		least = min(least, c)
	}
	for i, b := range g.avail {
		g.cost[i] = min(g.cost[i]-least, maxLatencyCost)
		b.latCost = int8(g.cost[i])
		if g.cost[i] != 0 {
			g.latUneven = true
		}
	}
	if !g.latUneven {
		g.latW = g.hashW
		return
	}
	scale := make([]float64, len(g.avail))
	for i, c := range g.cost {
		scale[i] = math.Exp2(-float64(c) / 2)
	}
	g.latW = newWeights(g.avail, scale)
}

// p2c returns the index in avail for LeastLatencyP2C: of the first two
// members of the key's rendezvous order over the configured weights, the
// second only when its cost is lower. With even costs it is rendezvous.
func (g *group) p2c(h uint64) int {
	if !g.latUneven {
		return g.rendezvous(h, &g.hashW)
	}
	a, b := g.top2(h, &g.hashW)
	if b >= 0 && g.cost[b] < g.cost[a] {
		return b
	}
	return a
}

// top2 returns the indexes of the members with the highest and second
// highest rendezvous scores for h (ties to the larger seed, as rendezvous);
// the second is -1 in a group of one. With unequal weights it estimates
// costs as rendezvousWeighted does, for the two largest draws of each class
// of equal weight, and takes the exact scores only when their slack leaves
// the order of the first two, or of the second and the rest, in doubt.
func (g *group) top2(h uint64, w *weights) (int, int) {
	seeds := g.seeds
	b1, b2 := 0, -1
	if w.uniform {
		x1, x2 := fnv1a.Mix(h^seeds[0]), uint64(0)
		for i := 1; i < len(seeds); i++ {
			x, s := fnv1a.Mix(h^seeds[i]), seeds[i]
			switch {
			case x > x1 || (x == x1 && s > seeds[b1]):
				b2, x2 = b1, x1
				b1, x1 = i, x
			case b2 < 0 || x > x2 || (x == x2 && s > seeds[b2]):
				b2, x2 = i, x
			}
		}
		return b1, b2
	}
	r := race2{b1: -1, b2: -1, c1: math.Inf(1), c2: math.Inf(1), low: math.Inf(1)}
	start := 0
	for _, cl := range w.classes {
		// The class's two largest draws are its candidates; the rest are
		// below its second by the exact scores too (classGap).
		cs := w.seeds[start:cl.end]
		var v1, v2, v3 uint64
		a1, a2 := 0, -1
		for j, s := range cs {
			v := fnv1a.Mix(h^s) >> 11
			switch {
			case v > v1:
				v3, v2, a2, v1, a1 = v2, v1, a1, v, j
			case v > v2:
				v3, v2, a2 = v2, v, j
			case v > v3:
				v3 = v
			}
		}
		if len(cs) > 1 && (a2 < 0 || v1-v2 < classGap) || len(cs) > 2 && v2-v3 < classGap {
			return g.top2Exact(h, w)
		}
		r.add(start+a1, negLog2(v1<<11)*cl.inv, cl.slack)
		if len(cs) > 1 {
			r.add(start+a2, negLog2(v2<<11)*cl.inv, cl.slack)
		}
		start = cl.end
	}
	if r.b2 < 0 {
		return int(w.order[r.b1]), -1
	}
	if r.c1+r.e1 < r.c2-r.e2 && r.c2+r.e2 < r.low {
		return int(w.order[r.b1]), int(w.order[r.b2])
	}
	return g.top2Exact(h, w)
}

// race2 keeps the two least estimated costs seen (b1, b2: positions in
// weights.seeds, -1 while unseen) with their slacks, and low, the least
// lower bound (cost minus slack) of every other candidate.
type race2 struct {
	b1, b2         int
	c1, e1, c2, e2 float64
	low            float64
}

func (r *race2) add(i int, c, e float64) {
	switch {
	case c < r.c1:
		r.low = min(r.low, r.c2-r.e2)
		r.b2, r.c2, r.e2 = r.b1, r.c1, r.e1
		r.b1, r.c1, r.e1 = i, c, e
	case c < r.c2:
		r.low = min(r.low, r.c2-r.e2)
		r.b2, r.c2, r.e2 = i, c, e
	default:
		r.low = min(r.low, c-e)
	}
}

// top2Exact is top2 by the exact scores.
func (g *group) top2Exact(h uint64, w *weights) (int, int) {
	b1, b2 := -1, -1
	var s1, s2 float64
	for i, s := range g.seeds {
		sc := weightedScore(w.w[i], fnv1a.Mix(h^s))
		switch {
		case b1 < 0 || sc > s1 || (sc == s1 && s > g.seeds[b1]):
			b2, s2 = b1, s1
			b1, s1 = i, sc
		case b2 < 0 || sc > s2 || (sc == s2 && s > g.seeds[b2]):
			b2, s2 = i, sc
		}
	}
	return b1, b2
}

// noteLatency records a settled probe of t, answered or not (timedOut), in
// its window of recent timeouts and publishes t's latency to the Balancer.
// Called with c.mu.
func (c *Checker) noteLatency(t *healthTarget, timedOut bool) {
	t.lost <<= 1
	if timedOut {
		t.lost |= 1
	}
	var rtt time.Duration
	if t.rtt.Count > 0 {
		rtt = max(t.rtt.EWMA, 1)
	}
	c.bal.SetLatency(t.addr, rtt, bits.OnesCount8(t.lost))
}
