package main

import (
	"log/slog"
	"runtime"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/pool"
)

// Descriptors the connection cap leaves to everything else: a tenth of the
// file limit, at least fdHeadroomMin, for DNS queries, the admin listener
// and its clients, probes and the runtime; besides fdFixed and the
// listeners' own sockets, which connsForFiles counts.
const (
	fdHeadroomMin = 64
	fdHeadroomDiv = 10
	fdFixed       = 16   // stdin/out/err, the runtime's poller, the admin listener, the listen locks' slack
	fdLowConns    = 1024 // a derived cap below this is worth a warning
)

// fileLimit is what applyFileLimit found and decided, for the start log.
type fileLimit struct {
	soft, hard uint64 // 0: unknown
	maxConns   int    // streams.max_connections in force
	fits       int    // connections the soft limit leaves room for; 0 if unknown
	from       string // "file limit", "default" or "config"
}

// applyFileLimit raises the soft RLIMIT_NOFILE to the hard limit and, when
// the configuration leaves streams.max_connections unset, sets it to what
// the limit leaves room for (at most pool.DefaultMaxConns). A configured
// value above that is kept with a warning: once descriptors run out, the
// engine cannot accept, and an event loop that cannot accept stops.
func applyFileLimit(cfg *Config, log *slog.Logger) fileLimit {
	soft, hard, err := raiseFileLimit()
	if err != nil && soft != 0 {
		log.Warn("could not raise the file limit to the hard limit", "soft", soft, "hard", hard, "err", err)
	}
	fl := fileLimit{soft: soft, hard: hard, from: "config"}
	if soft != 0 {
		fl.fits = connsForFiles(soft, listenerFDs(cfg))
	}
	switch {
	case cfg.Streams.MaxConns != 0:
		if soft != 0 && cfg.Streams.MaxConns > fl.fits {
			log.Warn("streams.max_connections is above what the file limit leaves room for; raise the hard limit (LimitNOFILE=) or lower the key",
				"key", "streams.max_connections", "max_connections", cfg.Streams.MaxConns, "fits", fl.fits, "soft", soft)
		}
	case fl.fits > 0:
		cfg.Streams.MaxConns = min(fl.fits, pool.DefaultMaxConns)
		fl.from = "file limit"
		if fl.fits < fdLowConns {
			log.Warn("file limit leaves room for few connections; raise the hard limit (LimitNOFILE=) for more",
				"key", "streams.max_connections", "soft", soft, "max_connections", cfg.Streams.MaxConns, "default", pool.DefaultMaxConns)
		}
	case soft != 0: // a limit that leaves room for nothing: one connection, and a warning
		cfg.Streams.MaxConns = 1
		fl.from = "file limit"
		log.Warn("file limit leaves no room for connections", "soft", soft, "listener_fds", listenerFDs(cfg))
	default:
		fl.from = "default"
	}
	fl.maxConns = cfg.Streams.Defaults().MaxConns
	return fl
}

// connsForFiles is the connections a file limit leaves room for after the
// listeners' fixed descriptors and the headroom; 0 if none.
func connsForFiles(limit uint64, fixed int) int {
	headroom := max(uint64(fdHeadroomMin), limit/fdHeadroomDiv)
	used := uint64(fixed) + headroom
	if limit <= used {
		return 0
	}
	return int(min(limit-used, uint64(pool.MaxSlots)))
}

// listenerFDs counts the descriptors siplb holds whatever the traffic: a
// socket per UDP and TCP leg and event loop, one per TLS and WebSocket leg, a lock per
// leg, each loop's poller and wake-up descriptor, and fdFixed.
func listenerFDs(cfg *Config) int {
	loops := cfg.Engine.Loops
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	n := fdFixed + 2*loops
	for _, l := range cfg.Listen {
		tr, _, _ := parseEndpoint(l.Address)
		if tr == balance.TLS || tr.WebSocket() {
			n += 2
		} else {
			n += loops + 1
		}
	}
	return n
}

// logAttrs are the start log's figures: "file limit soft=... hard=...
// max_connections=... from=...".
func (fl fileLimit) logAttrs() []any {
	return []any{"soft", fl.soft, "hard", fl.hard, "max_connections", fl.maxConns, "from", fl.from}
}
