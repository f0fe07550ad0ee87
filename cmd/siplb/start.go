package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	siptls "github.com/siplb/siplb/tls"
)

// built is what a start makes of a configuration before it binds
// anything: the pools and their Balancer, the resolver, the engine's
// configuration with the TLS stores loaded, and the Forwarder. --check
// builds it and stops there, serve builds it and runs it, so a
// configuration --check passes is one that starts.
type built struct {
	pools    []balance.PoolConfig
	bal      *balance.Balancer
	resolver *balance.Resolver
	ec       engine.Config
	stores   []*siptls.Store
	fwd      *engine.Forwarder
}

// buildMode is what build may do beyond checking.
type buildMode int

const (
	// buildStart prepares a start: it keeps a generated branch secret in
	// the state directory, asks DNS for the members of pools that have only
	// discovery sources, and resolves listen ports 0.
	buildStart buildMode = iota
	// buildCheck is --check: it reads the state file but writes nothing,
	// asks DNS nothing (a pool fed only by DNS gets a stand-in member) and
	// binds nothing.
	buildCheck
)

// build builds cfg as a start does. Its errors name the key at fault where
// one is to blame (a *validationError, which withLine gives a line).
func build(ctx context.Context, cfg *Config, mode buildMode, log *slog.Logger) (*built, error) {
	b := &built{}
	var secret string
	var previous []string
	var err error
	if mode == buildStart {
		if secret, previous, err = resolveSecrets(cfg, log); err != nil {
			return nil, err
		}
	} else if err := checkSecretFile(cfg); err != nil {
		return nil, err
	}
	if b.pools, err = cfg.pools(); err != nil {
		return nil, err
	}
	if cfg.needsDNS() {
		if b.resolver, err = balance.NewResolver(cfg.resolverConfig()); err != nil {
			return nil, invalid("dns", "%v", err)
		}
		if mode == buildStart {
			if err := discoverInitial(ctx, cfg, b.resolver, b.pools); err != nil {
				return nil, err
			}
		} else {
			standInMembers(cfg, b.pools)
		}
	}
	if b.bal, err = balance.New(b.pools); err != nil {
		return nil, fmt.Errorf("pools: %w", err)
	}
	if b.ec, b.stores, err = cfg.engineConfig(); err != nil {
		return nil, keyed(err)
	}
	for i, l := range cfg.Listen {
		if l.TLS != nil && b.ec.Legs[i].TLS != nil && b.ec.Legs[i].TLS.Leaf() == nil {
			return nil, invalid(fmt.Sprintf("listen[%d].tls.cert_file", i), "%v", siptls.ErrNoCertificate)
		}
	}
	b.ec.Resolver = b.resolver
	b.ec.Log = log
	b.ec.BranchSecret = secret
	b.ec.PreviousSecrets = previous
	b.ec.OutgoingProxy = cfg.Routing.OutgoingProxy
	if len(cfg.Routing.Domain2Proxy) > 0 {
		if b.ec.Domains, err = balance.NewDomainMap(cfg.Routing.Domain2Proxy); err != nil {
			return nil, invalid("routing.domain2proxy", "%v", err)
		}
	}
	if mode == buildStart {
		if err := engine.ResolvePorts(b.ec.Legs); err != nil {
			return nil, keyed(err)
		}
	} else {
		// A start binds port 0 to learn a free port; a check gives each
		// such listener a port of its own that no listener names, so
		// that their Via identities differ as they will.
		for i := range b.ec.Legs {
			if l := &b.ec.Legs[i]; l.Addr.Port() == 0 {
				l.Addr = netip.AddrPortFrom(l.Addr.Addr(), uint16(65535-i))
			}
		}
	}
	if b.fwd, err = engine.NewForwarder(b.ec, b.bal); err != nil {
		return nil, keyed(err)
	}
	return b, nil
}

// checkSecretFile fails where resolveSecrets would at a start: a state file
// that exists but holds no usable secret. A missing or unreadable one is no
// error there (a secret is made, or a temporary one with a warning).
func checkSecretFile(cfg *Config) error {
	if cfg.Engine.BranchSecret != "" {
		return nil
	}
	_, err := readSecret(filepath.Join(stateDir(cfg), secretFileName), slog.New(slog.DiscardHandler))
	if errors.Is(err, errBadSecretFile) {
		return fmt.Errorf("engine.state_dir: %w", err)
	}
	return nil
}

// standInMembers gives each pool that has no static member (only DNS
// sources) one member for a check, so that the Balancer and the Forwarder
// can be built without asking DNS: an address of TEST-NET-1 or of
// 2001:db8::/32, of the transport the first source names (the first
// listener's for an SRV source, whose records say it) and of the family of
// the first listener of that transport. Validate has checked the sources'
// transports against the listeners.
func standInMembers(cfg *Config, pools []balance.PoolConfig) {
	for i, p := range cfg.Pools {
		if len(p.Backends) > 0 || len(p.Discovery) == 0 {
			continue
		}
		d := p.Discovery[0]
		tr, _, _ := parseEndpoint(cfg.Listen[0].Address)
		if d.SRV == "" {
			tr = balance.UDP
			if d.Transport != "" {
				tr, _ = balance.ParseTransport(d.Transport)
			}
		}
		addr := netip.MustParseAddr("192.0.2.1")
		for _, l := range cfg.Listen {
			if ltr, ap, err := parseEndpoint(l.Address); err == nil && ltr == tr {
				if !ap.Addr().Unmap().Is4() {
					addr = netip.MustParseAddr("2001:db8::1")
				}
				break
			}
		}
		pools[i].Backends = append(pools[i].Backends, balance.BackendConfig{Addr: netip.AddrPortFrom(addr, engine.DefaultSIPPort), Transport: tr})
	}
}

// listenerErrRE matches the engine's errors about one listener,
// "listener 1 (127.0.0.1:5060): advertise ...".
var listenerErrRE = regexp.MustCompile(`^listener (\d+)(?: \([^)]*\))?: (.*)$`)

// keyed turns an error of the engine or the TLS store that names its key
// in its own words into a *validationError naming the configuration's key:
// "listener 1 (...): advertise ..." becomes listen[1].advertise, and
// "listen[0].tls.key_file: open ..." keeps its key. Others are returned as
// they are.
func keyed(err error) error {
	msg := err.Error()
	if m := listenerErrRE.FindStringSubmatch(msg); m != nil {
		key := "listen[" + m[1] + "]"
		if strings.HasPrefix(m[2], "advertise") {
			key += ".advertise"
		}
		return invalid(key, "%s", m[2])
	}
	if m := keyRE.FindStringSubmatch(msg); m != nil {
		return invalid(m[1], "%s", m[2])
	}
	return err
}
