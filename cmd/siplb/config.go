package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/internal/guard"
	"github.com/siplb/siplb/internal/hep"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// Config is the YAML configuration of siplb. The field comments are the
// reference; README.md's table lists every key (a test checks it).
type Config struct {
	Listen  []ListenConfig `yaml:"listen"` // listening sockets (legs); at least one
	Pools   []PoolConfig   `yaml:"pools"`  // backend pools; at least one
	Engine  EngineConfig   `yaml:"engine"`
	Streams pool.Limits    `yaml:"streams"` // TCP/TLS connections (SocketPool limits)
	DNS     DNSConfig      `yaml:"dns"`     // the resolver for discovery and next hops named by domain
	Routing RoutingConfig  `yaml:"routing"` // where requests from backends to other destinations go
	Admin   AdminConfig    `yaml:"admin"`
	Log     LogConfig      `yaml:"log"`
	// Shutdown says how SIGTERM and SIGINT stop siplb: by a drain.
	Shutdown ShutdownConfig `yaml:"shutdown"`
	// Security is the edge defences: flood detector, scanner filter,
	// stateless-reply limits, trusted sources (on by default).
	Security guard.Config `yaml:"security"`
	// Cluster makes this instance a member of a cluster of siplb instances
	// that share health, drains and key rings (cluster_config.go; off by
	// default).
	Cluster ClusterConfig `yaml:"cluster"`

	// Capture mirrors every SIP message to a Homer collector (HEPv3).
	Capture CaptureConfig `yaml:"capture"`
}

// ListenConfig is one leg.
type ListenConfig struct {
	Address   string         `yaml:"address"`   // udp://IP:PORT, tcp://IP:PORT, tls://IP:PORT, ws://IP:PORT or wss://IP:PORT (required)
	Name      string         `yaml:"name"`      // label in logs and metrics (default: the address)
	Advertise string         `yaml:"advertise"` // host[:port] written in Via and Record-Route (default: the address; required for 0.0.0.0)
	Pool      string         `yaml:"pool"`      // pool that requests from outside go to (default: the first pool)
	TLS       *siptls.Config `yaml:"tls"`       // certificates of a tls:// or wss:// listener; a tls:// one's also dial tls:// backends
	Allow     []string       `yaml:"allow"`     // only these source IPs/CIDRs are admitted, when set
	Deny      []string       `yaml:"deny"`      // these source IPs/CIDRs are refused (wins over allow)
	// Origins, on a ws:// or wss:// listener, are the web origins whose
	// pages may open a WebSocket: "https://app.example.com" (exact) or
	// "*.example.com" (any host below it). Empty: any.
	Origins []string `yaml:"origins"`
	// ProxyProtocol, on a tcp://, tls://, ws:// or wss:// listener, are
	// the IPs/CIDRs of load balancers whose connections start with a
	// PROXY protocol header (v1 or v2), whose client address then stands
	// for the connection's everywhere. Empty: off.
	ProxyProtocol []string `yaml:"proxy_protocol"`
}

// PoolConfig is one backend pool.
type PoolConfig struct {
	Name      string            `yaml:"name"`      // unique pool name (required)
	Algorithm string            `yaml:"algorithm"` // hash-callid (default), hash-from-user, hash-to-user, hash-ruri, round-robin, weighted-round-robin, random, least-latency, least-latency-p2c
	Backends  []BackendConfig   `yaml:"backends"`  // members; at least one
	Health    HealthConfig      `yaml:"health"`    // active probing with SIP OPTIONS and passive detection
	Discovery []DiscoveryConfig `yaml:"discovery"` // members from DNS, added to (or instead of) backends
	// BackendSources are source IPs/CIDRs whose requests count as this
	// pool's backends' whatever their port or connection.
	BackendSources []string `yaml:"backend_sources"`
	// BackendCerts are certificate names (Common Name or DNS SAN) whose
	// verified TLS client certificate makes a peer one of this pool's
	// backends.
	BackendCerts []string `yaml:"backend_certs"`

	// Admission of new dialogs (README: Affinity beyond the Call-ID;
	// Overload control and call-rate caps).
	ReplacesAffinity *bool   `yaml:"replaces_affinity"` // hash an INVITE with Replaces or Join, and a REFER whose Refer-To carries Replaces, by the Call-ID it names (default true; only for the algorithms that hash the Call-ID)
	OverloadControl  *bool   `yaml:"overload_control"`  // offer RFC 7339 loss-based overload control to the members and honour their reports (default true)
	MaxCPS           float64 `yaml:"max_cps"`           // new dialogs per second each member takes, 0..1000000 (default 0: no cap); a backend's own max_cps wins
}

// DiscoveryConfig takes pool members from DNS, refreshed at the records' TTL.
type DiscoveryConfig struct {
	SRV       string `yaml:"srv"`       // an SRV name, e.g. _sip._udp.farm.example. (priority and weight from the records)
	Host      string `yaml:"host"`      // or a name whose A/AAAA records are members
	Port      uint16 `yaml:"port"`      // port of host's members (default 5060)
	Transport string `yaml:"transport"` // transport of host's members: udp (default), tcp, tls
	Weight    int    `yaml:"weight"`    // weight of host's members (default 1)
}

// DNSConfig configures the resolver (RFC 3263).
type DNSConfig struct {
	Servers     []string      `yaml:"servers"`      // IP[:port] of resolvers (default: /etc/resolv.conf)
	Timeout     time.Duration `yaml:"timeout"`      // per query (default 2s)
	MinTTL      time.Duration `yaml:"min_ttl"`      // floor of a cached answer's life (default 5s)
	MaxTTL      time.Duration `yaml:"max_ttl"`      // ceiling (default 1h)
	NegativeTTL time.Duration `yaml:"negative_ttl"` // life of a negative answer without SOA (default 30s)
}

// RoutingConfig is the Dispatcher page's routing options.
type RoutingConfig struct {
	OutgoingProxy string            `yaml:"outgoing_proxy"` // udp://host:port, tcp://..., tls://... or host[:port]: takes backend requests to non-members
	Domain2Proxy  map[string]string `yaml:"domain2proxy"`   // domain → proxy; "*.example.com" covers the domain and its subdomains, "*" is the fallback
}

// HealthConfig configures the health checks of one pool. A backend starts in
// rotation and is probed at once.
type HealthConfig struct {
	Disabled  bool          `yaml:"disabled"`    // no active probing (default false: probing on)
	Interval  time.Duration `yaml:"interval"`    // between probes of an up backend (default 5s)
	Timeout   time.Duration `yaml:"timeout"`     // a probe unanswered this long failed (default 2s; below interval)
	Fall      int           `yaml:"fall"`        // consecutive failed probes that mark a backend down (default 3)
	Rise      int           `yaml:"rise"`        // consecutive answered probes, down_interval apart, that mark it up (default 2)
	DownOn503 bool          `yaml:"down_on_503"` // a 503 answer counts as a failure (default: any answer is alive)
	// ReplyCodes are the probe answers that mean alive: codes and classes,
	// e.g. [200, 2xx, 404, 4xx] (default: any final answer).
	ReplyCodes []string `yaml:"reply_codes"`
	// DownInterval is the gap between re-probes of a down backend at first
	// (default 1s, or interval if shorter); failed ones space out to a
	// tenth of the outage, up to max_backoff.
	DownInterval    time.Duration `yaml:"down_interval"`
	MaxBackoff      time.Duration `yaml:"max_backoff"`      // largest gap between re-probes of a down backend (default 30s)
	PassiveFailures int           `yaml:"passive_failures"` // consecutive 5xx from a backend that mark it down (default 0: off)
	// PassiveSuccess counts final non-5xx responses to traffic as liveness:
	// unanswered probes of a backend that answers calls are not failures
	// (default true).
	PassiveSuccess *bool `yaml:"passive_success"`
}

func (h HealthConfig) balance() balance.HealthConfig {
	return balance.HealthConfig{
		Interval: h.Interval, Timeout: h.Timeout, Fall: h.Fall, Rise: h.Rise,
		DownOn503: h.DownOn503, ReplyCodes: h.ReplyCodes, Disabled: h.Disabled,
		DownInterval: h.DownInterval, MaxBackoff: h.MaxBackoff, PassiveFailures: h.PassiveFailures,
		NoPassiveSuccess: h.PassiveSuccess != nil && !*h.PassiveSuccess,
	}
}

// BackendConfig is one pool member.
type BackendConfig struct {
	Address  string `yaml:"address"`  // udp://IP:PORT or tcp://IP:PORT (required)
	Weight   *int   `yaml:"weight"`   // share relative to the pool's others, 1-1000 (default 1)
	Priority int    `yaml:"priority"` // lower number = preferred group; higher groups take traffic only while all lower are down (default 1)
	State    string `yaml:"state"`    // up (default), disabled, draining
	// AlsoTCP says a udp:// member also takes TCP on the same address: a
	// request larger than engine.udp_mtu goes to it over TCP (§18.1.1).
	AlsoTCP bool `yaml:"also_tcp"`
	// MaxCPS caps the new dialogs per second it takes, 0..1000000 (default:
	// the pool's max_cps).
	MaxCPS float64 `yaml:"max_cps"`
}

// EngineConfig tunes the data path.
type EngineConfig struct {
	Loops       int    `yaml:"loops"`        // event loops (default: one per CPU)
	RecordRoute *bool  `yaml:"record_route"` // insert Record-Route so dialogs stay on the balancer (default true)
	RetryAfter  int    `yaml:"retry_after"`  // Retry-After seconds of the 503 sent when no backend is up (default 5)
	MaxHeader   int    `yaml:"max_header"`   // largest header section in bytes (default 16384)
	MaxBody     int    `yaml:"max_body"`     // largest body in bytes (default 65536)
	UDPMTU      int    `yaml:"udp_mtu"`      // a request larger than this goes over TCP to a member with also_tcp (default 1300, RFC 3261 §18.1.1)
	UDPIO       string `yaml:"udp_io"`       // batch (default: recvmmsg/sendmmsg, 32 a syscall) or gnet (one datagram a syscall)
	// RewriteContact rewrites clients' Contact to siplb with their flow when
	// a request changes legs; ForceRewrite on the same leg too.
	RewriteContact bool `yaml:"rewrite_contact"`
	ForceRewrite   bool `yaml:"force_rewrite"`
	// BranchSecret keys the MAC of every token siplb mints (Via branches,
	// flow tokens, rewritten Contacts); instances sharing an address need
	// the same one. At least 16 characters; unset: a random one kept in
	// StateDir (resolveSecrets).
	BranchSecret string `yaml:"branch_secret"`
	// PreviousSecrets still verify tokens but no longer sign: the secrets
	// before a rotation, each at least 16 characters.
	PreviousSecrets []string `yaml:"previous_secrets"`
	// SecretGrace is how long after a SIGHUP that changes BranchSecret the
	// old one keeps verifying (default 24h).
	SecretGrace time.Duration `yaml:"secret_grace"`
	// StateDir keeps the generated branch secret (default: $STATE_DIRECTORY,
	// else /var/lib/siplb).
	StateDir string `yaml:"state_dir"`
}

// AdminConfig configures the admin HTTP listener.
type AdminConfig struct {
	Listen    string `yaml:"listen"`     // IP:PORT for /metrics, /backends and the control API /api/v1 (default: off)
	Token     string `yaml:"token"`      // bearer token the control API and pprof require (default: none; required off loopback)
	TokenFile string `yaml:"token_file"` // or a file whose first line is the token
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error; a reload applies it
	Format string `yaml:"format"` // text (default: slog's key=value lines) or json (one object a line)
}

// ShutdownConfig says how siplb stops on SIGTERM or SIGINT: it drains.
// /readyz turns false, the TCP and TLS listeners close, new dialogs get a
// 503 (or are forwarded), and siplb exits once its connections are idle or
// at DrainTimeout. A second signal stops it at once.
type ShutdownConfig struct {
	// NewDialogs is what a request from outside that would start a dialog
	// (no To tag; not ACK or CANCEL) gets while draining: reject (default:
	// 503 Service Unavailable with Retry-After, so the client tries another
	// instance) or forward (as before the signal).
	NewDialogs string `yaml:"new_dialogs"`
	// DrainTimeout bounds the drain (default 30s); 0 stops at once.
	DrainTimeout *time.Duration `yaml:"drain_timeout"`
	// Idle is how long a connection that has no transaction open must go
	// without a message to be closed while draining, and how long nothing
	// may be forwarded, once no connection is open, for the drain to end
	// before DrainTimeout (default 2s).
	Idle time.Duration `yaml:"idle"`
}

// The shutdown section's defaults.
const (
	defaultDrainTimeout = 30 * time.Second
	defaultDrainIdle    = 2 * time.Second
)

// loadConfig reads, decodes strictly, defaults and validates a file.
func loadConfig(path string) (*Config, error) {
	cfg, _, err := loadConfigDoc(path)
	return cfg, err
}

// loadConfigDoc is loadConfig that also returns the decoded document, in
// which later errors find the line of their key (withLine).
func loadConfigDoc(path string) (*Config, *yaml.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, doc, err := parseConfigDoc(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, doc, nil
}

// parseConfig decodes YAML strictly: an unknown key is an error naming the
// key and its line; a bad value names its key path and line.
func parseConfig(data []byte) (*Config, error) {
	cfg, _, err := parseConfigDoc(data)
	return cfg, err
}

// parseConfigDoc is parseConfig that also returns the document.
func parseConfigDoc(data []byte) (*Config, *yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, cleanYAMLError(err)
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("configuration is empty")
		}
		return nil, nil, cleanYAMLError(err)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, withLine(&root, err)
	}
	return &cfg, &root, nil
}

// withLine prefixes a validation error with the line of its key in doc
// ("line 7: pools[0].backends[1].weight: ..."); other errors, and every
// error when doc is nil (a configuration from flags), are returned as they
// are.
func withLine(doc *yaml.Node, err error) error {
	var ve *validationError
	if doc == nil || !errors.As(err, &ve) {
		return err
	}
	if line := lineOf(doc, ve.path); line > 0 {
		return fmt.Errorf("line %d: %s", line, ve)
	}
	return err
}

func cleanYAMLError(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

func (c *Config) setDefaults() {
	for i := range c.Pools {
		p := &c.Pools[i]
		if p.Algorithm == "" {
			p.Algorithm = "hash-callid"
		}
		for j := range p.Backends {
			b := &p.Backends[j]
			if b.Weight == nil {
				w := 1
				b.Weight = &w
			}
			if b.Priority == 0 {
				b.Priority = 1
			}
			if b.State == "" {
				b.State = "up"
			}
		}
	}
	if c.Engine.RecordRoute == nil {
		t := true
		c.Engine.RecordRoute = &t
	}
	if c.Engine.RetryAfter == 0 {
		c.Engine.RetryAfter = engine.DefaultRetryAfter
	}
	if c.Engine.MaxHeader == 0 {
		c.Engine.MaxHeader = parser.DefaultMaxHeader
	}
	if c.Engine.MaxBody == 0 {
		c.Engine.MaxBody = parser.DefaultMaxBody
	}
	if c.Engine.SecretGrace == 0 {
		c.Engine.SecretGrace = defaultSecretGrace
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Shutdown.NewDialogs == "" {
		c.Shutdown.NewDialogs = "reject"
	}
	if c.Shutdown.DrainTimeout == nil {
		d := defaultDrainTimeout
		c.Shutdown.DrainTimeout = &d
	}
	if c.Shutdown.Idle == 0 {
		c.Shutdown.Idle = defaultDrainIdle
	}
	if c.Cluster.Enabled {
		c.Cluster.setDefaults()
	}
}

// validationError is a bad value at a key path such as "pools[0].backends[1].address".
type validationError struct {
	path string
	msg  string
}

func (e *validationError) Error() string { return e.path + ": " + e.msg }

func invalid(path, format string, args ...any) error {
	return &validationError{path: path, msg: fmt.Sprintf(format, args...)}
}

// Validate checks every value; the first error names its key path.
func (c *Config) Validate() error {
	if len(c.Listen) == 0 {
		return invalid("listen", "at least one listener is required")
	}
	if len(c.Pools) == 0 {
		return invalid("pools", "at least one pool is required")
	}
	names := map[string]bool{}
	for i, p := range c.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		if p.Name == "" {
			return invalid(path+".name", "is required")
		}
		if names[p.Name] {
			return invalid(path+".name", "pool %q is defined twice", p.Name)
		}
		names[p.Name] = true
		if _, err := balance.ParseAlgorithm(p.Algorithm); err != nil {
			return invalid(path+".algorithm", "%v", err)
		}
		if len(p.Backends) == 0 && len(p.Discovery) == 0 {
			return invalid(path+".backends", "at least one backend (or a discovery source) is required")
		}
		for j, d := range p.Discovery {
			dp := fmt.Sprintf("%s.discovery[%d]", path, j)
			if (d.SRV == "") == (d.Host == "") {
				return invalid(dp, "set exactly one of srv and host")
			}
			if d.Transport != "" {
				if _, err := balance.ParseTransport(d.Transport); err != nil {
					return invalid(dp+".transport", "%v", err)
				}
			}
			if d.Weight < 0 {
				return invalid(dp+".weight", "must not be negative, got %d", d.Weight)
			}
		}
		if err := p.validateAdmission(path); err != nil {
			return err
		}
		if _, err := parsePrefixes(p.BackendSources); err != nil {
			k, rest, _ := strings.Cut(err.Error(), ": ")
			return invalid(path+".backend_sources"+k, "%s", rest)
		}
		hc := p.Health.balance()
		if err := hc.Validate(path + ".health"); err != nil {
			key, rest, _ := strings.Cut(err.Error(), ": ")
			return invalid(key, "%s", rest)
		}
		seen := make(map[netip.AddrPort]int, len(p.Backends))
		for j, b := range p.Backends {
			bp := fmt.Sprintf("%s.backends[%d]", path, j)
			tr, ap, err := parseEndpoint(b.Address)
			if err != nil {
				return invalid(bp+".address", "%v", err)
			} else if tr.WebSocket() {
				return invalid(bp+".address", "siplb reaches backends over udp, tcp or tls, not %s (WebSocket is for listeners facing browsers)", tr)
			}
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			if ap.Addr().IsUnspecified() || ap.Port() == 0 || ap.Addr().Zone() != "" {
				return invalid(bp+".address", "want a specific IP (no zone) and a port other than 0, got %s", ap)
			}
			if k, dup := seen[ap]; dup {
				return invalid(bp+".address", "%s is listed twice in the pool (also %s.backends[%d])", ap, path, k)
			}
			seen[ap] = j
			if b.AlsoTCP && tr != balance.UDP {
				return invalid(bp+".also_tcp", "is only for a udp:// backend (one that also takes TCP on the same address)")
			}
			if *b.Weight < 1 || *b.Weight > 1000 {
				return invalid(bp+".weight", "must be between 1 and 1000, got %d", *b.Weight)
			}
			if b.Priority < 0 || b.Priority > balance.MaxPriority {
				return invalid(bp+".priority", "must be between 1 and %d, got %d", balance.MaxPriority, b.Priority)
			}
			if _, err := balance.ParseState(b.State); err != nil {
				return invalid(bp+".state", "%v", err)
			}
		}
	}
	for i, l := range c.Listen {
		path := fmt.Sprintf("listen[%d]", i)
		tr, ap, err := parseEndpoint(l.Address)
		if err != nil {
			return invalid(path+".address", "%v", err)
		}
		if tr.Secure() {
			if l.TLS == nil {
				return invalid(path+".tls", "is required for a %s:// listener (cert_file, key_file)", tr)
			}
			if err := l.TLS.ValidateListener(path + ".tls"); err != nil {
				key, rest, _ := strings.Cut(err.Error(), ": ")
				return invalid(key, "%s", rest)
			}
		} else if l.TLS != nil {
			return invalid(path+".tls", "is only for a tls:// or wss:// listener")
		}
		if len(l.Origins) > 0 {
			if !tr.WebSocket() {
				return invalid(path+".origins", "is only for a ws:// or wss:// listener")
			}
			if err := engine.CheckOrigins(l.Origins); err != nil {
				// "origins[1] ...: why" names the entry
				k, rest, _ := strings.Cut(err.Error(), " ")
				return invalid(path+"."+k, "%s", rest)
			}
		}
		if len(l.ProxyProtocol) > 0 {
			if tr == balance.UDP {
				return invalid(path+".proxy_protocol", "is only for a tcp://, tls://, ws:// or wss:// listener")
			}
			if _, err := parsePrefixes(l.ProxyProtocol); err != nil {
				k, rest, _ := strings.Cut(err.Error(), ": ")
				return invalid(path+".proxy_protocol"+k, "%s", rest)
			}
		}
		if ap.Addr().IsUnspecified() && l.Advertise == "" {
			return invalid(path+".advertise", "is required when the address is unspecified (%s)", ap.Addr())
		}
		if l.Pool != "" && !names[l.Pool] {
			return invalid(path+".pool", "pool %q is not defined", l.Pool)
		}
		if _, err := guard.NewACL(path, guard.ACLConfig{Allow: l.Allow, Deny: l.Deny}); err != nil {
			key, rest, _ := strings.Cut(err.Error(), ": ")
			return invalid(key, "%s", rest)
		}
	}
	if err := c.Security.Defaults().Validate("security"); err != nil {
		key, rest, _ := strings.Cut(err.Error(), ": ")
		return invalid(key, "%s", rest)
	}
	e := c.Engine
	if e.Loops < 0 || e.Loops > 1024 {
		return invalid("engine.loops", "must be between 0 and 1024, got %d", e.Loops)
	}
	if e.UDPIO != "" && e.UDPIO != "batch" && e.UDPIO != "gnet" {
		return invalid("engine.udp_io", "want batch or gnet, got %q", e.UDPIO)
	}
	if e.RetryAfter < 0 {
		return invalid("engine.retry_after", "must not be negative, got %d", e.RetryAfter)
	}
	if e.MaxHeader < 512 || e.MaxHeader > 1<<20 {
		return invalid("engine.max_header", "must be between 512 and 1048576, got %d", e.MaxHeader)
	}
	if e.UDPMTU != 0 && (e.UDPMTU < 576 || e.UDPMTU > 65000) {
		return invalid("engine.udp_mtu", "must be between 576 and 65000, got %d", e.UDPMTU)
	}
	if e.MaxBody < 0 || e.MaxBody > 1<<20 {
		return invalid("engine.max_body", "must be between 0 and 1048576, got %d", e.MaxBody)
	}
	if n := len(e.BranchSecret); n > 0 && n < minSecretLen {
		return invalid("engine.branch_secret", "must be at least %d characters, got %d", minSecretLen, n)
	}
	for i, p := range e.PreviousSecrets {
		if len(p) < minSecretLen {
			return invalid(fmt.Sprintf("engine.previous_secrets[%d]", i), "must be at least %d characters, got %d", minSecretLen, len(p))
		}
	}
	if e.SecretGrace < 0 {
		return invalid("engine.secret_grace", "must not be negative, got %s", e.SecretGrace)
	}
	if err := c.Streams.Defaults().Validate("streams"); err != nil {
		key, _, _ := strings.Cut(err.Error(), ":")
		return invalid(key, "%s", strings.TrimSpace(strings.TrimPrefix(err.Error(), key+":")))
	}
	if c.Routing.OutgoingProxy != "" {
		if _, _, err := splitProxy(c.Routing.OutgoingProxy); err != nil {
			return invalid("routing.outgoing_proxy", "%v", err)
		}
	}
	if len(c.Routing.Domain2Proxy) > 0 {
		if _, err := balance.NewDomainMap(c.Routing.Domain2Proxy); err != nil {
			return invalid("routing.domain2proxy", "%v", err)
		}
	}
	if c.Admin.Token != "" && c.Admin.TokenFile != "" {
		return invalid("admin.token_file", "set admin.token or admin.token_file, not both")
	}
	if c.Admin.Listen != "" {
		ap, err := netip.ParseAddrPort(c.Admin.Listen)
		if err != nil {
			return invalid("admin.listen", "want IP:PORT: %v", err)
		}
		tok, err := c.Admin.token()
		if err != nil {
			return err
		}
		if tok == "" && !ap.Addr().Unmap().IsLoopback() {
			return invalid("admin.listen", "%s is not a loopback address: the control API changes backend states, so set admin.token or admin.token_file", ap)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return invalid("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return invalid("log.format", "want text or json, got %q", c.Log.Format)
	}
	sd := c.Shutdown
	if sd.NewDialogs != "reject" && sd.NewDialogs != "forward" {
		return invalid("shutdown.new_dialogs", "want reject or forward, got %q", sd.NewDialogs)
	}
	if d := sd.DrainTimeout; d != nil && *d < 0 {
		return invalid("shutdown.drain_timeout", "must not be negative, got %s", *d)
	}
	if sd.Idle < 0 {
		return invalid("shutdown.idle", "must not be negative, got %s", sd.Idle)
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	if err := c.Capture.validate(); err != nil {
		return err
	}
	return c.checkReach()
}

// parseEndpoint parses "udp://IP:PORT" (the scheme defaults to udp; tcp,
// tls, ws and wss too); the port defaults to 5060, or to 80 for ws:// and
// 443 for wss:// (the WebSocket ports).
func parseEndpoint(s string) (balance.Transport, netip.AddrPort, error) {
	if s == "" {
		return 0, netip.AddrPort{}, errors.New("is required")
	}
	tr := balance.UDP
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		switch strings.ToLower(scheme) {
		case "udp":
		case "tcp":
			tr = balance.TCP
		case "tls":
			tr = balance.TLS
		case "ws":
			tr = balance.WS
		case "wss":
			tr = balance.WSS
		default:
			return 0, netip.AddrPort{}, fmt.Errorf("unknown transport %q (want udp, tcp, tls, ws or wss)", scheme)
		}
		s = rest
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a, err2 := netip.ParseAddr(strings.Trim(s, "[]"))
		if err2 != nil {
			return 0, netip.AddrPort{}, fmt.Errorf("want IP:PORT, got %q", s)
		}
		port := uint16(engine.DefaultSIPPort)
		if tr.WebSocket() {
			port = tr.DefaultPort()
		}
		ap = netip.AddrPortFrom(a, port)
	}
	return tr, ap, nil
}

// lineOf finds the line of a key path such as "pools[0].backends[1].address"
// in a decoded document, or of the deepest part of it that exists.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if k, rest, ok := strings.Cut(part, "["); ok {
			key = k
			idx, _ = strconv.Atoi(strings.TrimSuffix(rest, "]"))
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// pools converts the configuration to balance's pools.
func (c *Config) pools() ([]balance.PoolConfig, error) {
	out := make([]balance.PoolConfig, 0, len(c.Pools))
	for _, p := range c.Pools {
		alg, err := balance.ParseAlgorithm(p.Algorithm)
		if err != nil {
			return nil, err
		}
		srcs, err := parsePrefixes(p.BackendSources)
		if err != nil {
			return nil, err
		}
		pc := balance.PoolConfig{Name: p.Name, Algorithm: alg, BackendSources: srcs, BackendCerts: p.BackendCerts}
		p.admission(&pc)
		for _, b := range p.Backends {
			tr, ap, err := parseEndpoint(b.Address)
			if err != nil {
				return nil, err
			}
			st, err := balance.ParseState(b.State)
			if err != nil {
				return nil, err
			}
			pc.Backends = append(pc.Backends, balance.BackendConfig{
				Addr: ap, Transport: tr, Weight: *b.Weight, Priority: b.Priority, State: st, AlsoTCP: b.AlsoTCP,
				MaxCPS: b.MaxCPS,
			})
		}
		out = append(out, pc)
	}
	return out, nil
}

// parsePrefixes parses IPs and CIDRs with the edge defences' parser
// (guard.ParsePrefixes: masked, no zone, an IPv4-mapped /96 or longer as
// IPv4); an error starts with the list index ("[2]: ...").
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, v := range list {
		p, err := guard.ParsePrefixes("", []string{strings.TrimSpace(v)})
		if err != nil {
			return nil, fmt.Errorf("[%d]: want an IP or CIDR, got %q", i, v)
		}
		out = append(out, p[0])
	}
	return out, nil
}

// splitProxy checks an outgoing proxy: [scheme://]host[:port].
func splitProxy(p string) (string, string, error) {
	rest := p
	if scheme, r, ok := strings.Cut(p, "://"); ok {
		switch strings.ToLower(scheme) {
		case "udp", "tcp", "tls":
		default:
			return "", "", fmt.Errorf("unknown transport %q (want udp, tcp or tls)", scheme)
		}
		rest = r
	}
	if rest == "" || strings.ContainsAny(rest, " ;<>") {
		return "", "", fmt.Errorf("want [udp|tcp|tls://]host[:port], got %q", p)
	}
	return p, rest, nil
}

// resolverConfig converts the dns section.
func (c *Config) resolverConfig() balance.ResolverConfig {
	return balance.ResolverConfig{Servers: c.DNS.Servers, Timeout: c.DNS.Timeout, MinTTL: c.DNS.MinTTL, MaxTTL: c.DNS.MaxTTL, NegativeTTL: c.DNS.NegativeTTL}
}

// needsDNS reports whether anything configured uses the resolver.
func (c *Config) needsDNS() bool {
	if len(c.DNS.Servers) > 0 || c.Routing.OutgoingProxy != "" || len(c.Routing.Domain2Proxy) > 0 {
		return true
	}
	for _, p := range c.Pools {
		if len(p.Discovery) > 0 {
			return true
		}
	}
	return false
}

// discovery returns the DNS sources of every pool.
func (c *Config) discovery() []balance.DiscoveryConfig {
	var out []balance.DiscoveryConfig
	for _, p := range c.Pools {
		for _, d := range p.Discovery {
			tr, _ := balance.ParseTransport(d.Transport)
			if d.Transport == "" {
				tr = balance.UDP
			}
			out = append(out, balance.DiscoveryConfig{Pool: p.Name, SRV: d.SRV, Host: d.Host, Port: d.Port, Transport: tr, Weight: d.Weight})
		}
	}
	return out
}

// health returns the health configuration of every pool by name.
func (c *Config) health() map[string]balance.HealthConfig {
	out := make(map[string]balance.HealthConfig, len(c.Pools))
	for _, p := range c.Pools {
		out[p.Name] = p.Health.balance()
	}
	return out
}

// engineConfig converts the configuration to the engine's, loading the
// certificates of TLS listeners; the stores are returned for SIGHUP reloads.
// BranchSecret is left empty: resolveSecrets decides it.
func (c *Config) engineConfig() (engine.Config, []*siptls.Store, error) {
	ec := engine.Config{
		DisableRecordRoute: !*c.Engine.RecordRoute,
		RetryAfter:         c.Engine.RetryAfter,
		RewriteContact:     c.Engine.RewriteContact,
		ForceRewrite:       c.Engine.ForceRewrite,
		Limits:             parser.Limits{MaxHeader: c.Engine.MaxHeader, MaxBody: c.Engine.MaxBody},
		UDPMTU:             c.Engine.UDPMTU,
	}
	g, err := guard.New(c.Security)
	if err != nil {
		return ec, nil, fmt.Errorf("security.%w", err)
	}
	ec.Guard = g
	var stores []*siptls.Store
	for i, l := range c.Listen {
		tr, ap, _ := parseEndpoint(l.Address)
		lc := engine.LegConfig{Name: l.Name, Transport: tr, Addr: ap, Advertise: l.Advertise, Pool: l.Pool, Origins: l.Origins}
		if len(l.Allow) > 0 || len(l.Deny) > 0 {
			acl, err := guard.NewACL(fmt.Sprintf("listen[%d]", i), guard.ACLConfig{Allow: l.Allow, Deny: l.Deny})
			if err != nil {
				return ec, nil, err
			}
			lc.ACL = acl
		}
		if len(l.ProxyProtocol) > 0 {
			if lc.ProxyFrom, err = parsePrefixes(l.ProxyProtocol); err != nil {
				return ec, nil, fmt.Errorf("listen[%d].proxy_protocol%w", i, err)
			}
		}
		if l.TLS != nil {
			st, err := siptls.NewStore(*l.TLS)
			if err != nil {
				return ec, nil, fmt.Errorf("listen[%d].%w", i, err)
			}
			lc.TLS = st
			stores = append(stores, st)
		}
		ec.Legs = append(ec.Legs, lc)
	}
	return ec, stores, nil
}

// validateAdmission checks a pool's admission keys: replaces_affinity only
// with an algorithm that hashes the Call-ID (the other keys never follow a
// Replaces), max_cps of the pool and its backends in 0..balance.MaxCPS.
func (p *PoolConfig) validateAdmission(path string) error {
	if p.ReplacesAffinity != nil && *p.ReplacesAffinity && p.Algorithm != "" {
		if alg, err := balance.ParseAlgorithm(p.Algorithm); err == nil && !alg.CallIDKeyed() {
			return invalid(path+".replaces_affinity", "is only for the algorithms that hash the Call-ID (hash-callid, least-latency, least-latency-p2c), not %s", p.Algorithm)
		}
	}
	if p.MaxCPS < 0 || p.MaxCPS > balance.MaxCPS || p.MaxCPS != p.MaxCPS {
		return invalid(path+".max_cps", "must be between 0 (no cap) and %g, got %g", balance.MaxCPS, p.MaxCPS)
	}
	for j, b := range p.Backends {
		if b.MaxCPS < 0 || b.MaxCPS > balance.MaxCPS || b.MaxCPS != b.MaxCPS {
			return invalid(fmt.Sprintf("%s.backends[%d].max_cps", path, j), "must be between 0 (the pool's) and %g, got %g", balance.MaxCPS, b.MaxCPS)
		}
	}
	return nil
}

// admission sets the admission fields of pc from p.
func (p *PoolConfig) admission(pc *balance.PoolConfig) {
	pc.MaxCPS = p.MaxCPS
	pc.DisableReplacesAffinity = p.ReplacesAffinity != nil && !*p.ReplacesAffinity
	pc.DisableOverloadControl = p.OverloadControl != nil && !*p.OverloadControl
}

// CaptureConfig mirrors every SIP message siplb receives and sends, as
// HEPv3 over UDP, to a capture server (Homer's heplify-server). Off unless
// HEP is set.
type CaptureConfig struct {
	HEP       string `yaml:"hep"`        // IP:PORT of the collector (default: off)
	Transport string `yaml:"transport"`  // udp (default: a frame a datagram) or tcp (a stream, reconnected)
	CaptureID uint32 `yaml:"capture_id"` // capture agent id in every frame, Homer's node id (default 0)
	Password  string `yaml:"password"`   // the collector's auth key, sent in every frame (default: none; at most 255 bytes)
	// QueueSize is how many messages (with what siplb sent for each) wait
	// for the sender; more are dropped and counted (default 1024, at most
	// 65536).
	QueueSize int `yaml:"queue_size"`
	// UDPGSO, over UDP, sends frames of one size class in one GSO entry
	// (Linux's UDP segmentation offload), each padded to its class's size
	// with a chunk collectors skip; false: a datagram a frame, unpadded
	// (default true, where the kernel has it).
	UDPGSO *bool `yaml:"udp_gso"`
}

// collector returns the collector's address, false when capture is off.
func (c *CaptureConfig) collector() (netip.AddrPort, bool) {
	if c.HEP == "" {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(c.HEP)
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), err == nil
}

func (c *CaptureConfig) validate() error {
	if c.HEP == "" {
		switch {
		case c.CaptureID != 0:
			return invalid("capture.capture_id", "set without capture.hep")
		case c.Password != "":
			return invalid("capture.password", "set without capture.hep")
		case c.QueueSize != 0:
			return invalid("capture.queue_size", "set without capture.hep")
		case c.Transport != "":
			return invalid("capture.transport", "set without capture.hep")
		case c.UDPGSO != nil:
			return invalid("capture.udp_gso", "set without capture.hep")
		}
		return nil
	}
	ap, err := netip.ParseAddrPort(c.HEP)
	if err != nil {
		return invalid("capture.hep", "want the collector's IP:PORT: %v", err)
	}
	if ap.Addr().IsUnspecified() || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return invalid("capture.hep", "want a specific IP (no zone) and a port other than 0, got %s", ap)
	}
	if c.Transport != "" && c.Transport != "udp" && c.Transport != "tcp" {
		return invalid("capture.transport", "want udp or tcp, got %q", c.Transport)
	}
	if c.UDPGSO != nil && c.Transport == "tcp" {
		return invalid("capture.udp_gso", "applies to capture.transport udp only, and transport is tcp")
	}
	if len(c.Password) > hep.MaxAuthKey {
		return invalid("capture.password", "at most %d bytes, got %d", hep.MaxAuthKey, len(c.Password))
	}
	if c.QueueSize < 0 || c.QueueSize > hep.MaxQueueSize {
		return invalid("capture.queue_size", "must be between 1 and %d (0: %d), got %d", hep.MaxQueueSize, hep.DefaultQueueSize, c.QueueSize)
	}
	return nil
}
