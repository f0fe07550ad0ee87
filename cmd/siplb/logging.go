package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// parseLevel maps log.level to slog's levels (checked by Validate).
func parseLevel(level string) slog.Level {
	switch level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// newLogger returns siplb's logger: slog's text or JSON lines (log.format)
// on w, at the level of lv, which a reload may change (log.level).
func newLogger(w io.Writer, format string, lv *slog.LevelVar) *slog.Logger {
	o := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// The data path's logging limit: at most logBurst lines per message in each
// logWindow.
const (
	logBurst  = 10
	logWindow = 10 * time.Second
	// logKeys bounds the messages tracked; beyond it, new messages share
	// one limit (gnet's messages are formatted, so they vary).
	logKeys = 256
)

// rateLimit is a slog.Handler that passes at most burst records with the
// same message per window to the handler it wraps, and drops the rest.
// The first record of a message let through after some were dropped
// carries suppressed=K: how many were left out since the last one logged.
// It guards the log against what the network makes happen per packet or
// per connection (a source blocked, a connect failing, a datagram on no
// leg): such lines say what is going on, their number only how much.
// Handlers made by WithAttrs and WithGroup share the limit. Safe for
// concurrent use.
type rateLimit struct {
	next  slog.Handler
	state *limitState
}

type limitState struct {
	burst  int
	window time.Duration
	now    func() time.Time // time.Now but in tests

	mu   sync.Mutex
	keys map[string]*limitKey
}

type limitKey struct {
	start      time.Time // of the current window
	n          int       // records let through in it
	suppressed int       // records dropped since the last one let through
}

// newRateLimit wraps next with a limit of burst records per message per
// window.
func newRateLimit(next slog.Handler, burst int, window time.Duration) *rateLimit {
	return &rateLimit{next: next, state: &limitState{burst: burst, window: window, now: time.Now, keys: map[string]*limitKey{}}}
}

// Enabled implements slog.Handler.
func (h *rateLimit) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *rateLimit) Handle(ctx context.Context, r slog.Record) error {
	pass, suppressed := h.state.admit(r.Message)
	if !pass {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *rateLimit) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateLimit{next: h.next.WithAttrs(as), state: h.state}
}

// WithGroup implements slog.Handler.
func (h *rateLimit) WithGroup(name string) slog.Handler {
	return &rateLimit{next: h.next.WithGroup(name), state: h.state}
}

// admit says whether a record with message msg is let through, and how
// many of its kind were dropped before it.
func (s *limitState) admit(msg string) (bool, int) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[msg]
	if k == nil {
		if len(s.keys) >= logKeys {
			msg = ""
			k = s.keys[msg]
		}
		if k == nil {
			k = &limitKey{start: now}
			s.keys[msg] = k
		}
	}
	if now.Sub(k.start) >= s.window {
		k.start, k.n = now, 0
	}
	if k.n >= s.burst {
		k.suppressed++
		return false, 0
	}
	k.n++
	n := k.suppressed
	k.suppressed = 0
	return true, n
}

var _ slog.Handler = (*rateLimit)(nil)
