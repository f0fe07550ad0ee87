//go:build linux

package addrlock

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// portKey returns a key of a loopback port the test keeps bound (without
// SO_REUSEPORT), so no siplb of another test on this machine can use it
// and its lock names are the test's own.
func portKey(t *testing.T, transport string) Key {
	t.Helper()
	var ap netip.AddrPort
	if transport == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ap = c.LocalAddr().(*net.UDPAddr).AddrPort()
	} else {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		ap = l.Addr().(*net.TCPAddr).AddrPort()
	}
	k, err := NewKey(transport, ap)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func with(k Key, ip string) Key {
	a := netip.MustParseAddr(ip)
	if a.IsUnspecified() {
		a = netip.IPv4Unspecified()
	}
	return Key{Net: k.Net, Addr: netip.AddrPortFrom(a, k.Addr.Port())}
}

func newSet(t *testing.T) *Set {
	s := &Set{}
	t.Cleanup(func() { s.Release() })
	return s
}

// wantHeld checks that err reports holder as held by this process.
func wantHeld(t *testing.T, err error, k, holder Key) {
	t.Helper()
	he, ok := errors.AsType[*HeldError](err)
	if !ok {
		t.Fatalf("Acquire(%s) = %v, want a *HeldError", k, err)
	}
	if he.Key != k || he.Holder != holder || he.PID != os.Getpid() || he.UID != os.Geteuid() || he.Foreign {
		t.Errorf("Acquire(%s) = %+v, want key %s held as %s by pid %d", k, he, k, holder, os.Getpid())
	}
	if want := fmt.Sprintf("already served by siplb pid %d", os.Getpid()); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Acquire(%s): %q does not start with %q", k, err, want)
	}
	if !errors.Is(err, ErrHeld) {
		t.Errorf("Acquire(%s): %v is not ErrHeld", k, err)
	}
}

func TestSameKeyTwice(t *testing.T) {
	k := portKey(t, "udp")
	a, b := newSet(t), newSet(t)
	if err := a.Acquire(k); err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(k); err != nil {
		t.Errorf("Acquire of a key the set holds: %v", err)
	}
	wantHeld(t, b.Acquire(k), k, k)
	// Asking again does not wear the holder out (its backlog is drained).
	for range 100 {
		if err := b.Acquire(k); !errors.Is(err, ErrHeld) {
			t.Fatalf("Acquire again = %v", err)
		}
	}
	wantHeld(t, b.Acquire(k), k, k)
}

func TestDifferentKeysCoexist(t *testing.T) {
	u := portKey(t, "udp")
	u2 := portKey(t, "udp")
	tc := with(u, "127.0.0.1")
	tc.Net = "tcp" // same port number, TCP's space
	a, b := newSet(t), newSet(t)
	if err := a.Acquire(u); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{u2, tc, with(u, "127.0.0.2"), with(u, "::1")} {
		if err := b.Acquire(k); err != nil {
			t.Errorf("Acquire(%s) with %s held elsewhere: %v", k, u, err)
		}
	}
	if got := len(b.Keys()); got != 4 {
		t.Errorf("b holds %d keys, want 4: %v", got, b.Keys())
	}
}

func TestWildcardAndSpecificConflict(t *testing.T) {
	base := portKey(t, "udp")
	tests := []struct {
		name       string
		held, want Key
	}{
		{name: "wildcard held, specific asked", held: with(base, "0.0.0.0"), want: with(base, "127.0.0.1")},
		{name: "v6 wildcard held, v4 specific asked", held: with(base, "::"), want: with(base, "127.0.0.1")},
		{name: "specific held, wildcard asked", held: with(base, "127.0.0.1"), want: with(base, "0.0.0.0")},
		{name: "v6 specific held, wildcard asked", held: with(base, "::1"), want: with(base, "::")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newSet(t), newSet(t)
			if err := a.Acquire(tc.held); err != nil {
				t.Fatal(err)
			}
			wantHeld(t, b.Acquire(tc.want), tc.want, tc.held)
			if len(b.Keys()) != 0 {
				t.Errorf("a refused Acquire left %v held", b.Keys())
			}
			// The refused one took its own name meanwhile; it gave it back.
			a.Release()
			if err := b.Acquire(tc.want); err != nil {
				t.Errorf("Acquire(%s) after the holder released: %v", tc.want, err)
			}
		})
	}
}

func TestOneSetNeverConflictsWithItself(t *testing.T) {
	base := portKey(t, "udp")
	s := newSet(t)
	for _, k := range []Key{with(base, "127.0.0.1"), with(base, "0.0.0.0"), with(base, "::1"), with(base, "127.0.0.1")} {
		if err := s.Acquire(k); err != nil {
			t.Errorf("Acquire(%s) in a set holding %v: %v", k, s.Keys(), err)
		}
	}
	if got := len(s.Keys()); got != 3 {
		t.Errorf("set holds %v, want 3 keys", s.Keys())
	}
}

func TestReleaseThenRetake(t *testing.T) {
	k := portKey(t, "tcp")
	a, b := newSet(t), newSet(t)
	for round := range 3 {
		if err := a.Acquire(k); err != nil {
			t.Fatalf("round %d: Acquire: %v", round, err)
		}
		wantHeld(t, b.Acquire(k), k, k)
		if err := a.Release(); err != nil {
			t.Fatalf("round %d: Release: %v", round, err)
		}
		if len(a.Keys()) != 0 {
			t.Fatalf("round %d: released set holds %v", round, a.Keys())
		}
	}
	if err := b.Acquire(k); err != nil {
		t.Errorf("Acquire after Release: %v", err)
	}
}

// A successor adopts the predecessor's descriptors; the lock stays held
// while either has it, and is free once both let go.
func TestAdoptHandsOver(t *testing.T) {
	k1, k2 := portKey(t, "udp"), portKey(t, "tcp")
	old, next, other := newSet(t), newSet(t), newSet(t)
	for _, k := range []Key{k1, k2} {
		if err := old.Acquire(k); err != nil {
			t.Fatal(err)
		}
	}
	files, err := old.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("Files = %d, want 2", len(files))
	}
	for _, f := range files {
		k, err := next.Adopt(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if k != k1 && k != k2 {
			t.Errorf("Adopt = %s, want %s or %s", k, k1, k2)
		}
	}
	if err := old.Release(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{k1, k2} {
		wantHeld(t, other.Acquire(k), k, k)
	}
	next.Release()
	for _, k := range []Key{k1, k2} {
		if err := other.Acquire(k); err != nil {
			t.Errorf("Acquire(%s) after both released: %v", k, err)
		}
	}
}

func TestAdoptRejectsOtherSockets(t *testing.T) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@siplb-test-not-a-lock-" + fmt.Sprint(os.Getpid()), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := newSet(t).Adopt(f); err == nil {
		t.Error("Adopt of a socket that is not a lock succeeded")
	}
}

// answered reports whether the holder of k accepts (and at once closes) a
// connection within limit: the read ends in EOF rather than a timeout.
func answered(t *testing.T, k Key, limit time.Duration) bool {
	t.Helper()
	c, err := net.DialTimeout("unix", "@"+k.name(), time.Second)
	if err != nil {
		t.Fatalf("dial the lock of %s: %v", k, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(limit))
	var b [1]byte
	_, err = c.Read(b[:])
	return errors.Is(err, io.EOF)
}

// After Files the predecessor stops answering (the successor is to);
// when no successor took over, Resume makes it answer again, and the lock
// stayed held throughout.
func TestResumeAfterFailedHandOver(t *testing.T) {
	k := portKey(t, "udp")
	old, other := newSet(t), newSet(t)
	if err := old.Acquire(k); err != nil {
		t.Fatal(err)
	}
	if !answered(t, k, 2*time.Second) {
		t.Fatal("a held lock does not answer")
	}
	files, err := old.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close() // the successor died before adopting
	}
	if answered(t, k, 200*time.Millisecond) {
		t.Fatal("the lock still answers after Files")
	}
	wantHeld(t, other.Acquire(k), k, k)
	if err := old.Resume(); err != nil {
		t.Fatal(err)
	}
	if !answered(t, k, 2*time.Second) {
		t.Error("the lock does not answer after Resume")
	}
	wantHeld(t, other.Acquire(k), k, k)
	if err := old.Release(); err != nil {
		t.Fatal(err)
	}
	if err := other.Acquire(k); err != nil {
		t.Errorf("Acquire after Release: %v", err)
	}
}
