package main

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/siplb/siplb/balance"
	siptls "github.com/siplb/siplb/tls"
)

// overrides are the command line's settings that win over the file's: at
// the start and again at every reload, so that a reload compares like with
// like.
type overrides struct {
	loops    int    // --loops
	admin    string // --admin
	logLevel string // --log-level
	udpIO    string // --udp-io
}

// apply writes the overrides into cfg and validates it. It returns the keys
// that doc (cfg's document; nil for none) sets to another value than the
// command line's, for a warning: the file's value does not apply.
func (o overrides) apply(cfg *Config, doc *yaml.Node) ([]string, error) {
	var replaced []string
	set := func(key string, differs bool) {
		if differs && hasKey(doc, key) {
			replaced = append(replaced, key)
		}
	}
	if o.loops != 0 {
		set("engine.loops", cfg.Engine.Loops != o.loops)
		cfg.Engine.Loops = o.loops
	}
	if o.admin != "" {
		set("admin.listen", cfg.Admin.Listen != o.admin)
		cfg.Admin.Listen = o.admin
	}
	if o.logLevel != "" {
		set("log.level", cfg.Log.Level != o.logLevel)
		cfg.Log.Level = o.logLevel
	}
	if o.udpIO != "" {
		set("engine.udp_io", cfg.Engine.UDPIO != o.udpIO)
		cfg.Engine.UDPIO = o.udpIO
	}
	return replaced, cfg.Validate()
}

// hasKey reports whether doc sets the key "section.name".
func hasKey(doc *yaml.Node, key string) bool {
	if doc == nil {
		return false
	}
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, part := range strings.Split(key, ".") {
		if n.Kind != yaml.MappingNode {
			return false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return false
		}
		n = next
	}
	return true
}

// reloader applies the configuration file again, on SIGHUP and POST
// /api/v1/reload (control serializes the calls): what may change live is
// applied, and a change of any other key refuses the whole reload, naming
// the keys (reload_diff.go). A refused reload applies nothing.
type reloader struct {
	path    string // "": nothing to reload
	over    overrides
	bal     *balance.Balancer
	checker *balance.Checker
	secrets *rotation       // nil: the key ring is not touched
	stores  []*siptls.Store // the TLS listeners' certificates, re-read at each reload
	ctl     *control        // nil: no admin token to set
	level   *slog.LevelVar  // nil: the level is not changed
	log     *slog.Logger
	running atomic.Pointer[Config] // the configuration in force
}

// current is the configuration in force.
func (r *reloader) current() *Config { return r.running.Load() }

// reload reads the file, compares, and applies. It returns why the running
// configuration was kept (errNothingToReload without a file).
func (r *reloader) reload() error {
	if r.path == "" {
		r.log.Warn("reload ignored: no --config file to reload")
		return errNothingToReload
	}
	err := r.apply()
	if err != nil {
		r.log.Error("reload refused, the running configuration is kept", "err", err)
	}
	return err
}

func (r *reloader) apply() error {
	cfg, doc, err := loadConfigDoc(r.path)
	if err != nil {
		return err
	}
	replaced, err := r.over.apply(cfg, doc)
	if err != nil {
		return fmt.Errorf("%s: %w", r.path, err)
	}
	if err := needsRestart(r.current(), cfg, doc); err != nil {
		return fmt.Errorf("%s: %w", r.path, err)
	}
	// Everything that can fail is tried before anything is applied.
	pools, err := cfg.pools()
	if err != nil {
		return fmt.Errorf("%s: %w", r.path, err)
	}
	r.keepDiscovered(cfg, pools)
	for i, l := range cfg.Listen {
		if l.TLS == nil {
			continue
		}
		if _, err := siptls.NewStore(*l.TLS); err != nil {
			return fmt.Errorf("%s: %w", r.path, withLine(doc, keyed(fmt.Errorf("listen[%d].%w", i, err))))
		}
	}
	var token string
	if cfg.Admin.Listen != "" {
		if token, err = cfg.Admin.token(); err != nil {
			return fmt.Errorf("%s: %w", r.path, withLine(doc, err))
		}
	}
	if err := r.bal.Reload(pools); err != nil {
		return fmt.Errorf("%s: pools: %w", r.path, err)
	}
	// Applied from here on.
	if r.checker != nil {
		r.checker.Reconfigure(cfg.health())
	}
	if r.secrets != nil {
		cur, prev, err := resolveSecrets(cfg, r.log)
		if err != nil {
			r.log.Error("reload: branch secret kept", "err", err)
		} else {
			r.secrets.apply(cur, prev, cfg.Engine.SecretGrace)
		}
	}
	for _, st := range r.stores {
		if err := st.Reload(); err != nil {
			r.log.Error("certificate reload failed, keeping the loaded ones", "err", err)
		} else {
			r.log.Info("certificates reloaded")
		}
	}
	if r.ctl != nil && cfg.Admin.Listen != "" {
		r.ctl.token.Store(&token)
	}
	if r.level != nil {
		r.level.Set(parseLevel(cfg.Log.Level))
	}
	if len(replaced) > 0 {
		r.log.Warn("the command line sets these keys: the file's values do not apply", "keys", replaced)
	}
	r.running.Store(cfg)
	r.log.Info("configuration reloaded", "config", r.path, "pools", len(pools))
	return nil
}

// keepDiscovered gives each pool fed by DNS the members it has now (from
// DNS, or from the start until DNS answered) instead of the file's static
// ones, which poolRestarts made sure are unchanged: Discovery publishes a
// pool's members only when they change, so a reload must not put the
// static ones back.
func (r *reloader) keepDiscovered(cfg *Config, pools []balance.PoolConfig) {
	t := r.bal.Table()
	for i, p := range cfg.Pools {
		if len(p.Discovery) == 0 {
			continue
		}
		id, ok := t.PoolByName(p.Name)
		if !ok {
			continue
		}
		members := t.Pool(id).Backends()
		bcs := make([]balance.BackendConfig, 0, len(members))
		for _, b := range members {
			bcs = append(bcs, balance.BackendConfig{Addr: b.Addr, Transport: b.Transport, Weight: b.Weight, Priority: b.Priority, State: b.ConfigState()})
		}
		pools[i].Backends = bcs
	}
}
