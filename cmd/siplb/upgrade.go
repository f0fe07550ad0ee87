package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/internal/addrlock"
)

// A hitless upgrade (`siplb upgrade`, POST /api/v1/upgrade or SIGUSR2)
// starts a new siplb process from the same path (the same binary, or a new
// one put in its place) with the same arguments, and hands it every
// listening socket, the listen address locks, the admin listener and the
// backends' health marks and operator states. github.com/cloudflare/tableflip
// does the process part: it passes the descriptors across exec, keyed by
// network and address, waits for the new process to say it is ready (or to
// exit, or for --upgrade-timeout) and tells the old one when to go. Until
// the new process is ready both serve the same sockets (siplb keeps no
// per-call state and both read the same branch secret from the state
// directory, so either answers any message); then the old one reads no more
// datagrams (engine.Server.StopReading), closes its listeners, lets its
// TCP/TLS connections finish what they carry, as the SIGTERM drain does, up
// to shutdown.drain_timeout, and exits. A new process that fails to start
// changes nothing: the old one keeps serving and the locks are its own again.

// tableflip's names of what is handed over besides the listening sockets.
const (
	lockFilePrefix = "siplb-lock "  // + addrlock.Key: a listen address lock
	stateFileName  = "siplb-health" // the backends' marks and states (handoverState)
	relayFileName  = "siplb-relay"  // the successor's end of the relay (engine.NewRelayPair)
)

// defaultUpgradeTimeout bounds a new process's start (--upgrade-timeout).
const defaultUpgradeTimeout = time.Minute

// maxHandoverState bounds the state file a new process reads.
const maxHandoverState = 16 << 20

// errUpgradeBusy answers an upgrade asked for while one is under way.
var errUpgradeBusy = errors.New("an upgrade is already under way")

// upgrader hands this process's sockets to a successor. A nil *upgrader
// (serve in tests, or a system tableflip does not support) opens sockets
// itself and refuses to upgrade.
type upgrader struct {
	tf   *tableflip.Upgrader
	log  *slog.Logger
	busy atomic.Bool
	srv  *engine.Server // whose relay joins this process to the other (relayFor); nil: none
}

// newUpgrader prepares this process for hand-overs: it takes what a
// predecessor passed, if this process is one's successor. pidFile, if set,
// gets the pid once the process is ready (tableflip writes it atomically).
func newUpgrader(pidFile string, timeout time.Duration, log *slog.Logger) (*upgrader, error) {
	if timeout <= 0 {
		timeout = defaultUpgradeTimeout
	}
	tf, err := tableflip.New(tableflip.Options{UpgradeTimeout: timeout, PIDFile: pidFile})
	if err != nil {
		return nil, err
	}
	u := &upgrader{tf: tf, log: log}
	if u.successor() {
		if n := closeLeakedFDs(); n > 0 {
			log.Info("upgrade: closed descriptors the predecessor leaked", "count", n)
		}
		// systemd named the predecessor the watchdog's process; this one
		// takes over its keep-alives (and says MAINPID= when ready).
		if os.Getenv("WATCHDOG_PID") == strconv.Itoa(os.Getppid()) {
			os.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
		}
	}
	return u, nil
}

// successor reports whether this process was started by an upgrade.
func (u *upgrader) successor() bool { return u != nil && u.tf.HasParent() }

// engineListen is the engine's Options.Listen: a listener the predecessor
// handed over, or one opened by lc and kept for the next hand-over.
func (u *upgrader) engineListen() engine.ListenFunc {
	if u == nil {
		return nil
	}
	return func(ctx context.Context, lc *net.ListenConfig, network, addr string) (net.Listener, error) {
		return u.tf.ListenWithCallback(network, addr, func(network, addr string) (net.Listener, error) {
			return lc.Listen(ctx, network, addr)
		})
	}
}

// engineListenPacket is the engine's Options.ListenPacket. tableflip keys a
// socket by network and address; the index of the socket among the
// SO_REUSEPORT sockets of one address is added to the address, so that each
// is handed over, with the datagrams queued in it.
func (u *upgrader) engineListenPacket() engine.ListenPacketFunc {
	if u == nil {
		return nil
	}
	return func(ctx context.Context, lc *net.ListenConfig, network, addr string, index int, handedOnly bool) (net.PacketConn, error) {
		name := addr + "#" + strconv.Itoa(index)
		if handedOnly {
			// Taken from what was handed over, it is kept for the next
			// hand-over as the others are.
			pc, err := u.tf.PacketConn(network, name)
			if pc == nil || err != nil {
				return nil, err
			}
			return pc, nil
		}
		return u.tf.ListenPacketWithCallback(network, name, func(network, _ string) (net.PacketConn, error) {
			return lc.ListenPacket(ctx, network, addr)
		})
	}
}

// relayFor makes srv the Server whose relay (engine handover_relay.go)
// joins this process to the other one of a hand-over: to its predecessor,
// taken now if this process is a successor, and to its successor, at each
// upgrade. Through it, a message for a TCP/TLS connection the other
// process accepted (a UDP backend's late response to a client of the old
// process) is written on that connection rather than lost. Call it before
// ready.
func (u *upgrader) relayFor(srv *engine.Server) {
	if u == nil {
		return
	}
	u.srv = srv
	if !u.successor() {
		return
	}
	f, err := u.tf.File(relayFileName)
	if err != nil || f == nil {
		if err != nil {
			u.log.Warn("upgrade: the relay to the predecessor is unusable; its connections' late responses over UDP are lost", "err", err)
		}
		return // a predecessor without relays
	}
	if err := srv.Relay(f); err != nil {
		u.log.Warn("upgrade: the relay to the predecessor is unusable; its connections' late responses over UDP are lost", "err", err)
	}
}

// startRelay opens a relay to the successor about to start and reports
// whether it did; an upgrade goes on without one.
func (u *upgrader) startRelay() bool {
	if u.srv == nil {
		return false
	}
	mine, theirs, err := engine.NewRelayPair()
	if err != nil {
		u.log.Warn("upgrade: no relay to the new process; late responses over UDP to this one's connections are lost", "err", err)
		return false
	}
	err = u.tf.AddFile(relayFileName, theirs) // a copy: tableflip passes it
	theirs.Close()
	if err == nil {
		err = u.srv.Relay(mine)
	} else {
		mine.Close()
	}
	if err != nil {
		u.log.Warn("upgrade: no relay to the new process; late responses over UDP to this one's connections are lost", "err", err)
		return false
	}
	return true
}

// listen opens the admin listener, handed over like the engine's.
func (u *upgrader) listen(network, addr string) (net.Listener, error) {
	if u == nil {
		return net.Listen(network, addr)
	}
	return u.tf.Listen(network, addr)
}

// adoptLocks takes over the locks of cfg's listen addresses that the
// predecessor handed over, into set; lockListeners then acquires the rest
// (a listener the new configuration adds). A plain second start, which
// inherits nothing, still finds every lock held.
func (u *upgrader) adoptLocks(set *addrlock.Set, cfg *Config) error {
	if !u.successor() {
		return nil
	}
	for i, l := range cfg.Listen {
		tr, ap, err := parseEndpoint(l.Address)
		if err != nil {
			continue // lockListeners names it
		}
		k, err := addrlock.NewKey(tr.String(), ap)
		if err != nil {
			continue
		}
		f, err := u.tf.File(lockFilePrefix + k.String())
		if err != nil || f == nil {
			if err != nil {
				return fmt.Errorf("listen[%d] %s: lock handed over: %w", i, l.Address, err)
			}
			continue
		}
		_, err = set.Adopt(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("listen[%d] %s: %w", i, l.Address, err)
		}
	}
	return nil
}

// ready tells the predecessor this process serves (it then stops reading
// and drains), writes the pid file and closes what was handed over and not
// used (a listener the new configuration dropped).
func (u *upgrader) ready() {
	if u == nil {
		return
	}
	if err := u.tf.Ready(); err != nil {
		u.log.Warn("telling the predecessor siplb is ready failed", "err", err)
	}
}

// exited is closed once a successor is ready: this process is to drain and
// go. nil (never) for a nil upgrader.
func (u *upgrader) exited() <-chan struct{} {
	if u == nil {
		return nil
	}
	return u.tf.Exit()
}

// stop ends hand-overs for a process that is stopping for good: it closes
// tableflip's copies of the listening sockets, so that closing the
// engine's refuses new connections as a drain must.
func (u *upgrader) stop() {
	if u != nil {
		u.tf.Stop()
	}
}

// upgrade starts a successor and waits until it is ready or has failed.
// It hands over the locks of locks and the health view of bal. On failure
// the locks answer for this process again and it serves on, unchanged.
func (u *upgrader) upgrade(locks *addrlock.Set, bal *balance.Balancer) error {
	if u == nil {
		return errors.New("upgrades are not supported here")
	}
	if !u.busy.CompareAndSwap(false, true) {
		return errUpgradeBusy
	}
	defer u.busy.Store(false)
	if err := u.handOverState(bal); err != nil {
		return err
	}
	keys := locks.Keys()
	files, err := locks.Files()
	if err != nil {
		locks.Resume()
		return err
	}
	for i, f := range files {
		if i < len(keys) {
			err = errors.Join(err, u.tf.AddFile(lockFilePrefix+keys[i].String(), f))
		}
		f.Close()
	}
	relaying := false
	if err == nil {
		relaying = u.startRelay()
		u.log.Info("upgrade: starting a new process", "pid", os.Getpid(), "relay", relaying)
		err = u.tf.Upgrade()
	}
	if err != nil {
		if relaying {
			u.srv.EndRelay()
		}
		if rerr := locks.Resume(); rerr != nil {
			u.log.Warn("upgrade failed: the listen address locks do not answer", "err", rerr)
		}
		return fmt.Errorf("upgrade failed, this process serves on: %w", err)
	}
	return nil
}

// handoverState is what a successor learns of the backends: each member's
// health mark and the operator's state set through the API, as the
// predecessor had them when the upgrade began.
type handoverState struct {
	Backends []handoverBackend `json:"backends"`
}

type handoverBackend struct {
	Pool      string `json:"pool"`
	Addr      string `json:"addr"`
	Transport string `json:"transport"`
	Weight    int    `json:"weight"`
	Priority  int    `json:"priority"`
	Healthy   bool   `json:"healthy"`
	// Override is the operator's state set through the API or siplb ctl
	// (draining, disabled, up); empty when the configuration's applies.
	Override string `json:"override,omitempty"`
}

// snapshotState is bal's view for a successor.
func snapshotState(bal *balance.Balancer) handoverState {
	t := bal.Table()
	var st handoverState
	for i := range t.NumPools() {
		p := t.Pool(balance.PoolID(i))
		for _, b := range p.Backends() {
			hb := handoverBackend{Pool: p.Name(), Addr: b.Addr.String(), Transport: b.Transport.String(),
				Weight: b.Weight, Priority: b.Priority, Healthy: b.Healthy()}
			if s, ok := bal.Override(b.Addr); ok {
				hb.Override = s.String()
			}
			st.Backends = append(st.Backends, hb)
		}
	}
	return st
}

// handOverState writes bal's view into an anonymous file (stateFile) and
// adds it to what the successor inherits.
func (u *upgrader) handOverState(bal *balance.Balancer) error {
	data, err := json.Marshal(snapshotState(bal))
	if err != nil {
		return err
	}
	f, err := stateFile()
	if err != nil {
		return fmt.Errorf("upgrade: health state: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("upgrade: health state: %w", err)
	}
	return u.tf.AddFile(stateFileName, f)
}

// takeState applies the predecessor's view to bal before anything is
// served or probed: the health marks of members still configured, and the
// operator's states of members whose pool, transport, weight and priority
// are unchanged (as a reload keeps them). The Checker starts from these
// marks. It returns how many marks and states it applied.
func (u *upgrader) takeState(bal *balance.Balancer) (marks, states int, err error) {
	if !u.successor() {
		return 0, 0, nil
	}
	f, err := u.tf.File(stateFileName)
	if err != nil || f == nil {
		return 0, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	var st handoverState
	if err := json.NewDecoder(io.LimitReader(f, maxHandoverState)).Decode(&st); err != nil {
		return 0, 0, fmt.Errorf("health state handed over: %w", err)
	}
	marks, states = applyState(bal, st)
	return marks, states, nil
}

// applyState is takeState's work on a decoded state.
func applyState(bal *balance.Balancer, st handoverState) (marks, states int) {
	t := bal.Table()
	marked := map[netip.AddrPort]bool{}
	for _, hb := range st.Backends {
		addr, err := netip.ParseAddrPort(hb.Addr)
		if err != nil {
			continue
		}
		id, ok := t.PoolByName(hb.Pool)
		if !ok {
			continue
		}
		var same, found bool
		for _, b := range t.Pool(id).Backends() {
			if b.Addr == addr {
				found = true
				same = b.Transport.String() == hb.Transport && b.Weight == hb.Weight && b.Priority == hb.Priority
			}
		}
		if !found {
			continue
		}
		if !marked[addr] {
			marked[addr] = true
			bal.SetHealth(addr, hb.Healthy)
			marks++
		}
		if hb.Override == "" || !same {
			continue
		}
		if s, err := balance.ParseState(hb.Override); err == nil {
			if _, err := bal.SetState(addr, s); err == nil {
				states++
			}
		}
	}
	return marks, states
}

// upgradeOnSignal upgrades on each SIGUSR2 until ctx ends, logging the
// outcome (POST /api/v1/upgrade answers it instead).
func upgradeOnSignal(ctx context.Context, upgrade func() error, log *slog.Logger) {
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	for {
		select {
		case <-ctx.Done():
			return
		case <-usr2:
			if err := upgrade(); err != nil {
				log.Error("upgrade (SIGUSR2) failed", "err", err)
			} else {
				log.Info("upgrade (SIGUSR2) done: the new process serves")
			}
		}
	}
}
