package balance

import (
	"fmt"
	"strings"
	"time"
)

// Defaults of HealthConfig. With them a backend is in rotation from the
// start; a dead one is noticed within (Fall-1)×Interval+Timeout of its first
// unanswered probe (12 s), or Fall×Timeout (6 s) of a hint that it is
// unreachable (Checker.Unreachable); a down one is re-probed DownInterval
// after the mark and then at gaps that grow with the outage (a tenth of it)
// up to MaxBackoff, and taken back after Rise answered probes DownInterval
// apart.
const (
	DefaultHealthInterval     = 5 * time.Second
	DefaultHealthTimeout      = 2 * time.Second
	DefaultHealthFall         = 3
	DefaultHealthRise         = 2
	DefaultHealthDownInterval = time.Second
	DefaultHealthMaxBackoff   = 30 * time.Second
)

// downBackoffShare is the share of its outage, so far, that a down backend
// waits between two failed re-probes (at least DownInterval, at most
// MaxBackoff): a backend that comes back after an outage of D is found
// within about D/10, while a long-dead one costs a probe per MaxBackoff.
const downBackoffShare = 10

// HealthConfig configures active probing of one pool with SIP OPTIONS, and
// the passive detection fed by the engine. Zero values mean the defaults.
type HealthConfig struct {
	Interval time.Duration // between probes of an up backend (default 5s)
	Timeout  time.Duration // a probe unanswered this long failed (default 2s; must be < Interval)
	Fall     int           // consecutive failures that mark an up backend down (default 3)
	Rise     int           // consecutive successes that mark a down backend up (default 2)
	// DownOn503 makes a 503 reply count as a failure (default: any final
	// response means alive), whatever ReplyCodes says.
	DownOn503 bool
	// ReplyCodes are the final statuses of a probe's reply that mean alive,
	// as Kamailio's ds_ping_reply_codes: a code ("200", "404") or a class
	// ("2xx", "4xx"). Empty (the default): any final response, since it
	// comes from the backend's SIP stack. A reply outside them is a failed
	// probe. DownOn503 still fails a listed 503.
	ReplyCodes []string
	// Disabled turns off active probing for this pool; its members are then
	// neither probed nor marked by passive detection (hints of
	// Checker.Unreachable are ignored: no probe could confirm them).
	Disabled bool
	// DownInterval is the gap between the re-probes of a down backend at
	// first, and between the answered ones that count towards Rise (default
	// 1s, or Interval if that is shorter; at most MaxBackoff). Failed
	// re-probes space out with the outage: the gap is a tenth of the time
	// the backend has been down, within [DownInterval, MaxBackoff].
	DownInterval time.Duration
	// MaxBackoff caps the gap between re-probes of a down backend (default
	// 30s; at least Interval).
	MaxBackoff time.Duration
	// PassiveFailures is the number of consecutive 5xx final responses from a
	// backend (reported through Checker.Observe) that mark it down at once;
	// 0 turns this passive detection off.
	PassiveFailures int
	// NoPassiveSuccess stops responses to traffic from counting as
	// liveness. By default a run of unanswered probes of an up backend is
	// cancelled when the backend sent a final non-5xx response to traffic
	// (Checker.Observe) since the first probe of the run was sent: it is
	// alive and ignores OPTIONS.
	NoPassiveSuccess bool
}

// WithDefaults returns h with every zero (or negative) field replaced by its
// default, and values that Validate rejects replaced by usable ones: a
// Timeout not below Interval becomes 2/5 of Interval (the ratio of the
// defaults), a MaxBackoff below Interval becomes Interval, a DownInterval
// above MaxBackoff becomes MaxBackoff, and entries of ReplyCodes that are
// no status or class are left out (in a copy).
func (h HealthConfig) WithDefaults() HealthConfig {
	if h.Interval <= 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Timeout >= h.Interval {
		h.Timeout = h.Interval * 2 / 5
	}
	if h.Fall <= 0 {
		h.Fall = DefaultHealthFall
	}
	if h.Rise <= 0 {
		h.Rise = DefaultHealthRise
	}
	if h.MaxBackoff <= 0 {
		h.MaxBackoff = DefaultHealthMaxBackoff
	}
	if h.MaxBackoff < h.Interval {
		h.MaxBackoff = h.Interval
	}
	if h.DownInterval <= 0 {
		h.DownInterval = min(DefaultHealthDownInterval, h.Interval)
	}
	if h.DownInterval > h.MaxBackoff {
		h.DownInterval = h.MaxBackoff
	}
	if h.PassiveFailures < 0 {
		h.PassiveFailures = 0
	}
	if len(h.ReplyCodes) > 0 {
		codes := make([]string, 0, len(h.ReplyCodes))
		for _, s := range h.ReplyCodes {
			if _, _, ok := parseReplyCode(s); ok {
				codes = append(codes, s)
			}
		}
		h.ReplyCodes = codes
	}
	return h
}

// Validate checks h as configured (zero meaning the default). path is the key
// of h in the configuration, e.g. "pools[1].health"; an error names the
// offending key under it: "pools[1].health.timeout: …", and the index of a
// bad entry of ReplyCodes: "pools[1].health.reply_codes[2]: …". A Disabled
// configuration is still checked, so that enabling it later cannot fail.
func (h *HealthConfig) Validate(path string) error {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"down_interval", h.DownInterval}, {"max_backoff", h.MaxBackoff}} {
		if d.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative, got %v", path, d.key, d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"fall", h.Fall}, {"rise", h.Rise}, {"passive_failures", h.PassiveFailures}} {
		if n.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative, got %d", path, n.key, n.v)
		}
	}
	interval, timeout, maxBackoff := h.Interval, h.Timeout, h.MaxBackoff
	if interval == 0 {
		interval = DefaultHealthInterval
	}
	if timeout == 0 {
		timeout = DefaultHealthTimeout
	}
	if maxBackoff == 0 {
		maxBackoff = DefaultHealthMaxBackoff
	}
	if timeout >= interval {
		return fmt.Errorf("%s.timeout: must be less than interval (%v), got %v", path, interval, timeout)
	}
	if maxBackoff < interval {
		return fmt.Errorf("%s.max_backoff: must be at least interval (%v), got %v", path, interval, maxBackoff)
	}
	if h.DownInterval > maxBackoff {
		return fmt.Errorf("%s.down_interval: must be at most max_backoff (%v), got %v", path, maxBackoff, h.DownInterval)
	}
	for i, s := range h.ReplyCodes {
		if _, _, ok := parseReplyCode(s); !ok {
			return fmt.Errorf("%s.reply_codes[%d]: want a final status (200-699) or a class (2xx-6xx), got %q", path, i, s)
		}
	}
	return nil
}

// probeConfig is a HealthConfig with its defaults applied and its
// ReplyCodes compiled, as the Checker keeps it per pool.
type probeConfig struct {
	HealthConfig
	replies  replySet // statuses that mean alive; all final ones when anyReply
	anyReply bool
}

func newProbeConfig(h HealthConfig) *probeConfig {
	pc := &probeConfig{HealthConfig: h.WithDefaults()}
	pc.anyReply = len(pc.ReplyCodes) == 0
	for _, s := range pc.ReplyCodes {
		lo, hi, _ := parseReplyCode(s)
		for st := lo; st <= hi; st++ {
			pc.replies.add(st)
		}
	}
	return pc
}

// alive reports whether a final reply to a probe with this status means
// alive. It does not allocate.
func (pc *probeConfig) alive(status int) bool {
	if status == 503 && pc.DownOn503 {
		return false
	}
	return pc.anyReply || pc.replies.has(status)
}

// replySet is a set of SIP statuses 0-703, a bit each.
type replySet [11]uint64

func (s *replySet) add(status int) { s[status>>6] |= 1 << (status & 63) }

func (s *replySet) has(status int) bool {
	return status >= 0 && status>>6 < len(s) && s[status>>6]&(1<<(status&63)) != 0
}

// parseReplyCode reads an entry of ReplyCodes: a final status "200"-"699"
// or a class "2xx"-"6xx" (either case), and returns the statuses it covers.
func parseReplyCode(s string) (lo, hi int, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) != 3 || s[0] < '2' || s[0] > '6' {
		return 0, 0, false
	}
	class := int(s[0]-'0') * 100
	if (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X') {
		return class, class + 99, true
	}
	if s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
		return 0, 0, false
	}
	st := class + int(s[1]-'0')*10 + int(s[2]-'0')
	return st, st, true
}
