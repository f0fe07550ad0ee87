package balance

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"

	"github.com/siplb/siplb/internal/fnv1a"
)

// Admission of new dialogs: a member that asks for less traffic (an RFC
// 7339 overload report) or that is past its MaxCPS cap gives way to the
// next member of its priority group, and when none can take the dialog the
// caller answers 503. Only new dialogs are admitted or refused: a request
// inside a dialog goes where its Route or Request-URI says, whatever the
// member's load.

// Limits of the admission settings.
const (
	// MaxCPS bounds BackendConfig.MaxCPS and PoolConfig.MaxCPS.
	MaxCPS = 1e6
	// MaxOverloadValidity bounds the validity of an overload report (RFC
	// 7339 oc-validity, in ms) siplb honours: a longer one is cut to it,
	// so a member that sends a huge value and dies is not shed for ever.
	MaxOverloadValidity = 3600_000
	// DefaultOverloadValidity is the validity of a report without
	// oc-validity, in ms (RFC 7339 §5.2: 500 ms).
	DefaultOverloadValidity = 500
	// maxAlternates bounds the members tried after the pick is refused.
	maxAlternates = 8
)

// ErrMaxCPS is returned for a MaxCPS out of 0..MaxCPS.
var ErrMaxCPS = errors.New("max_cps out of range")

// Refusal says why a pool found no member to take a new dialog.
type Refusal uint8

const (
	// Admitted: a member took it.
	Admitted Refusal = iota
	// NoMember: no member of the pool is Up.
	NoMember
	// RefusedOverload: the members tried shed it by their overload reports.
	RefusedOverload
	// RefusedRate: the members tried were past their MaxCPS (or shed it by
	// overload, the first one by its cap).
	RefusedRate
)

// Admit is what the admission of one new dialog needs to know.
type Admit struct {
	// Dialog is a hash of the dialog's identity (HashKey of its Call-ID):
	// whether an overload report sheds it is a function of Dialog, so a
	// retransmission of the INVITE gets the decision the first one got, on
	// every instance.
	Dialog uint64
	// DialogIsKey says the key handed to PickAdmitted is the Call-ID
	// itself: Dialog is then its HashKey, computed once there, unless the
	// caller has set Dialog to it already (a nonzero Dialog is taken as
	// HashKey(key); leave it 0 otherwise).
	DialogIsKey bool
	// Now is the time in UnixNano (a coarse clock will do).
	Now int64
	// Stripe is the caller's stripe of the counters (BackendStats).
	Stripe int
}

// Overload is the admission state of one backend address: the last
// overload report it sent and the token bucket of its MaxCPS cap. It lives
// in the address's BackendStats, so it outlives reloads and health changes.
// Reading it (admission) is lock-free; Report serializes its writers.
//
// The bucket is one word for every event loop: a share per loop would have
// to know how many loops (and TLS readers, and UDP sockets of each leg)
// take new dialogs, and one share per counter stripe over-admits by as
// much as there are more stripes than loops. One compare-and-swap per new
// dialog to a capped member is the whole cost.
type Overload struct {
	report atomic.Uint64 // reduction<<56 | expiry in Unix ms; 0: none
	_      [56]byte
	tat    atomic.Int64 // the MaxCPS bucket as GCRA: its theoretical arrival time (UnixNano)
	_      [56]byte
	mu     sync.Mutex // serializes Report
	seq    uint64     // the last accepted oc-seq, scaled (ParseOCSeq); guarded by mu
	has    bool       // seq is set; guarded by mu
	st     [statStripes]admitStripe
}

type admitStripe struct {
	shedOverload, shedRt atomic.Uint64 // new dialogs it refused, by reason
	_                    [64 - 2*8]byte
}

const expiryMask = 1<<56 - 1

// OverloadReport is a member's overload report (RFC 7339 §5.2), as the
// parameters of the Via it answers in carry it.
type OverloadReport struct {
	Reduction int    // oc: the share of new dialogs to shed, 0..100 (loss algorithm)
	Validity  int    // oc-validity in ms; 0 ends overload control
	Seq       uint64 // oc-seq scaled by ParseOCSeq
}

// OverloadState is a read of Overload.
type OverloadState struct {
	Reduction    int    // the share of new dialogs shed now, 0 when no report is in force
	ExpiresMs    int64  // Unix ms when the report in force ends; 0 when none
	Seq          uint64 // the last accepted oc-seq, scaled
	ShedOverload uint64 // new dialogs it refused by its overload reports
	ShedRate     uint64 // new dialogs it refused past its MaxCPS
}

// Report records r, received at now (UnixNano), if it is newer than the
// last one accepted (RFC 7339 §5.2: a larger oc-seq). A lower one than the
// last is taken only when no report is in force any more (the member
// restarted its sequence); an equal one never (a late copy). It reports
// whether r was taken.
func (o *Overload) Report(r OverloadReport, now int64) bool {
	if r.Reduction < 0 || r.Reduction > 100 || r.Validity < 0 {
		return false
	}
	nowMs := now / 1e6
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.has {
		live := o.liveAt(nowMs)
		if r.Seq == o.seq || (r.Seq < o.seq && live) {
			return false
		}
	}
	o.seq, o.has = r.Seq, true
	if r.Validity == 0 || r.Reduction == 0 {
		o.report.Store(0)
		return true
	}
	v := min(r.Validity, MaxOverloadValidity)
	o.report.Store(uint64(r.Reduction)<<56 | uint64(nowMs+int64(v))&expiryMask)
	return true
}

func (o *Overload) liveAt(nowMs int64) bool {
	w := o.report.Load()
	return w != 0 && int64(w&expiryMask) > nowMs
}

// Read returns the state at now (UnixNano) and the sums of the stripes.
func (o *Overload) Read(now int64) OverloadState {
	var s OverloadState
	if w := o.report.Load(); w != 0 && int64(w&expiryMask) > now/1e6 {
		s.Reduction, s.ExpiresMs = int(w>>56), int64(w&expiryMask)
	}
	o.mu.Lock()
	s.Seq = o.seq
	o.mu.Unlock()
	for i := range o.st {
		s.ShedOverload += o.st[i].shedOverload.Load()
		s.ShedRate += o.st[i].shedRt.Load()
	}
	return s
}

// sheds reports whether the report in force sheds the dialog d: the
// reduction is a share of the dialog hashes, salted so that it does not
// follow the rendezvous draws.
func (o *Overload) sheds(d uint64, now int64) bool {
	w := o.report.Load()
	if w == 0 || int64(w&expiryMask) <= now/1e6 {
		return false
	}
	return fnv1a.Mix(d^shedSalt)%100 < w>>56
}

// shedSalt keeps the shed draw independent of the rendezvous draws.
const shedSalt = 0x6f632d6c6f737321 // "oc-loss!"

// take takes a token of the bucket, which refills one token every
// interval ns and holds at most a second's worth (at least one).
func (o *Overload) take(now, interval int64) bool {
	tau := max(int64(1e9)-interval, 0) // burst tolerance: a full bucket
	for {
		old := o.tat.Load()
		tat := max(old, now)
		if tat-now > tau {
			return false
		}
		if o.tat.CompareAndSwap(old, tat+interval) {
			return true
		}
	}
}

// Overload returns the admission state of b's address.
func (b *Backend) Overload() *Overload { return &b.Stats.ol }

// admit checks a new dialog against b's overload report and MaxCPS,
// counting a refusal.
func (b *Backend) admit(a *Admit) Refusal {
	o := &b.Stats.ol
	st := &o.st[uint(a.Stripe)%statStripes]
	if o.sheds(a.Dialog, a.Now) {
		st.shedOverload.Add(1)
		return RefusedOverload
	}
	if b.cpsInterval > 0 && !o.take(a.Now, b.cpsInterval) {
		st.shedRt.Add(1)
		return RefusedRate
	}
	return Admitted
}

// PickAdmitted is Pick for a new dialog under admission control: when the
// pick sheds it by its overload report or is past its MaxCPS, the next
// members of the same priority group are tried (in the hashed algorithms'
// rendezvous order, else in list order after it), at most maxAlternates of
// them. It returns the member that admitted the dialog, or nil and the
// first refusal (NoMember when no member is Up). It does not allocate.
func (p *Pool) PickAdmitted(key []byte, a *Admit) (*Backend, Refusal) {
	var h uint64
	if a.DialogIsKey && a.Dialog != 0 {
		h = a.Dialog // the caller's HashKey(key); a zero hash is computed again, the same
	} else if p.alg.Hashed() || a.DialogIsKey {
		h = HashKey(key)
	}
	if a.DialogIsKey {
		a.Dialog = h
	}
	b, ok := p.pick(h)
	if !ok {
		return nil, NoMember
	}
	why := b.admit(a)
	if why == Admitted {
		return b, Admitted
	}
	g := p.groupOf(b)
	if g == nil {
		return nil, why
	}
	w := &g.hashW
	if p.alg == LeastLatency {
		w = &g.latW
	}
	prev := g.indexOf(b)
	for range min(len(g.avail)-1, maxAlternates) {
		if p.alg.Hashed() {
			prev = g.nextRanked(h, prev, w)
		} else {
			prev = (prev + 1) % len(g.avail)
		}
		if prev < 0 {
			break
		}
		if c := g.avail[prev]; c.admit(a) == Admitted {
			return c, Admitted
		}
	}
	return nil, why
}

// groupOf returns the group of p whose avail holds b.
func (p *Pool) groupOf(b *Backend) *group {
	for i := range p.groups {
		if g := &p.groups[i]; g.priority == b.Priority && g.indexOf(b) >= 0 {
			return g
		}
	}
	return nil
}

func (g *group) indexOf(b *Backend) int {
	for i, c := range g.avail {
		if c == b {
			return i
		}
	}
	return -1
}

// nextRanked returns the index of the member ranked just below avail[i] for
// key hash h (by the rendezvous score over weights w, ties by seed), -1
// when i is last.
func (g *group) nextRanked(h uint64, i int, w *weights) int {
	ps, pseed := g.score(h, i, w), g.seeds[i]
	best, bs := -1, 0.0
	for j, s := range g.seeds {
		sc := g.score(h, j, w)
		if sc > ps || (sc == ps && s >= pseed) {
			continue // ranked above (or is) avail[i]
		}
		if best < 0 || sc > bs || (sc == bs && s > g.seeds[best]) {
			best, bs = j, sc
		}
	}
	return best
}

// score is the rendezvous score of avail[i] for key hash h, on one scale
// for both weightings: the raw draw for uniform weights, else -w/ln(u).
func (g *group) score(h uint64, i int, w *weights) float64 {
	x := fnv1a.Mix(h ^ g.seeds[i])
	if w.uniform {
		return float64(x)
	}
	return weightedScore(w.w[i], x)
}

// ReplacesAffinity reports whether a new INVITE with Replaces or Join (and
// a REFER whose Refer-To carries Replaces) is hashed by the Call-ID of the
// dialog it names: on by default for HashCallID, never for the others.
func (p *Pool) ReplacesAffinity() bool { return p.replaces }

// OverloadControl reports whether siplb offers RFC 7339 overload control to
// the pool's members and honours their reports (on by default).
func (p *Pool) OverloadControl() bool { return p.overload }

// setAdmission fills the admission settings of b from its configuration.
func (b *Backend) setAdmission(bc *BackendConfig) {
	b.MaxCPS = bc.MaxCPS
	if bc.MaxCPS > 0 {
		b.cpsInterval = max(int64(1e9/bc.MaxCPS), 1)
	}
}

// checkMaxCPS validates a MaxCPS value.
func checkMaxCPS(v float64) error {
	if math.IsNaN(v) || v < 0 || v > MaxCPS {
		return ErrMaxCPS
	}
	return nil
}

// ParseOCSeq parses an oc-seq value (RFC 7339 §9: 1*12DIGIT "." 1*5DIGIT,
// a timestamp) into one comparable number: the integer part times 10^5
// plus the fraction read as five digits ("1.5" is 1.50000). A missing
// fraction is taken as 0. It reports false for anything else.
func ParseOCSeq(b []byte) (uint64, bool) {
	var ip, fp uint64
	i, n := 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n++; n > 12 {
			return 0, false
		}
		ip = ip*10 + uint64(b[i]-'0')
	}
	if n == 0 {
		return 0, false
	}
	digits := 0
	if i < len(b) {
		if b[i] != '.' {
			return 0, false
		}
		for i++; i < len(b); i++ {
			c := b[i]
			if c < '0' || c > '9' || digits == 5 {
				return 0, false
			}
			fp = fp*10 + uint64(c-'0')
			digits++
		}
		if digits == 0 {
			return 0, false
		}
	}
	for ; digits < 5; digits++ {
		fp *= 10
	}
	return ip*100000 + fp, true
}
