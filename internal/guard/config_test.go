package guard

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.Defaults()
	if err := c.Validate("security"); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	want := FloodConfig{Window: 2 * time.Second, Density: 6000, BlockTime: 5 * time.Minute, TableSize: 65536}
	if c.Flood != want {
		t.Errorf("Flood = %+v, want %+v", c.Flood, want)
	}
	if len(c.Scanners.UserAgents) != len(DefaultUserAgents()) {
		t.Errorf("UserAgents = %q, want the defaults", c.Scanners.UserAgents)
	}
	c.Scanners.UserAgents[0] = "changed"
	if DefaultUserAgents()[0] == "changed" {
		t.Error("DefaultUserAgents shares its slice")
	}
	r := ReplyConfig{PerSourceRate: 20, PerSourceBurst: 40, TotalRate: 2000, TotalBurst: 4000, TableSize: 65536}
	if c.Replies != r {
		t.Errorf("Replies = %+v, want %+v", c.Replies, r)
	}
	// A list given replaces the default.
	if got := (Config{Scanners: ScannerConfig{UserAgents: []string{"x"}}}).Defaults().Scanners.UserAgents; len(got) != 1 {
		t.Errorf("configured list became %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"density negative", Config{Flood: FloodConfig{Density: -1}}, "security.flood.density: must be between 1 and 524288, got -1"},
		{"density too big", Config{Flood: FloodConfig{Density: MaxFloodDensity + 1}}, "security.flood.density: must be between 1 and 524288, got 524289"},
		{"window short", Config{Flood: FloodConfig{Window: time.Millisecond}}, "security.flood.window: must be between 100ms and 1h0m0s, got 1ms"},
		{"window negative", Config{Flood: FloodConfig{Window: -time.Second}}, "security.flood.window: must be between 100ms and 1h0m0s, got -1s"},
		{"block negative", Config{Flood: FloodConfig{BlockTime: -time.Second}}, "security.flood.block_time: must be positive, got -1s"},
		{"block too long", Config{Flood: FloodConfig{BlockTime: 24 * time.Hour}}, "security.flood.block_time: must be at most 4094 windows (2h16m28s with window 2s), got 24h0m0s"},
		{"block overflow", Config{Flood: FloodConfig{BlockTime: 1<<63 - 1}}, "security.flood.block_time: must be at most 4094 windows (2h16m28s with window 2s), got 2562047h47m16.854775807s"},
		{"flood table small", Config{Flood: FloodConfig{TableSize: 10}}, "security.flood.table_size: must be between 64 and 16777216, got 10"},
		{"trusted", Config{Trusted: []string{"10.0.0.0/8", "10.0.0.0/33"}}, `security.trusted[1]: "10.0.0.0/33": bad prefix`},
		{"scanner entry", Config{Scanners: ScannerConfig{UserAgents: []string{"a", ""}}}, "security.scanners.user_agents[1]: must be 1 to 256 bytes, got 0"},
		{"per source rate", Config{Replies: ReplyConfig{PerSourceRate: -5}}, "security.replies.per_source_rate: must be between 1 and 1000000, got -5"},
		{"per source burst", Config{Replies: ReplyConfig{PerSourceBurst: -1}}, "security.replies.per_source_burst: must be between 1 and 1000000, got -1"},
		{"total rate", Config{Replies: ReplyConfig{TotalRate: MaxReplyRate + 1}}, "security.replies.total_rate: must be between 1 and 1000000, got 1000001"},
		{"total burst", Config{Replies: ReplyConfig{TotalBurst: -2}}, "security.replies.total_burst: must be between 1 and 1000000, got -2"},
		{"reply table", Config{Replies: ReplyConfig{TableSize: 1 << 25}}, "security.replies.table_size: must be between 64 and 16777216, got 33554432"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Defaults().Validate("security")
			if err == nil || err.Error() != tc.want {
				t.Errorf("Validate = %v, want %s", err, tc.want)
			}
		})
	}
	// A disabled detector is still checked.
	if err := (Config{Flood: FloodConfig{Disabled: true, Density: -1}}).Defaults().Validate(""); err == nil || !strings.HasPrefix(err.Error(), "flood.density:") {
		t.Errorf("disabled flood: %v", err)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
flood:
  disabled: false
  window: 1s
  density: 500
  block_time: 10m
  table_size: 4096
trusted: [10.0.0.0/8, "2001:db8::/32", 192.0.2.1]
scanners:
  disabled: true
  user_agents: [evil]
replies:
  per_source_rate: 5
  per_source_burst: 10
  total_rate: 100
  total_burst: 200
  table_size: 1024
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Flood:    FloodConfig{Window: time.Second, Density: 500, BlockTime: 10 * time.Minute, TableSize: 4096},
		Trusted:  []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.1"},
		Scanners: ScannerConfig{Disabled: true, UserAgents: []string{"evil"}},
		Replies:  ReplyConfig{PerSourceRate: 5, PerSourceBurst: 10, TotalRate: 100, TotalBurst: 200, TableSize: 1024},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded %+v\nwant %+v", c, want)
	}
	if err := c.Defaults().Validate("security"); err != nil {
		t.Error(err)
	}
	dec = yaml.NewDecoder(strings.NewReader("flood:\n  densty: 5\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err == nil || !strings.Contains(err.Error(), "densty") {
		t.Errorf("unknown key: %v", err)
	}
}
