// Command connhold opens many idle TCP or TLS connections to a target from
// its own process, holds them for a while and exits: the client side of
// scripts/connmem.sh, which reads the target's memory before and after.
//
// Usage:
//
//	connhold -target 127.0.0.1:5060 [-n 10000] [-tls] [-hold 30s]
//	         [-parallel 64] [-timeout 10s]
//
// It prints "open N" on stdout once all N connections are open (TLS: the
// handshake done), then holds them, sending nothing, until -hold has passed
// or it gets SIGINT/SIGTERM, and closes them. TLS skips certificate
// verification: it is a test client for a throwaway certificate. It exits 0
// when every connection opened, 1 otherwise (after printing how many did),
// 2 on bad flags. It never runs longer than -timeout plus -hold.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// config is one connhold run.
type config struct {
	target   string
	n        int
	useTLS   bool
	hold     time.Duration
	parallel int
	timeout  time.Duration
}

func run(args []string) int {
	fs := flag.NewFlagSet("connhold", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.target, "target", "127.0.0.1:5060", "host:port to connect to")
	fs.IntVar(&c.n, "n", 10000, "connections to open")
	fs.BoolVar(&c.useTLS, "tls", false, "TLS connections (certificate not verified)")
	fs.DurationVar(&c.hold, "hold", 30*time.Second, "how long to hold the connections open once all are open")
	fs.IntVar(&c.parallel, "parallel", 64, "connections being opened at once")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "bound on opening all connections")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.n < 1 || c.parallel < 1 || c.hold < 0 || c.timeout <= 0 {
		fmt.Fprintln(os.Stderr, "connhold: -n and -parallel must be at least 1, -hold not negative, -timeout positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	conns, err := open(ctx, c)
	defer closeAll(conns)
	if err != nil {
		fmt.Fprintf(os.Stderr, "connhold: %d of %d connections open: %v\n", len(conns), c.n, err)
		return 1
	}
	fmt.Printf("open %d\n", len(conns))
	select {
	case <-ctx.Done():
	case <-time.After(c.hold):
	}
	return 0
}

// open opens c.n connections, c.parallel at a time, and returns those that
// opened; the error is the first failure, or the context's.
func open(ctx context.Context, c config) ([]net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var (
		mu       sync.Mutex
		conns    = make([]net.Conn, 0, c.n)
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	d := &net.Dialer{}
	tlsCfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a test client of a throwaway certificate
	for range min(c.parallel, c.n) {
		wg.Go(func() {
			for next.Add(1) <= int64(c.n) && ctx.Err() == nil {
				conn, err := dial(ctx, d, c, tlsCfg)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel()
					}
				} else {
					conns = append(conns, conn)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr == nil && len(conns) < c.n {
		firstErr = ctx.Err()
	}
	if firstErr == nil && len(conns) < c.n {
		firstErr = errors.New("stopped early")
	}
	return conns, firstErr
}

// dial opens one connection; TLS completes its handshake.
func dial(ctx context.Context, d *net.Dialer, c config, tlsCfg *tls.Config) (net.Conn, error) {
	conn, err := d.DialContext(ctx, "tcp", c.target)
	if err != nil || !c.useTLS {
		return conn, err
	}
	tc := tls.Client(conn, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
