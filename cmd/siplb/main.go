// Command siplb is a stateless SIP load balancer: it takes SIP over UDP,
// spreads new calls over backend pools, keeps each dialog on one backend
// without per-call state and routes every response back the way it came.
//
//	siplb --config /etc/siplb.yaml
//	siplb --listen udp://127.0.0.1:5060 --backend udp://127.0.0.1:5070 --backend udp://127.0.0.1:5071
//	siplb --check --config /etc/siplb.yaml
//	siplb                      # the embedded default configuration (the demo's)
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
)

// version is stamped by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

//go:embed default.yaml
var defaultConfig []byte

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ctl" {
		return runCtl(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("siplb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath  = fs.String("config", "", "YAML configuration `file` (without it: --listen/--backend, or the embedded default)")
		check       = fs.Bool("check", false, "validate the configuration and exit (0 valid, 1 not)")
		showVersion = fs.Bool("version", false, "print the version and exit")
		printDef    = fs.Bool("print-default-config", false, "print the embedded default configuration and exit")
		algorithm   = fs.String("algorithm", "", "algorithm of the pool built from --backend (default hash-callid)")
		loops       = fs.Int("loops", 0, "event loops (default: one per CPU)")
		admin       = fs.String("admin", "", "admin HTTP `IP:PORT` for /metrics and /backends")
		logLevel    = fs.String("log-level", "", "debug, info, warn or error")
		udpIO       = fs.String("udp-io", "", "UDP sockets served by batch (recvmmsg/sendmmsg, default) or gnet")
		listens     multiFlag
		backends    multiFlag
	)
	fs.Var(&listens, "listen", "listening `udp://IP:PORT` or tcp://IP:PORT (repeatable)")
	fs.Var(&backends, "backend", "backend `udp://IP:PORT[;weight=N][;priority=N]` or tcp://... (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "siplb", version)
		return 0
	}
	if *printDef {
		stdout.Write(defaultConfig)
		return 0
	}

	var (
		cfg    *Config
		err    error
		source string
	)
	switch {
	case *configPath != "" && (len(listens) > 0 || len(backends) > 0):
		fmt.Fprintln(stderr, "siplb: --config and --listen/--backend exclude each other")
		return 2
	case *configPath != "":
		cfg, err = loadConfig(*configPath)
		source = *configPath
	case len(listens) > 0 || len(backends) > 0:
		cfg, err = flagConfig(listens, backends, *algorithm)
		source = "command line"
	default:
		cfg, err = parseConfig(defaultConfig)
		source = "embedded default"
	}
	if err == nil {
		if *udpIO != "" {
			cfg.Engine.UDPIO = *udpIO
		}
		err = applyOverrides(cfg, *loops, *admin, *logLevel)
	}
	if err != nil {
		fmt.Fprintln(stderr, "siplb:", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "siplb: configuration %s is valid\n", source)
		return 0
	}

	log := newLogger(stderr, cfg.Log.Level)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := serve(ctx, cfg, *configPath, source, log); err != nil {
		log.Error("siplb stopped", "err", err)
		return 1
	}
	log.Info("siplb stopped", "reason", context.Cause(ctx))
	return 0
}

// errEngineStopped is the engine returning although nothing asked it to
// stop: an event loop ended (gnet stops every loop then and returns nil;
// the loop's error is in the log above, e.g. accept failing for want of
// descriptors).
var errEngineStopped = errors.New("engine stopped on its own: an event loop ended (see the error logged before)")

// serve runs the data path and the admin listener until ctx is done; SIGHUP
// reloads the pools from configPath. It returns nil only when ctx is done
// and everything stopped cleanly; whatever else ends it is an error.
func serve(ctx context.Context, cfg *Config, configPath, source string, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	files := applyFileLimit(cfg, log)
	log.Info("file limit", files.logAttrs()...)
	// Before anything is bound: a second siplb on these addresses stops
	// here instead of sharing their traffic through SO_REUSEPORT.
	locks, err := lockListeners(cfg, log)
	if err != nil {
		return err
	}
	defer locks.Release()
	secret, previous, err := resolveSecrets(cfg, log)
	if err != nil {
		return err
	}
	pools, err := cfg.pools()
	if err != nil {
		return err
	}
	var resolver *balance.Resolver
	if cfg.needsDNS() {
		if resolver, err = balance.NewResolver(cfg.resolverConfig()); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		if err := discoverInitial(ctx, cfg, resolver, pools); err != nil {
			return err
		}
	}
	bal, err := balance.New(pools)
	if err != nil {
		return err
	}
	ec, stores, err := cfg.engineConfig()
	if err != nil {
		return err
	}
	ec.Resolver = resolver
	ec.Log = log
	ec.BranchSecret = secret
	ec.PreviousSecrets = previous
	ec.OutgoingProxy = cfg.Routing.OutgoingProxy
	if len(cfg.Routing.Domain2Proxy) > 0 {
		if ec.Domains, err = balance.NewDomainMap(cfg.Routing.Domain2Proxy); err != nil {
			return fmt.Errorf("routing.domain2proxy: %w", err)
		}
	}
	if srcs := cfg.discovery(); len(srcs) > 0 {
		go balance.NewDiscovery(bal, resolver, srcs, log).Run(ctx)
	}
	if err := engine.ResolvePorts(ec.Legs); err != nil {
		return err
	}
	fwd, err := engine.NewForwarder(ec, bal)
	if err != nil {
		return err
	}
	var checker *balance.Checker
	srv := engine.NewServerWith(fwd, engine.Options{Loops: cfg.Engine.Loops, Limits: cfg.Streams, Log: log, GnetUDP: cfg.Engine.UDPIO == "gnet",
		Unreachable: func(a netip.AddrPort, h balance.Hint) { checker.Unreachable(a, h) }})
	tr, sentBy, prefix := fwd.ProbeIdentity()
	checker = balance.NewChecker(bal, cfg.health(), balance.ProbeIdentity{Transport: tr, SentBy: sentBy, BranchPrefix: prefix}, srv, log)
	fwd.SetProbes(checker)
	fwd.SetObserver(checker)
	secrets := newRotation(fwd, secret, previous, log)
	defer secrets.stop()

	ctl := newControl(bal, func() error { // SIGHUP and POST /api/v1/reload
		err := reload(configPath, bal, checker, secrets, log)
		for _, st := range stores {
			if err := st.Reload(); err != nil {
				log.Error("certificate reload failed, keeping the loaded ones", "err", err)
			} else {
				log.Info("certificates reloaded")
			}
		}
		return err
	})
	var adminFailed <-chan error // nil (never ready) without an admin listener
	if cfg.Admin.Listen != "" {
		stopAdmin, failed, err := startAdmin(ctx, cfg.Admin, ctl, srv, bal, checker, log)
		if err != nil {
			return err
		}
		defer stopAdmin()
		adminFailed = failed
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				ctl.Reload()
			}
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	// ended is the engine's return as serve's error: nil only when ctx is done.
	ended := func(err error) error {
		if err == nil && ctx.Err() == nil {
			return errEngineStopped
		}
		return err
	}
	// adminDown stops the engine after the admin listener failed.
	adminDown := func(err error) error {
		cancel()
		return errors.Join(err, <-errc)
	}
	select {
	case err := <-errc:
		return ended(err)
	case err := <-adminFailed:
		return adminDown(err)
	case <-srv.Ready():
	}
	go checker.Run(ctx)
	ctl.SetReady(true)
	for _, l := range fwd.Legs() {
		log.Info("listening", "leg", l.Name, "advertise", l.SentBy(), "tag", l.Tag())
	}
	t := bal.Table()
	for i := range t.NumPools() {
		p := t.Pool(balance.PoolID(i))
		log.Info("pool", "name", p.Name(), "algorithm", p.Algorithm().String(), "backends", len(p.Backends()))
	}
	log.Info("siplb serving", "version", version, "config", source, "loops", cfg.Engine.Loops, "max_connections", files.maxConns)
	select {
	case err := <-errc:
		return ended(err)
	case err := <-adminFailed:
		return adminDown(err)
	}
}

// discoverInitial fills the pools that have DNS sources but no static
// members, so the balancer starts with members; Discovery keeps them
// current afterwards.
func discoverInitial(ctx context.Context, cfg *Config, r *balance.Resolver, pools []balance.PoolConfig) error {
	for i, p := range cfg.Pools {
		if len(p.Backends) > 0 || len(p.Discovery) == 0 {
			continue
		}
		var errs []error
		for _, d := range p.Discovery {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var ts []balance.Target
			var err error
			if d.SRV != "" {
				ts, _, err = r.LookupSRV(qctx, d.SRV)
			} else {
				port := d.Port
				if port == 0 {
					port = engine.DefaultSIPPort
				}
				ts, _, err = r.LookupHost(qctx, d.Host, port)
			}
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, t := range ts {
				tr := t.Transport
				if d.SRV == "" && d.Transport != "" {
					tr, _ = balance.ParseTransport(d.Transport)
				}
				w := t.Weight
				if d.SRV == "" {
					w = d.Weight
				}
				if !slices.ContainsFunc(pools[i].Backends, func(b balance.BackendConfig) bool { return b.Addr == t.Addr }) {
					pools[i].Backends = append(pools[i].Backends, balance.BackendConfig{Addr: t.Addr, Transport: tr, Weight: w, Priority: t.Priority})
				}
			}
		}
		if len(pools[i].Backends) == 0 {
			return fmt.Errorf("pools[%d] %q: DNS gave no members: %w", i, p.Name, errors.Join(errs...))
		}
	}
	return nil
}

// reload re-reads the configuration on SIGHUP and swaps the pools in one
// atomic step; listeners and engine settings need a restart. It returns why
// it kept the running configuration (errNothingToReload without a file).
func reload(path string, bal *balance.Balancer, checker *balance.Checker, secrets *rotation, log *slog.Logger) error {
	if path == "" {
		log.Warn("SIGHUP ignored: no --config file to reload")
		return errNothingToReload
	}
	cfg, err := loadConfig(path)
	if err != nil {
		log.Error("reload failed, keeping the running configuration", "err", err)
		return err
	}
	pools, err := cfg.pools()
	if err == nil {
		err = bal.Reload(pools)
	}
	if err != nil {
		log.Error("reload failed, keeping the running configuration", "err", err)
		return err
	}
	checker.Reconfigure(cfg.health())
	if secrets != nil {
		cur, prev, err := resolveSecrets(cfg, log)
		if err != nil {
			log.Error("reload: branch secret kept", "err", err)
		} else {
			secrets.apply(cur, prev, cfg.Engine.SecretGrace)
		}
	}
	log.Info("configuration reloaded", "config", path, "pools", len(pools))
	return nil
}

// flagConfig builds a configuration from --listen and --backend.
func flagConfig(listens, backends []string, algorithm string) (*Config, error) {
	if len(listens) == 0 {
		return nil, errors.New("--backend needs at least one --listen")
	}
	if len(backends) == 0 {
		return nil, errors.New("--listen needs at least one --backend")
	}
	cfg := &Config{Pools: []PoolConfig{{Name: "default", Algorithm: algorithm}}}
	for _, l := range listens {
		cfg.Listen = append(cfg.Listen, ListenConfig{Address: l})
	}
	for _, b := range backends {
		bc, err := parseBackendFlag(b)
		if err != nil {
			return nil, fmt.Errorf("--backend %q: %w", b, err)
		}
		cfg.Pools[0].Backends = append(cfg.Pools[0].Backends, bc)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseBackendFlag parses "udp://IP:PORT;weight=N;priority=N;state=S".
func parseBackendFlag(s string) (BackendConfig, error) {
	parts := strings.Split(s, ";")
	bc := BackendConfig{Address: parts[0]}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		var n int
		switch k {
		case "weight", "priority":
			if _, err := fmt.Sscanf(v, "%d", &n); err != nil {
				return bc, fmt.Errorf("%s: want a number, got %q", k, v)
			}
			if k == "weight" {
				bc.Weight = &n
			} else {
				bc.Priority = n
			}
		case "state":
			bc.State = v
		default:
			return bc, fmt.Errorf("unknown parameter %q (want weight, priority or state)", k)
		}
	}
	return bc, nil
}

func applyOverrides(cfg *Config, loops int, admin, level string) error {
	if loops != 0 {
		cfg.Engine.Loops = loops
	}
	if admin != "" {
		cfg.Admin.Listen = admin
	}
	if level != "" {
		cfg.Log.Level = level
	}
	return cfg.Validate()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
