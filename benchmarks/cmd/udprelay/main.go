// Command udprelay is the raw limit of a UDP forwarder on this machine: it
// relays datagrams between clients and backends unchanged, in batches of
// recvmmsg(2)/sendmmsg(2), and parses nothing. `make bench` runs the same
// SIP load through it, through siplb and through Kamailio, so that siplb's
// throughput can be read as a share of what any forwarder could reach here.
//
// Usage:
//
//	udprelay -listen 127.0.0.1:5060 -backend 127.0.0.1:5070 [-backend …] [-q]
//
// One listening socket faces the clients. For each client address seen, the
// relay opens one UDP socket connected to backend[hash(client) % n]; the
// client's datagrams leave on that socket, and what the backend sends back to
// it goes to the client from the listening socket, so the client hears the
// answer from the address it sent to. Backends see the upstream socket as
// the source. Nothing ever expires: a benchmark has a handful of clients.
//
// On SIGINT or SIGTERM it prints the datagram counters to stderr (unless -q)
// and exits 0. Linux only.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	var backends listFlag
	listen := flag.String("listen", "127.0.0.1:5060", "UDP address the clients send to, host:port")
	flag.Var(&backends, "backend", "UDP backend, host:port (repeatable)")
	quiet := flag.Bool("q", false, "do not print the addresses and the final counters")
	flag.Parse()

	if len(backends) == 0 {
		fmt.Fprintln(os.Stderr, "udprelay: give at least one -backend host:port")
		return 2
	}
	var cfg Config
	var err error
	if cfg.Listen, err = netip.ParseAddrPort(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "udprelay: -listen:", err)
		return 2
	}
	for _, b := range backends {
		ap, err := netip.ParseAddrPort(b)
		if err != nil {
			fmt.Fprintln(os.Stderr, "udprelay: -backend:", err)
			return 2
		}
		cfg.Backends = append(cfg.Backends, ap)
	}
	r, err := Listen(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udprelay:", err)
		return 1
	}
	if !*quiet {
		fmt.Fprintln(os.Stderr, "udprelay: listening on udp", r.Addr(), "→", backends.String())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := r.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "udprelay:", err)
		return 1
	}
	if !*quiet {
		s := r.Stats()
		fmt.Fprintf(os.Stderr, "udprelay: clients %d, to backends %d datagrams, to clients %d, dropped %d\n",
			s.Clients, s.Up, s.Down, s.Dropped)
	}
	return 0
}
