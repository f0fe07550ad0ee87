// Command sipload is a SIP load generator over UDP or TCP (see package load).
//
// Usage:
//
//	sipload -target 127.0.0.1:5060 -scenario options|call|register
//	        [-n N] [-duration 30s] [-drain 2s] [-window 100 | -rate R]
//	        [-transport udp|tcp] [-sockets 4] [-timeout 2s] [-progress] [-json FILE] [-q]
//
// Over TCP, -sockets is the number of connections to the target.
//
// It prints the results on stdout and exits 0 when every unit started was
// completed, 1 otherwise, 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/schollz/progressbar/v3"

	"github.com/siplb/siplb/benchmarks/internal/load"
)

func main() {
	os.Exit(run())
}

func run() int {
	var cfg load.Config
	flag.StringVar(&cfg.Target, "target", "127.0.0.1:5060", "host:port to send every request to (the load balancer)")
	scenario := flag.String("scenario", "options", "options, call (INVITE/ACK/BYE) or register")
	flag.IntVar(&cfg.N, "n", 0, "units (transactions or calls) to start; 0: as many as -duration allows")
	flag.DurationVar(&cfg.Duration, "duration", load.DefaultDuration, "stop starting units after this")
	flag.DurationVar(&cfg.Drain, "drain", load.DefaultDrain, "then wait this long for answers")
	flag.IntVar(&cfg.Window, "window", load.DefaultWindow, "closed loop: units outstanding at once")
	flag.Float64Var(&cfg.Rate, "rate", 0, "open loop: units started per second (0: closed loop)")
	flag.IntVar(&cfg.Sockets, "sockets", load.DefaultSockets, "local UDP sockets, or TCP connections (each with a receiving goroutine)")
	transport := flag.String("transport", "udp", "udp or tcp")
	flag.DurationVar(&cfg.Timeout, "timeout", load.DefaultTimeout, "per transaction; then the unit counts as lost")
	progress := flag.Bool("progress", false, "show a progress bar on stderr")
	jsonFile := flag.String("json", "", "also write the results as JSON to this file")
	quiet := flag.Bool("q", false, "print nothing; the exit code and -json tell the result")
	flag.Parse()

	sc, err := load.ParseScenario(*scenario)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sipload:", err)
		return 2
	}
	cfg.Scenario = sc
	if cfg.Transport, err = load.ParseTransport(*transport); err != nil {
		fmt.Fprintln(os.Stderr, "sipload:", err)
		return 2
	}
	var bar *progressbar.ProgressBar
	if *progress && !*quiet {
		bar = newBar(cfg)
		cfg.Progress = func(done, _ uint64) { _ = bar.Set64(int64(done)) }
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sipload:", err)
		return 1
	}
	if bar != nil {
		_ = bar.Set64(int64(res.Completed + res.Failed + res.Lost))
		_ = bar.Finish()
	}
	if *jsonFile != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonFile, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sipload: json:", err)
			return 1
		}
	}
	if !*quiet {
		_ = res.WriteText(os.Stdout)
	}
	if !res.OK() {
		return 1
	}
	return 0
}

// newBar makes a bar over the N units, or a spinner counting them when the
// run is bounded by time only.
func newBar(cfg load.Config) *progressbar.ProgressBar {
	max := int64(cfg.N)
	if max <= 0 {
		max = -1
	}
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("sipload "+cfg.Scenario.String()),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(cfg.Scenario.String()),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
}
