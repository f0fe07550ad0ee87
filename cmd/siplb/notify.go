package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// siplb tells systemd how it is doing through the notification protocol of
// sd_notify(3), written here in its few lines rather than taken from
// go-systemd: one datagram of newline-separated VARIABLE=VALUE lines per
// state, sent to the unix datagram socket named by $NOTIFY_SOCKET (a path,
// or "@name" for an abstract socket). With Type=notify in the unit:
//
//	READY=1                        the listeners serve and the first health round is done (when /readyz turns true)
//	MAINPID=…, READY=1             the same, from the new process of an upgrade: systemd's main process from now on
//	RELOADING=1, MONOTONIC_USEC=…  a reload begins (SIGHUP or the API); READY=1 when it is over, applied or refused
//	STOPPING=1                     a drain (or a stop) begins
//	WATCHDOG=1                     every half of $WATCHDOG_USEC, while siplb runs (WatchdogSec=)
//	STATUS=…                       a line for `systemctl status`

// notifier sends the states. A nil *notifier (no $NOTIFY_SOCKET: not run
// by systemd, or not Type=notify) sends nothing. Safe for concurrent use.
type notifier struct {
	conn  *net.UnixConn
	log   *slog.Logger
	ready atomic.Bool // READY=1 was sent: a reload's end may send it again
	// main: this process took over from a predecessor (an upgrade): its
	// READY=1 also says MAINPID=, so systemd follows it, not the one that
	// drains and exits (NotifyAccess=all in the unit).
	main atomic.Bool

	mu     sync.Mutex
	failed bool // a send failed: logged once
}

// newNotifier connects to $NOTIFY_SOCKET; nil without one.
func newNotifier(log *slog.Logger) (*notifier, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil, nil
	}
	if name[0] != '/' && name[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: want a path or @name of an abstract socket", name)
	}
	// Go writes a leading '@' as the NUL of an abstract address.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	return &notifier{conn: c, log: log}, nil
}

// send sends one state: lines of VARIABLE=VALUE.
func (n *notifier) send(lines ...string) {
	if n == nil {
		return
	}
	_, err := n.conn.Write([]byte(strings.Join(lines, "\n") + "\n"))
	if err == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.failed {
		n.failed = true
		n.log.Warn("systemd notification failed; later failures are not logged", "err", err)
	}
}

// Ready says siplb serves.
func (n *notifier) Ready(status string) {
	if n == nil {
		return
	}
	n.ready.Store(true)
	if n.main.Load() {
		n.send("MAINPID="+strconv.Itoa(os.Getpid()), "READY=1", "STATUS="+status)
		return
	}
	n.send("READY=1", "STATUS="+status)
}

// Reloading says a reload begins; its end is ReloadDone.
func (n *notifier) Reloading() {
	if n == nil {
		return
	}
	n.send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10), "STATUS=reloading the configuration")
}

// ReloadDone says a reload is over: READY=1 again, once siplb had said it
// was ready (a reload during the start does not make it ready).
func (n *notifier) ReloadDone(err error) {
	if n == nil {
		return
	}
	status := "serving; configuration reloaded"
	if err != nil {
		status = "serving; reload refused: " + firstLineOf(err.Error())
	}
	if n.ready.Load() {
		n.send("READY=1", "STATUS="+status)
	} else {
		n.send("STATUS=" + status)
	}
}

// Stopping says siplb stops.
func (n *notifier) Stopping(status string) {
	n.send("STOPPING=1", "STATUS="+status)
}

// Close closes the socket.
func (n *notifier) Close() {
	if n != nil {
		n.conn.Close()
	}
}

// watchdog sends WATCHDOG=1 every interval until ctx ends.
func (n *notifier) watchdog(ctx context.Context, every time.Duration) {
	if n == nil || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	n.send("WATCHDOG=1")
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.send("WATCHDOG=1")
		}
	}
}

// watchdogEvery is half of $WATCHDOG_USEC (sd_watchdog_enabled(3)), or 0
// when systemd expects no keep-alive from this process: the variable unset,
// or $WATCHDOG_PID naming another process.
func watchdogEvery() (time.Duration, error) {
	v := os.Getenv("WATCHDOG_USEC")
	if v == "" {
		return 0, nil
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	us, err := strconv.ParseUint(v, 10, 63)
	if err != nil || us == 0 {
		return 0, errors.New("WATCHDOG_USEC=" + strconv.Quote(v) + ": want a positive number of microseconds")
	}
	return time.Duration(us) * time.Microsecond / 2, nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants
// it beside (systemd checks that the reload it waits for is this one).
func monotonicUsec() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Sec*1_000_000 + ts.Nsec/1000
}

// firstLineOf is s up to its first newline.
func firstLineOf(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
