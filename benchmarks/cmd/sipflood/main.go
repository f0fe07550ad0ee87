// Command sipflood floods a SIP server over UDP from several loopback
// source addresses at once, to measure a load balancer's edge defences: how
// much of a flood gets through to the backends, and what the legitimate
// traffic beside it still gets.
//
// Usage:
//
//	sipflood -target 127.0.0.1:5060 [-sources 8] [-src 127.0.0.2]
//	         [-mix invite,register,garbage,scanner | -mix invite=3,garbage=1]
//	         [-duration 10s] [-max N] [-rate R] [-batch 32]
//	         [-replies=false] [-drain 300ms] [-seed S] [-json FILE] [-q]
//
// Each source is a UDP socket bound to its own address (-src, then the next
// ones: 127.0.0.2 … 127.0.0.9 by default), connected to the target, sending
// as fast as it can in sendmmsg(2) batches until -duration ends or the
// sources together have sent -max messages; -rate paces them instead (a
// total over all sources). Only loopback is allowed: a target or a source
// outside 127.0.0.0/8 and ::1 is refused.
//
// The kinds of message, drawn per message in proportion to -mix:
//
//	invite    INVITE to a random number, with SDP, a new Call-ID, branch and tag each
//	register  REGISTER enumeration: a random six-digit user in From, To and Contact
//	garbage   random bytes (32-1023), or a marked INVITE cut short
//	scanner   OPTIONS as sipvicious' svmap sends it, its User-Agent one of
//	          friendly-scanner, sipvicious, sipcli/v1.8, VaxSIPUserAgent/3.1, pplsip
//
// invite and register carry no User-Agent, so only a flood detector stops
// them; scanner is what a User-Agent filter should stop. Every message is
// marked so a backend can count what got through: its Call-ID starts with
// "flood-" (the garbage holds "flood-" near its start); sipecho counts them
// as "flood".
//
// With -replies (the default) each source also counts what comes back, by
// status class, until -drain after the last send. It prints what it sent per
// kind and source on stdout (unless -q), and as JSON to -json FILE. It exits
// 0 after a flood, 1 when it could not start one, 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sipflood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	target := fs.String("target", "127.0.0.1:5060", "IP:PORT to flood (loopback only)")
	src := fs.String("src", "127.0.0.2", "first source address; the others follow it (loopback only)")
	fs.IntVar(&c.sources, "sources", defaultSources, "source addresses, one socket each")
	mixS := fs.String("mix", defaultMix, "kinds of message, weighted: invite,register,garbage,scanner or invite=3,garbage=1")
	fs.DurationVar(&c.duration, "duration", defaultDuration, "stop sending after this")
	fs.Uint64Var(&c.max, "max", 0, "stop after this many messages over all sources (0: only -duration bounds it)")
	fs.Float64Var(&c.rate, "rate", 0, "messages per second over all sources (0: as fast as possible)")
	fs.IntVar(&c.batch, "batch", defaultBatch, "messages per sendmmsg")
	fs.BoolVar(&c.replies, "replies", true, "count the datagrams that come back")
	fs.DurationVar(&c.drain, "drain", defaultDrain, "after the last send, count replies this long")
	fs.Uint64Var(&c.seed, "seed", 0, "seed of the random fields (0: from the clock)")
	jsonFile := fs.String("json", "", "also write the results as JSON to this file")
	quiet := fs.Bool("q", false, "print nothing on stdout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if c.target, err = netip.ParseAddrPort(*target); err != nil {
		fmt.Fprintf(stderr, "sipflood: -target %q: want IP:PORT\n", *target)
		return 2
	}
	if c.src, err = netip.ParseAddr(*src); err != nil {
		fmt.Fprintf(stderr, "sipflood: -src %q: want an IP address\n", *src)
		return 2
	}
	if c.mix, err = parseMix(*mixS); err != nil {
		fmt.Fprintln(stderr, "sipflood:", err)
		return 2
	}
	if _, err := c.check(); err != nil {
		fmt.Fprintln(stderr, "sipflood:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := flood(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "sipflood:", err)
		return 1
	}
	if *jsonFile != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonFile, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "sipflood: json:", err)
			return 1
		}
	}
	if !*quiet {
		writeText(stdout, res)
	}
	return 0
}

// writeText prints one row per source and a total: sent per kind, refused
// sends, replies.
func writeText(w io.Writer, res *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "source\t")
	for _, k := range kindNames {
		fmt.Fprintf(tw, "%s\t", k)
	}
	fmt.Fprint(tw, "sent\terrors\treplies\t\n")
	row := func(name string, c *Counts) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, k := range kindNames {
			fmt.Fprintf(tw, "%d\t", c.SentByKind[k])
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t\n", c.Sent, c.SendErrors, c.Replies)
	}
	for i := range res.Sources {
		row(res.Sources[i].Addr, &res.Sources[i].Counts)
	}
	row("total", &res.Counts)
	tw.Flush()
	fmt.Fprintf(w, "%d messages to %s in %.2fs: %.0f/s", res.Sent, res.Target, res.Elapsed.Seconds(), res.PerSec)
	if len(res.RepliesByClass) > 0 {
		fmt.Fprint(w, "; replies")
		for _, k := range []string{"1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "other"} {
			if n := res.RepliesByClass[k]; n > 0 {
				fmt.Fprintf(w, " %s %d", k, n)
			}
		}
	}
	fmt.Fprintln(w)
}
