// Command sipecho is a SIP backend emulator over UDP and TCP: it answers
// every request at once (see package echo for what it answers) and counts
// hits per listening socket and method.
//
// Usage:
//
//	sipecho -listen 127.0.0.1:5070 -listen 127.0.0.1:5071 [-tcp] [-stats FILE]
//	sipecho -listen tcp://127.0.0.1:5070 -listen udp://127.0.0.1:5071
//	sipecho -host 127.0.0.1 -ports 5070,5071,5072 [-tcp] [-stats FILE]
//
// A plain host:port (or udp://host:port) is a UDP socket; -tcp adds a TCP
// listener on the same address to each of them; tcp://host:port is a TCP
// listener only.
//
// On SIGINT or SIGTERM it writes the counters as JSON to FILE (when -stats is
// given) and as a table to stderr, then exits 0. On SIGUSR1 it writes them to
// FILE and goes on: FILE is replaced whole (written aside, then renamed), so
// a reader that waits for it to appear never sees half of it. The counters
// include "flood", the flood-marked messages (see package echo).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/siplb/siplb/benchmarks/internal/echo"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	var listen listFlag
	flag.Var(&listen, "listen", "address to answer on: host:port or udp://host:port (UDP), tcp://host:port (TCP) (repeatable)")
	tcp := flag.Bool("tcp", false, "also answer over TCP on the port of every UDP address")
	ports := flag.String("ports", "", "comma-separated ports to answer on, with -host")
	host := flag.String("host", "127.0.0.1", "address for the -ports sockets")
	statsFile := flag.String("stats", "", "on SIGINT/SIGTERM (and, without exiting, on SIGUSR1) write per-socket, per-method counts as JSON to this file")
	quiet := flag.Bool("q", false, "do not print the listening addresses and the final table")
	flag.Parse()

	addrs := []string(listen)
	if *ports != "" {
		for p := range strings.SplitSeq(*ports, ",") {
			if p = strings.TrimSpace(p); p != "" {
				addrs = append(addrs, net.JoinHostPort(*host, p))
			}
		}
	}
	if len(addrs) == 0 {
		fmt.Fprintln(os.Stderr, "sipecho: give -listen host:port (repeatable) or -ports p1,p2")
		return 2
	}
	if *tcp {
		addrs = withTCP(addrs)
	}
	srv, err := echo.Listen(addrs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sipecho:", err)
		return 1
	}
	if !*quiet {
		for _, a := range srv.Addrs() {
			fmt.Fprintln(os.Stderr, "sipecho: listening on udp", a)
		}
		for _, a := range srv.TCPAddrs() {
			fmt.Fprintln(os.Stderr, "sipecho: listening on tcp", a)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *statsFile != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-usr1:
					if err := writeStats(*statsFile, srv.Stats()); err != nil {
						fmt.Fprintln(os.Stderr, "sipecho: stats:", err)
					}
				}
			}
		}()
	}
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sipecho:", err)
		return 1
	}
	st := srv.Stats()
	if *statsFile != "" {
		if err := writeStats(*statsFile, st); err != nil {
			fmt.Fprintln(os.Stderr, "sipecho: stats:", err)
			return 1
		}
	}
	if !*quiet {
		st.WriteTable(os.Stderr)
	}
	return 0
}

// writeStats replaces file with st as JSON: it writes file.tmp and renames
// it, so the file is never seen half written.
func writeStats(file string, st echo.Stats) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// withTCP adds tcp://host:port after every UDP address (plain or udp://) of
// addrs that has no TCP listener yet.
func withTCP(addrs []string) []string {
	out := make([]string, 0, 2*len(addrs))
	for _, a := range addrs {
		out = append(out, a)
		if strings.HasPrefix(a, "tcp://") {
			continue
		}
		t := "tcp://" + strings.TrimPrefix(a, "udp://")
		if !slices.Contains(addrs, t) {
			out = append(out, t)
		}
	}
	return out
}
