package guard

import (
	"fmt"
	"time"
)

// Flood detector defaults, and the bounds Validate holds them to.
//
// The defaults sit between the busiest single client siplb should expect and
// the slowest flood worth stopping. A SIP phone sends a few messages a
// second; the lead's load test, 200 calls/s from one address, brings about
// 700-900 datagrams/s from that address, and up to twice that when the
// backends answering it share the address (127.0.0.1): at most 3,600 in a
// 2 s window. A flood from one source (SIPVicious, an INVITE or REGISTER
// cannon) sends tens of thousands a second. 6,000 per 2 s window (3,000/s on
// average) is near the geometric middle of 900/s and 10,000/s: a 900/s client
// stays 3.3 times under it, the doubled 1,800/s load 1.7 times, and a
// 10,000/s flood is 3.3 times over it and blocked within 0.6 s. The 2 s
// window absorbs the bursts a legitimate client makes (a PBX re-registering
// its phones after a restart); sources busier than this (trunks, SBCs,
// other proxies) belong in trusted.
//
// A block lasts BlockTime after the last window in which the source went
// over the density, so a flood that goes on stays blocked with nothing
// leaking through, and a flood that stops and starts again gets at most
// Density messages through per BlockTime (6,000 per 5 minutes, 20/s).
const (
	DefaultFloodWindow    = 2 * time.Second
	DefaultFloodDensity   = 6000
	DefaultFloodBlockTime = 5 * time.Minute
	DefaultFloodTableSize = 65536 // 1 MiB (16 bytes a slot)

	MinFloodWindow  = 100 * time.Millisecond
	MaxFloodWindow  = time.Hour
	MaxFloodDensity = 1 << 19 // a slot's count has 20 bits
	MaxBlockWindows = 4094    // a slot's remaining block has 12 bits, less the window in progress
	MinTableSize    = 64
	MaxTableSize    = 1 << 24
	MaxScanners     = 1024 // user_agents entries
	MaxScannerLen   = 256  // bytes of one entry
	MaxReplyRate    = 1_000_000
	MaxReplyBurst   = 1_000_000
)

// Reply limiter defaults. A stateless reply (400, 483, 503 …) is about the
// size of the request it answers, so one reply per request already bounds
// the byte ratio; what the limiter stops is reflection at a victim whose
// address a junk sender spoofs. 20 replies/s per source (burst 40) are far
// more than any one client's malformed or refused requests, and cap what a
// victim's /64 or address receives at about 10 KB/s; 2,000/s in total
// (burst 4,000) caps all reflection at about 1 MB/s (8 Mbit/s) whatever
// arrives.
const (
	DefaultReplyPerSourceRate  = 20
	DefaultReplyPerSourceBurst = 40
	DefaultReplyTotalRate      = 2000
	DefaultReplyTotalBurst     = 4000
	DefaultReplyTableSize      = 65536 // 512 KiB (8 bytes a bucket)
)

// DefaultUserAgents returns the default scanner signatures, matched as
// case-insensitive substrings of a User-Agent or From display name: the
// five of Kamailio's secfilter examples (friendly-scanner and sipvicious
// from SIPVicious, sipcli, VaxSIPUserAgent, pplsip) and other widely seen
// scanners (sip-scan, iWar, sundayddr, SIVuS, siparmyknife). The list is
// fresh on each call.
func DefaultUserAgents() []string {
	return []string{
		"friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "pplsip",
		"sip-scan", "iWar", "sundayddr", "SIVuS", "siparmyknife",
	}
}

// Config configures a Guard; it is the `security` section of siplb's
// configuration. The zero value of each field means its default (Defaults
// fills them); a list given replaces its default.
type Config struct {
	Flood    FloodConfig   `yaml:"flood"`    // per-source flood detection (pike)
	Trusted  []string      `yaml:"trusted"`  // IP or IP/len of sources never blocked by flood nor reply-limited (default none)
	Scanners ScannerConfig `yaml:"scanners"` // dropping known scanners by User-Agent (secfilter)
	Replies  ReplyConfig   `yaml:"replies"`  // limits of stateless replies to UDP senders
}

// FloodConfig configures the flood detector. Disabled (rather than an
// enabled flag) keeps the zero value meaning "on with the defaults", as
// health.disabled does.
type FloodConfig struct {
	Disabled  bool          `yaml:"disabled"`   // no flood detection (default false: on)
	Window    time.Duration `yaml:"window"`     // sampling window (default 2s; 100ms to 1h)
	Density   int           `yaml:"density"`    // messages per window from one source (IPv6: one /64) above which it is blocked (default 6000)
	BlockTime time.Duration `yaml:"block_time"` // how long a source stays blocked after its last window over density (default 5m; rounded up to whole windows, at most 4094 windows)
	TableSize int           `yaml:"table_size"` // sources tracked at once, rounded up to a power of two (default 65536; 64 to 16777216)
}

// ScannerConfig configures the scanner filter.
type ScannerConfig struct {
	Disabled   bool     `yaml:"disabled"`    // no scanner filter (default false: on)
	UserAgents []string `yaml:"user_agents"` // case-insensitive substrings of a User-Agent or From display name (default: DefaultUserAgents; a list given replaces it)
}

// ReplyConfig bounds the stateless replies sent to UDP senders. Rates are
// replies per second; a burst is how many may go at once after a quiet time.
type ReplyConfig struct {
	PerSourceRate  int `yaml:"per_source_rate"`  // per source address (IPv6: per /64) (default 20)
	PerSourceBurst int `yaml:"per_source_burst"` // (default 40)
	TotalRate      int `yaml:"total_rate"`       // all sources together (default 2000)
	TotalBurst     int `yaml:"total_burst"`      // (default 4000)
	TableSize      int `yaml:"table_size"`       // per-source buckets, rounded up to a power of two; sources that share one share its budget (default 65536; 64 to 16777216)
}

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	c.Flood = c.Flood.Defaults()
	c.Replies = c.Replies.Defaults()
	if len(c.Scanners.UserAgents) == 0 {
		c.Scanners.UserAgents = DefaultUserAgents()
	}
	return c
}

// Validate checks c after Defaults; path prefixes the keys in errors
// ("security" gives "security.flood.density: …").
func (c Config) Validate(path string) error {
	if err := c.Flood.Validate(join(path, "flood")); err != nil {
		return err
	}
	if _, err := ParseCIDRSet(join(path, "trusted"), c.Trusted); err != nil {
		return err
	}
	if _, err := NewScanners(join(path, "scanners.user_agents"), c.Scanners.UserAgents); err != nil {
		return err
	}
	return c.Replies.Validate(join(path, "replies"))
}

// Defaults returns f with every zero field set to its default.
func (f FloodConfig) Defaults() FloodConfig {
	if f.Window == 0 {
		f.Window = DefaultFloodWindow
	}
	if f.Density == 0 {
		f.Density = DefaultFloodDensity
	}
	if f.BlockTime == 0 {
		f.BlockTime = DefaultFloodBlockTime
	}
	if f.TableSize == 0 {
		f.TableSize = DefaultFloodTableSize
	}
	return f
}

// Validate checks f after Defaults; path prefixes the keys in errors. A
// disabled detector is checked too, so turning it back on cannot surprise.
func (f FloodConfig) Validate(path string) error {
	switch {
	case f.Window < MinFloodWindow || f.Window > MaxFloodWindow:
		return fmt.Errorf("%s: must be between %s and %s, got %s", join(path, "window"), MinFloodWindow, MaxFloodWindow, f.Window)
	case f.Density < 1 || f.Density > MaxFloodDensity:
		return fmt.Errorf("%s: must be between 1 and %d, got %d", join(path, "density"), MaxFloodDensity, f.Density)
	case f.BlockTime <= 0:
		return fmt.Errorf("%s: must be positive, got %s", join(path, "block_time"), f.BlockTime)
	case blockWindows(f.BlockTime, f.Window) > MaxBlockWindows:
		return fmt.Errorf("%s: must be at most %d windows (%s with window %s), got %s",
			join(path, "block_time"), MaxBlockWindows, MaxBlockWindows*f.Window, f.Window, f.BlockTime)
	case f.TableSize < MinTableSize || f.TableSize > MaxTableSize:
		return fmt.Errorf("%s: must be between %d and %d, got %d", join(path, "table_size"), MinTableSize, MaxTableSize, f.TableSize)
	}
	return nil
}

// Defaults returns r with every zero field set to its default.
func (r ReplyConfig) Defaults() ReplyConfig {
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	set(&r.PerSourceRate, DefaultReplyPerSourceRate)
	set(&r.PerSourceBurst, DefaultReplyPerSourceBurst)
	set(&r.TotalRate, DefaultReplyTotalRate)
	set(&r.TotalBurst, DefaultReplyTotalBurst)
	set(&r.TableSize, DefaultReplyTableSize)
	return r
}

// Validate checks r after Defaults; path prefixes the keys in errors.
func (r ReplyConfig) Validate(path string) error {
	for _, v := range []struct {
		key      string
		val, max int
	}{
		{"per_source_rate", r.PerSourceRate, MaxReplyRate},
		{"per_source_burst", r.PerSourceBurst, MaxReplyBurst},
		{"total_rate", r.TotalRate, MaxReplyRate},
		{"total_burst", r.TotalBurst, MaxReplyBurst},
	} {
		if v.val < 1 || v.val > v.max {
			return fmt.Errorf("%s: must be between 1 and %d, got %d", join(path, v.key), v.max, v.val)
		}
	}
	if r.TableSize < MinTableSize || r.TableSize > MaxTableSize {
		return fmt.Errorf("%s: must be between %d and %d, got %d", join(path, "table_size"), MinTableSize, MaxTableSize, r.TableSize)
	}
	return nil
}

// blockWindows is the number of whole windows a block of d lasts at least.
func blockWindows(d, window time.Duration) int64 {
	n := int64(d / window)
	if d%window != 0 {
		n++
	}
	return n
}

// join appends key to a configuration path ("security" + "flood" →
// "security.flood"); an empty path gives key alone.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
