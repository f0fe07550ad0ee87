package main

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/siplb/siplb/engine"
)

// rotation keeps the Forwarder's key ring in step with the configuration
// across reloads: the configured branch secret signs; the configured
// previous_secrets verify; and a branch secret a reload replaced keeps
// verifying for secret_grace, so the dialogs whose tokens it signed (a BYE
// hours into a call) still find their way.
type rotation struct {
	fwd *engine.Forwarder
	log *slog.Logger

	mu       sync.Mutex
	cur      string
	prev     []string             // configured previous_secrets
	retiring map[string]time.Time // replaced secrets → end of their grace
	timer    *time.Timer
	stopped  bool // stop was called: a timer that fired meanwhile publishes nothing

	// The cluster's part (cluster.go): peers are the other members'
	// secrets, which verify here too; shared, when set, is told this
	// instance's own ring (cur, then what verifies) at each publish.
	peers  []string
	shared func(ring []string)
}

func newRotation(fwd *engine.Forwarder, cur string, prev []string, log *slog.Logger) *rotation {
	r := &rotation{fwd: fwd, log: log, cur: cur, prev: prev, retiring: map[string]time.Time{}}
	r.publish(time.Now())
	return r
}

// apply takes the secrets of a reloaded configuration.
func (r *rotation) apply(cur string, prev []string, grace time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if cur != r.cur {
		if grace > 0 {
			r.retiring[r.cur] = now.Add(grace)
		}
		delete(r.retiring, cur)
		r.log.Info("branch secret rotated; the previous one still verifies", "grace", grace)
		r.cur = cur
	}
	r.prev = prev
	r.publish(now)
}

// publish sets the ring from the state and arms the timer for the next
// grace period to end. Called with mu held (or before anyone else sees r).
func (r *rotation) publish(now time.Time) {
	verify := slices.Clone(r.prev)
	var next time.Time
	for s, end := range r.retiring {
		if !now.Before(end) {
			delete(r.retiring, s)
			continue
		}
		verify = append(verify, s)
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	own := append([]string{r.cur}, verify...)
	for _, s := range r.peers {
		if s != r.cur && !slices.Contains(verify, s) {
			verify = append(verify, s)
		}
	}
	r.fwd.SetSecrets(r.cur, verify...)
	if r.shared != nil {
		r.shared(own)
	}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if !next.IsZero() {
		r.timer = time.AfterFunc(time.Until(next), func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.stopped {
				r.publish(time.Now())
			}
		})
	}
}

// share tells fn this instance's ring now and at every change.
func (r *rotation) share(fn func(ring []string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shared = fn
	r.publish(time.Now())
}

// maxPeerSecrets bounds the other members' secrets that verify here: each
// is tried on a token that the ones before it failed.
const maxPeerSecrets = 32

// setPeers makes the other cluster members' secrets verify here too, so a
// token another instance minted (a dialog that moved to this one) is
// trusted after either side rotated.
func (r *rotation) setPeers(peers []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Equal(peers, r.peers) {
		return
	}
	r.peers = slices.Clone(peers[:min(len(peers), maxPeerSecrets)])
	if !r.stopped {
		r.publish(time.Now())
	}
}

// stop ends the timer.
func (r *rotation) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
}
