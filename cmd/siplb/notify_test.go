package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeSystemd is the receiving end of $NOTIFY_SOCKET: a unixgram socket
// whose datagrams the test reads in order.
type fakeSystemd struct {
	conn *net.UnixConn
	msgs chan string
}

func listenNotify(t *testing.T, name string) *fakeSystemd {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSystemd{conn: c, msgs: make(chan string, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			f.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	t.Setenv("NOTIFY_SOCKET", name)
	return f
}

// next returns the next datagram that is not a watchdog keep-alive (those
// are counted in *watchdogs), or fails after limit.
func (f *fakeSystemd) next(t *testing.T, limit time.Duration, watchdogs *int) string {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case m := <-f.msgs:
			if m == "WATCHDOG=1\n" {
				*watchdogs++
				continue
			}
			return m
		case <-deadline:
			t.Fatalf("no notification within %v", limit)
			return ""
		}
	}
}

// Under systemd (Type=notify): READY=1 once /readyz is ready, RELOADING=1
// with MONOTONIC_USEC then READY=1 around a reload, STOPPING=1 when the
// drain begins, and WATCHDOG=1 at half of WATCHDOG_USEC throughout.
func TestSystemdNotify(t *testing.T) {
	sd := listenNotify(t, filepath.Join(t.TempDir(), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "200000") // 200 ms: a keep-alive every 100 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	be := startBackend(t, "A")
	admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	path := filepath.Join(t.TempDir(), "siplb.yaml")
	writeFileAtomic(t, path, fmt.Appendf(nil, "listen:\n  - address: udp://127.0.0.1:%d\npools:\n  - name: farm\n    health: {interval: 300ms, timeout: 200ms}\n    backends:\n      - address: %s\nadmin:\n  listen: %s\nshutdown:\n  drain_timeout: 5s\n  idle: 100ms\n",
		freeUDPPort(t), be.url(), admin))
	cfg, doc, err := loadConfigDoc(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	n, err := newNotifier(log)
	if err != nil || n == nil {
		t.Fatalf("newNotifier: %v %v", n, err)
	}
	defer n.Close()
	drain := make(chan struct{})
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		errc <- serveWith(context.Background(), cfg, serveOptions{configPath: path, source: path, doc: doc, log: log, drain: drain, notify: n})
	}()
	watchdogs := 0
	if m := sd.next(t, 10*time.Second, &watchdogs); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	if ok, why := readyz(t, admin); !ok {
		t.Errorf("READY=1 sent while /readyz says %q", why)
	}
	if code, body := postReload(t, admin); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	m := sd.next(t, 5*time.Second, &watchdogs)
	if !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("at a reload: %q, want RELOADING=1 and MONOTONIC_USEC", m)
	}
	usec, err := strconv.ParseInt(strings.SplitN(strings.SplitN(m, "MONOTONIC_USEC=", 2)[1], "\n", 2)[0], 10, 64)
	if err != nil || usec <= 0 {
		t.Errorf("MONOTONIC_USEC in %q: %v", m, err)
	}
	if m := sd.next(t, 5*time.Second, &watchdogs); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("after the reload: %q, want READY=1", m)
	}
	close(drain)
	if m := sd.next(t, 5*time.Second, &watchdogs); !strings.HasPrefix(m, "STOPPING=1\n") {
		t.Fatalf("at the drain: %q, want STOPPING=1", m)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("serve after the drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not end after the drain")
	}
	if want := int(time.Since(start)/(100*time.Millisecond)) / 3; watchdogs < want || watchdogs == 0 {
		t.Errorf("%d WATCHDOG=1 in %v, want at least %d", watchdogs, time.Since(start), want)
	}
}

// readyz reports what /readyz answers.
func readyz(t *testing.T, admin string) (bool, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b [256]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode == 200, strings.TrimSpace(string(b[:n]))
}

// An abstract $NOTIFY_SOCKET ("@name") works as a path does; a value that
// is neither is an error, and no variable means no notifier.
func TestNotifierSockets(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	sd := listenNotify(t, fmt.Sprintf("@siplb-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	n, err := newNotifier(log)
	if err != nil || n == nil {
		t.Fatalf("abstract socket: %v", err)
	}
	defer n.Close()
	n.Stopping("bye")
	watchdogs := 0
	if m := sd.next(t, 2*time.Second, &watchdogs); m != "STOPPING=1\nSTATUS=bye\n" {
		t.Errorf("got %q", m)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if _, err := newNotifier(log); err == nil {
		t.Error("a relative NOTIFY_SOCKET was taken")
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if n, err := newNotifier(log); n != nil || err != nil {
		t.Errorf("no NOTIFY_SOCKET: %v %v, want neither", n, err)
	}
	var none *notifier
	none.Ready("x") // a nil notifier sends nothing and does not panic
	none.Reloading()
	none.ReloadDone(nil)
	none.Stopping("x")
	none.Close()
}

func TestWatchdogEvery(t *testing.T) {
	tests := []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{usec: "", want: 0},
		{usec: "30000000", want: 15 * time.Second},
		{usec: "30000000", pid: strconv.Itoa(os.Getpid()), want: 15 * time.Second},
		{usec: "30000000", pid: "1", want: 0}, // meant for another process
		{usec: "x", err: true},
		{usec: "0", err: true},
	}
	for _, tc := range tests {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, err := watchdogEvery()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v %v, want %v (error %v)", tc.usec, tc.pid, got, err, tc.want, tc.err)
		}
	}
}
