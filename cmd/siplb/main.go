// Command siplb is a stateless SIP load balancer: it takes SIP over UDP,
// spreads new calls over backend pools, keeps each dialog on one backend
// without per-call state and routes every response back the way it came.
//
//	siplb --config /etc/siplb.yaml
//	siplb --listen udp://127.0.0.1:5060 --backend udp://127.0.0.1:5070 --backend udp://127.0.0.1:5071
//	siplb --check --config /etc/siplb.yaml
//	siplb                      # the embedded default configuration (the demo's)
//
// SIGTERM or SIGINT drains, then exits 0 (a second signal stops at once);
// SIGHUP reloads what can change live or refuses naming the keys that need
// a restart (README.md, "Stop, reload, check"); SIGUSR2, or
// `siplb upgrade`, starts a new process that takes the sockets over, and
// this one drains and exits once it is ready (README.md, "Upgrades").
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/internal/addrlock"
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
	if len(args) > 0 && args[0] == "upgrade" {
		return runUpgrade(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("siplb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath  = fs.String("config", "", "YAML configuration `file` (without it: --listen/--backend, or the embedded default)")
		check       = fs.Bool("check", false, "build what a start builds, bind nothing, and exit (0 valid, 1 not: the error names the key and line)")
		showVersion = fs.Bool("version", false, "print the version and exit")
		printDef    = fs.Bool("print-default-config", false, "print the embedded default configuration and exit")
		algorithm   = fs.String("algorithm", "", "algorithm of the pool built from --backend (default hash-callid)")
		loops       = fs.Int("loops", 0, "event loops (default: one per CPU)")
		admin       = fs.String("admin", "", "admin HTTP `IP:PORT` for /metrics and /backends")
		logLevel    = fs.String("log-level", "", "debug, info, warn or error")
		udpIO       = fs.String("udp-io", "", "UDP sockets served by batch (recvmmsg/sendmmsg, default) or gnet")
		pidFile     = fs.String("pid-file", "", "write the pid to this `file` once serving (an upgrade's new process rewrites it)")
		upgradeWait = fs.Duration("upgrade-timeout", defaultUpgradeTimeout, "how long an upgrade waits for the new process to be ready before giving up on it")
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
		doc    *yaml.Node // the document of a file (or the embedded default); nil for flags
		err    error
		source string
	)
	switch {
	case *configPath != "" && (len(listens) > 0 || len(backends) > 0):
		fmt.Fprintln(stderr, "siplb: --config and --listen/--backend exclude each other")
		return 2
	case *configPath != "":
		cfg, doc, err = loadConfigDoc(*configPath)
		source = *configPath
	case len(listens) > 0 || len(backends) > 0:
		cfg, err = flagConfig(listens, backends, *algorithm)
		source = "command line"
	default:
		cfg, doc, err = parseConfigDoc(defaultConfig)
		source = "embedded default"
	}
	over := overrides{loops: *loops, admin: *admin, logLevel: *logLevel, udpIO: *udpIO}
	var replaced []string
	if err == nil {
		replaced, err = over.apply(cfg, doc)
	}
	if err == nil && *check {
		// Exactly what a start builds, short of binding: every
		// configuration that passes starts.
		_, err = build(context.Background(), cfg, buildCheck, slog.New(slog.DiscardHandler))
		err = withLine(doc, err)
	}
	if err != nil {
		fmt.Fprintln(stderr, "siplb:", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "siplb: configuration %s is valid\n", source)
		return 0
	}

	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	log := newLogger(stderr, cfg.Log.Format, level)
	if len(replaced) > 0 {
		log.Warn("the command line sets these keys: the file's values do not apply", "keys", replaced)
	}
	notify, err := newNotifier(log)
	if err != nil {
		log.Warn("not telling systemd how siplb is doing", "err", err)
	}
	defer notify.Close()
	// Hitless upgrades (upgrade.go): the sockets a predecessor handed over,
	// and the means to hand them to a successor.
	// SIGUSR2 is ignored until serve listens for it: sent too early (or
	// where upgrades are off) it must not kill siplb, as by default.
	signal.Ignore(syscall.SIGUSR2)
	upg, err := newUpgrader(*pidFile, *upgradeWait, log)
	if err != nil {
		log.Warn("upgrades off: siplb cannot hand its sockets over", "err", err)
		upg = nil
	}
	defer upg.stop() // tableflip's copies of the listeners go with this process
	if upg.successor() && notify != nil {
		notify.main.Store(true)
	}

	// The first SIGTERM or SIGINT drains, a second one stops at once.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	drain := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigs:
			log.Info("stop requested: draining; a second signal stops at once", "signal", sig.String())
			close(drain)
		}
		select {
		case <-ctx.Done():
		case sig := <-sigs:
			log.Warn("second stop signal: stopping at once", "signal", sig.String())
			cancel(fmt.Errorf("second signal %s", sig))
		}
	}()
	err = serveWith(ctx, cfg, serveOptions{configPath: *configPath, source: source, doc: doc, log: log,
		level: level, over: over, drain: drain, notify: notify, upg: upg})
	if err != nil {
		log.Error("siplb stopped", "err", err)
		return 1
	}
	log.Info("siplb stopped")
	return 0
}

// errEngineStopped is the engine returning although nothing asked it to
// stop: an event loop ended (gnet stops every loop then and returns nil;
// the loop's error is in the log above, e.g. accept failing for want of
// descriptors).
var errEngineStopped = errors.New("engine stopped on its own: an event loop ended (see the error logged before)")

// serveOptions is what serveWith needs beyond the configuration.
type serveOptions struct {
	configPath string     // the file a reload reads; "" for none
	source     string     // what the configuration came from, for the log
	doc        *yaml.Node // cfg's document: errors at start find their line in it; nil for none
	log        *slog.Logger
	level      *slog.LevelVar // the level of log, which a reload sets (log.level); nil: fixed
	over       overrides      // the command line's, applied again at each reload
	// drain, when closed, begins a drain (the first SIGTERM or SIGINT):
	// serveWith returns once it is over. The end of ctx stops at once.
	drain  <-chan struct{}
	notify *notifier // systemd's notification socket; nil for none
	upg    *upgrader // hands the sockets to a successor (upgrade.go); nil: none
}

// serve is serveWith without signals, systemd or a settable level: ctx's
// end stops it at once.
func serve(ctx context.Context, cfg *Config, configPath, source string, log *slog.Logger) error {
	return serveWith(ctx, cfg, serveOptions{configPath: configPath, source: source, log: log})
}

// serveWith runs the data path and the admin listener until ctx is done or
// a drain requested by o.drain is over; SIGHUP reloads from o.configPath.
// It returns nil only when it was asked to stop and everything stopped
// cleanly; whatever else ends it is an error.
func serveWith(ctx context.Context, cfg *Config, o serveOptions) error {
	log := o.log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	running := *cfg // as configured: the file limit fills in streams.max_connections
	files := applyFileLimit(cfg, log)
	log.Info("file limit", files.logAttrs()...)
	// Before anything is bound: a second siplb on these addresses stops
	// here instead of sharing their traffic through SO_REUSEPORT.
	locks := &addrlock.Set{}
	if err := o.upg.adoptLocks(locks, cfg); err != nil {
		locks.Release()
		return err
	}
	locks, err := lockListeners(locks, cfg, log)
	if err != nil {
		return err
	}
	defer locks.Release()
	// What the network makes the data path log, per packet or connection,
	// is rate-limited.
	dataLog := slog.New(newRateLimit(log.Handler(), logBurst, logWindow))
	b, err := build(ctx, cfg, buildStart, dataLog)
	if err != nil {
		return withLine(o.doc, err)
	}
	if marks, states, err := o.upg.takeState(b.bal); err != nil {
		log.Warn("upgrade: the predecessor's health state is unreadable; probing afresh", "err", err)
	} else if o.upg.successor() {
		log.Info("upgrade: took over from the predecessor", "pid", os.Getppid(), "health_marks", marks, "operator_states", states)
	}
	if srcs := cfg.discovery(); len(srcs) > 0 {
		go balance.NewDiscovery(b.bal, b.resolver, srcs, log).Run(ctx)
	}
	var checker *balance.Checker
	srv := engine.NewServerWith(b.fwd, engine.Options{Loops: cfg.Engine.Loops, Limits: cfg.Streams, Log: dataLog, GnetUDP: cfg.Engine.UDPIO == "gnet",
		Unreachable: func(a netip.AddrPort, h balance.Hint) { checker.Unreachable(a, h) },
		Listen:      o.upg.engineListen(), ListenPacket: o.upg.engineListenPacket()})
	o.upg.relayFor(srv) // upgrade.go: the other process's connections
	tr, sentBy, prefix := b.fwd.ProbeIdentity()
	capture, err := startCapture(ctx, &cfg.Capture, b.fwd, log)
	if err != nil {
		return withLine(o.doc, err)
	}
	checker = balance.NewChecker(b.bal, cfg.health(), balance.ProbeIdentity{Transport: tr, SentBy: sentBy, BranchPrefix: prefix},
		newProbeCapture(srv, capture, b.fwd.Legs()), log)
	b.fwd.SetProbes(checker)
	b.fwd.SetObserver(checker)
	secrets := newRotation(b.fwd, b.ec.BranchSecret, b.ec.PreviousSecrets, log)
	defer secrets.stop()

	ctl := newControl(b.bal, nil)
	if cfg.Cluster.Enabled {
		// Before the Checker runs: it probes only what this member owns.
		cl, err := startCluster(ctx, cfg.Cluster, b.bal, checker, secrets, log, o.upg.successor())
		if err != nil {
			return withLine(o.doc, err)
		}
		defer cl.stop()
		ctl.cluster = cl
	}
	rl := &reloader{path: o.configPath, over: o.over, bal: b.bal, checker: checker, secrets: secrets,
		stores: b.stores, ctl: ctl, level: o.level, log: log}
	rl.running.Store(&running)
	ctl.reloadFn = rl.reload // SIGHUP and POST /api/v1/reload
	ctl.notify = o.notify
	if o.upg != nil {
		ctl.listen = o.upg.listen
		ctl.upgradeFn = func() error {
			if ctx.Err() != nil || srv.Draining() {
				return errHandedOver
			}
			return o.upg.upgrade(locks, b.bal)
		}
	}
	var adminFailed <-chan error // nil (never ready) without an admin listener
	closeAdmin := func() {}
	if cfg.Admin.Listen != "" {
		stopAdmin, failed, err := startAdmin(ctx, cfg.Admin, ctl, srv, b.bal, checker, captureStats(capture), log)
		if err != nil {
			return err
		}
		stopAdmin = sync.OnceFunc(stopAdmin)
		defer stopAdmin()
		closeAdmin = stopAdmin
		adminFailed = failed
	}
	every, err := watchdogEvery()
	if err != nil {
		log.Warn("systemd watchdog off", "err", err)
	}
	go o.notify.watchdog(ctx, every)

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
	if ctl.upgradeFn != nil {
		go upgradeOnSignal(ctx, ctl.upgradeFn, log)
	}

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
	case <-ctx.Done():
		o.notify.Stopping("stopping")
		return <-errc
	case <-srv.Ready():
	}
	checkCtx, stopChecker := context.WithCancel(ctx)
	defer stopChecker()
	go checker.Run(checkCtx)
	ctl.SetReady(true)
	go tellReady(ctx, ctl, checker, o.notify, o.upg.ready)
	for _, l := range b.fwd.Legs() {
		log.Info("listening", "leg", l.Name, "advertise", l.SentBy(), "tag", l.Tag())
	}
	t := b.bal.Table()
	for i := range t.NumPools() {
		p := t.Pool(balance.PoolID(i))
		log.Info("pool", "name", p.Name(), "algorithm", p.Algorithm().String(), "backends", len(p.Backends()))
	}
	log.Info("siplb serving", "version", version, "config", o.source, "loops", cfg.Engine.Loops, "max_connections", files.maxConns)
	select {
	case err := <-errc:
		return ended(err)
	case err := <-adminFailed:
		return adminDown(err)
	case <-ctx.Done():
		o.notify.Stopping("stopping")
		return <-errc
	case <-o.upg.exited():
		// A successor serves the same sockets now: this process stops
		// probing (its probes' answers reach the successor's sockets) and
		// reading datagrams, gives the admin listener up, and drains its
		// connections. systemd follows the successor (MAINPID=), so this
		// one tells it nothing more.
		log.Info("upgrade: the new process is ready; this one stops reading and drains")
		stopChecker()
		closeAdmin()
		srv.StopReading()
		// It leaves the cluster, freeing the gossip port the successor
		// waits for (cluster.go).
		ctl.cluster.stop()
		return drainThenStop(ctx, cancel, srv, ctl, rl.current().Shutdown, nil, errc, adminFailed, log)
	case <-o.drain:
	}
	// Stopping for good: tableflip's copies of the listeners close, so the
	// drain's closing of the engine's refuses new connections.
	o.upg.stop()
	return drainThenStop(ctx, cancel, srv, ctl, rl.current().Shutdown, o.notify, errc, adminFailed, log)
}

// tellReady tells systemd READY=1 when /readyz first answers ready: the
// data path serves and every probed backend has had its first probe
// settle. Then it calls ready (a successor tells its predecessor to go).
func tellReady(ctx context.Context, ctl *control, checker *balance.Checker, n *notifier, ready func()) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if ok, _ := ctl.readiness(checker.Status(), time.Now()); ok {
			n.Ready("serving")
			ready()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drainThenStop drains (engine.Server.Drain) and then stops the engine:
// /readyz answers draining at once, systemd hears STOPPING=1, and the
// engine is stopped when no connection is open and nothing has been
// forwarded for sd.Idle, at sd.DrainTimeout, or when ctx ends (a second
// signal). drain_timeout 0 stops at once.
func drainThenStop(ctx context.Context, cancel context.CancelFunc, srv *engine.Server, ctl *control, sd ShutdownConfig,
	n *notifier, errc <-chan error, adminFailed <-chan error, log *slog.Logger) error {
	ctl.SetReady(false)
	stop := func(why string) error {
		log.Info("stopping", "why", why)
		cancel()
		return <-errc
	}
	timeout := defaultDrainTimeout
	if sd.DrainTimeout != nil {
		timeout = *sd.DrainTimeout
	}
	if timeout == 0 {
		n.Stopping("stopping (shutdown.drain_timeout is 0)")
		return stop("shutdown.drain_timeout is 0")
	}
	n.Stopping("draining")
	policy := engine.RejectNewDialogs
	if sd.NewDialogs == "forward" {
		policy = engine.ForwardNewDialogs
	}
	srv.Drain(engine.DrainOptions{NewDialogs: policy, Idle: sd.Idle})
	log.Info("draining", "new_dialogs", sd.NewDialogs, "drain_timeout", timeout, "idle", sd.Idle)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var forwarded uint64
	quietSince := time.Now()
	for {
		select {
		case err := <-errc:
			if err == nil {
				err = errEngineStopped
			}
			return err
		case err := <-adminFailed:
			cancel()
			return errors.Join(err, <-errc)
		case <-ctx.Done():
			return <-errc // a second signal
		case <-deadline.C:
			return stop(fmt.Sprintf("drain timeout: %d connections still open", srv.Stats().Conns))
		case now := <-tick.C:
			st := srv.Stats()
			if f := st.RequestsOut + st.ResponsesOut; f != forwarded {
				forwarded, quietSince = f, now
			}
			if st.Conns == 0 && now.Sub(quietSince) >= sd.Idle {
				return stop("drained: no connection open, nothing forwarded for " + sd.Idle.String())
			}
		}
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

// parseBackendFlag parses "udp://IP:PORT;weight=N;priority=N;state=S"
// strictly: each parameter at most once, numbers whole decimals, nothing
// left over ("weight=2x" is an error, not 2).
func parseBackendFlag(s string) (BackendConfig, error) {
	parts := strings.Split(s, ";")
	bc := BackendConfig{Address: parts[0]}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" || v == "" {
			return bc, fmt.Errorf("parameter %q: want name=value", p)
		}
		if seen[k] {
			return bc, fmt.Errorf("parameter %q given twice", k)
		}
		seen[k] = true
		switch k {
		case "weight", "priority":
			n, err := strconv.Atoi(v)
			if err != nil {
				return bc, fmt.Errorf("%s: want a whole number, got %q", k, v)
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
