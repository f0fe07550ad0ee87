package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

// listenAdmin opens the admin listener: through the upgrader when there is
// one (a successor takes the predecessor's socket over), else plainly.
func (c *control) listenAdmin(network, addr string) (net.Listener, error) {
	if c.listen != nil {
		return c.listen(network, addr)
	}
	return net.Listen(network, addr)
}

// upgradeResult answers a successful POST /api/v1/upgrade.
type upgradeResult struct {
	Upgraded bool `json:"upgraded"`
	// OldPID is the process that answered: it now drains and exits; the
	// new one serves the same sockets.
	OldPID int `json:"old_pid"`
}

// upgrade answers POST /api/v1/upgrade: it starts a new process and waits
// until it is ready (200) or has failed (500: this process serves on), or
// 409 when an upgrade is under way already or this process has handed over.
func (a *adminServer) upgrade(w http.ResponseWriter, _ *http.Request) {
	if a.ctl.upgradeFn == nil {
		writeError(w, http.StatusNotImplemented, "this siplb cannot upgrade (started in a test, or tableflip is not supported here)")
		return
	}
	if err := a.ctl.upgradeFn(); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, errUpgradeBusy) || errors.Is(err, errHandedOver) {
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, upgradeResult{Upgraded: true, OldPID: os.Getpid()})
}

// errHandedOver refuses an upgrade of a process that has handed over
// already (it drains) or stops.
var errHandedOver = errors.New("this process is stopping or has handed over to a new one")

const upgradeUsageText = `usage: siplb upgrade [--admin IP:PORT] [--token T | --token-file F] [--timeout D]
       siplb upgrade --pid-file F [--timeout D]
       siplb upgrade --pid PID

Starts a new siplb process (the binary now at the running one's path, with
its arguments), hands it the listening sockets and the backends' state, and
once it is ready lets the old one drain and exit. Through the admin API it
waits for the outcome: exit 0 when the new process serves, 1 when it failed
(the old one serves on). With --pid-file it sends SIGUSR2 to the pid in the
file and waits until the file names the new process; with --pid it only
sends SIGUSR2 (the outcome is in siplb's log).
`

// runUpgrade is `siplb upgrade ARGS`.
func runUpgrade(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("siplb upgrade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, upgradeUsageText) }
	var (
		admin     = fs.String("admin", defaultCtlAdmin, "admin listener `IP:PORT` (or http://...)")
		token     = fs.String("token", "", "bearer `token` of the admin API (default $SIPLB_ADMIN_TOKEN)")
		tokenFile = fs.String("token-file", "", "`file` whose first line is the token")
		pidFile   = fs.String("pid-file", "", "signal the siplb whose pid this `file` holds (its --pid-file)")
		pid       = fs.Int("pid", 0, "signal this `pid` and do not wait")
		timeout   = fs.Duration("timeout", 2*time.Minute, "how long to wait for the outcome")
	)
	if err := fs.Parse(args); err != nil {
		return ctlUsage
	}
	if fs.NArg() != 0 || (*pidFile != "" && *pid != 0) {
		fs.Usage()
		return ctlUsage
	}
	switch {
	case *pid != 0:
		if err := syscall.Kill(*pid, syscall.SIGUSR2); err != nil {
			fmt.Fprintf(stderr, "siplb upgrade: pid %d: %v\n", *pid, err)
			return ctlUnreachable
		}
		fmt.Fprintf(stdout, "sent SIGUSR2 to pid %d: the outcome is in its log\n", *pid)
		return ctlOK
	case *pidFile != "":
		return upgradeByPIDFile(*pidFile, *timeout, stdout, stderr)
	}
	c, code := newCtlClient("siplb upgrade", *admin, *token, *tokenFile, *timeout, stdout, stderr)
	if c == nil {
		return code
	}
	var res upgradeResult
	_, apiErr, err := c.call(http.MethodPost, "/api/v1/upgrade", &res)
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "siplb upgrade:", err)
		return ctlUnreachable
	case apiErr != nil:
		fmt.Fprintln(stderr, "siplb upgrade:", apiErr.Error)
		return ctlRefused
	}
	fmt.Fprintf(stdout, "upgraded: a new process serves; pid %d drains and exits\n", res.OldPID)
	return ctlOK
}

// upgradeByPIDFile sends SIGUSR2 to the pid in path and waits up to
// timeout for path to name another process (the new one writes it once
// ready).
func upgradeByPIDFile(path string, timeout time.Duration, stdout, stderr io.Writer) int {
	old, err := readPIDFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "siplb upgrade:", err)
		return ctlUnreachable
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		fmt.Fprintf(stderr, "siplb upgrade: pid %d (from %s): %v\n", old, path, err)
		return ctlUnreachable
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if p, err := readPIDFile(path); err == nil && p != old {
			fmt.Fprintf(stdout, "upgraded: pid %d serves; pid %d drains and exits\n", p, old)
			return ctlOK
		}
	}
	fmt.Fprintf(stderr, "siplb upgrade: %s still names pid %d after %v: no new process became ready (pid %d serves on; see its log)\n", path, old, timeout, old)
	return ctlRefused
}

// readPIDFile reads a pid file: a decimal pid, optionally ending in a newline.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("%s: not a pid: %q", path, b)
	}
	return p, nil
}
