package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/siplb/siplb/internal/addrlock"
)

// lockListeners takes the lock of every listen address (internal/addrlock)
// before anything is bound, so that a second siplb on an address already
// served refuses to start instead of taking half its traffic through
// SO_REUSEPORT. The error names the listener and the holder:
// "listen[0] udp://127.0.0.1:5060: already served by siplb pid 1234".
// A lock held by a process of another user is logged and passed over: the
// kernel does not share a port across users, so the bind itself decides.
// The caller keeps the Set for as long as it serves (a successor taking the
// sockets over adopts its Files) and releases it when done. set may hold
// locks adopted from a predecessor already (upgrader.adoptLocks): those are
// kept as they are.
func lockListeners(set *addrlock.Set, cfg *Config, log *slog.Logger) (*addrlock.Set, error) {
	for i, l := range cfg.Listen {
		tr, ap, err := parseEndpoint(l.Address)
		if err == nil {
			var k addrlock.Key
			if k, err = addrlock.NewKey(tr.String(), ap); err == nil {
				err = set.Acquire(k)
			}
		}
		if he, ok := errors.AsType[*addrlock.HeldError](err); ok && he.Foreign {
			log.Warn("listen address lock held by another user; going on without it", "listener", fmt.Sprintf("listen[%d]", i), "address", l.Address, "holder", he.Error())
			continue
		}
		if err != nil {
			set.Release()
			return nil, fmt.Errorf("listen[%d] %s: %w", i, l.Address, err)
		}
	}
	return set, nil
}
