package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The data path's log limit: at most burst lines per message per window;
// the first line let through after some were dropped says how many.
func TestRateLimit(t *testing.T) {
	var out bytes.Buffer
	h := newRateLimit(slog.NewTextHandler(&out, nil), 3, 10*time.Second)
	now := time.Unix(1700000000, 0)
	h.state.now = func() time.Time { return now }
	log := slog.New(h)
	other := log.With("leg", "udp") // shares the limit

	for i := range 10 {
		log.Warn("source blocked by the flood detector", "n", i)
	}
	other.Warn("connect failed") // another message: its own limit
	now = now.Add(5 * time.Second)
	other.Warn("source blocked by the flood detector", "n", 10) // same window, same message: dropped
	now = now.Add(6 * time.Second)                              // a new window
	log.Warn("source blocked by the flood detector", "n", 11)
	log.Warn("source blocked by the flood detector", "n", 12)

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var blocked, suppressed []string
	for _, l := range lines {
		if strings.Contains(l, "flood detector") {
			blocked = append(blocked, l)
		}
		if strings.Contains(l, "suppressed=") {
			suppressed = append(suppressed, l)
		}
	}
	if len(blocked) != 5 {
		t.Fatalf("%d lines of the flood message, want 3 in the first window and 2 in the next:\n%s", len(blocked), out.String())
	}
	if len(suppressed) != 1 || !strings.Contains(suppressed[0], "n=11") || !strings.Contains(suppressed[0], "suppressed=8") {
		t.Errorf("want one line (n=11) saying suppressed=8 (n=3..10), got %q", suppressed)
	}
	if !strings.Contains(out.String(), `msg="connect failed" leg=udp`) {
		t.Errorf("another message was limited with the first:\n%s", out.String())
	}
}

// Past logKeys distinct messages (gnet formats its own), the rest share one
// limit: the state stays bounded.
func TestRateLimitKeysBounded(t *testing.T) {
	var out bytes.Buffer
	h := newRateLimit(slog.NewTextHandler(&out, nil), 1, time.Minute)
	log := slog.New(h)
	for i := range 3 * logKeys {
		log.Warn("gnet: error " + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if n := len(h.state.keys); n > logKeys+1 {
		t.Errorf("%d messages tracked, want at most %d", n, logKeys+1)
	}
	if n := strings.Count(out.String(), "\n"); n != logKeys+1 {
		t.Errorf("%d lines let through, want %d (one per tracked message, one for the rest)", n, logKeys+1)
	}
}

// log.format json writes one JSON object a line; the level follows the
// LevelVar a reload sets.
func TestLoggerFormatAndLevel(t *testing.T) {
	var out bytes.Buffer
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	log := newLogger(&out, "json", lv)
	log.Info("hidden")
	lv.Set(parseLevel("debug"))
	log.Debug("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	if rec["msg"] != "shown" || rec["level"] != "DEBUG" || rec["k"] != float64(1) {
		t.Errorf("record %v", rec)
	}
}
