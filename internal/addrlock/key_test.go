package addrlock

import (
	"errors"
	"net/netip"
	"testing"
)

func mustKey(t *testing.T, transport, addr string) Key {
	t.Helper()
	k, err := NewKey(transport, netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKey(t *testing.T) {
	tests := []struct {
		transport, addr string
		want            string
	}{
		{transport: "udp", addr: "127.0.0.1:5060", want: "udp/127.0.0.1:5060"},
		{transport: "UDP", addr: "[::ffff:127.0.0.1]:5060", want: "udp/127.0.0.1:5060"},
		{transport: "tcp", addr: "[::1]:5061", want: "tcp/[::1]:5061"},
		{transport: "tls", addr: "127.0.0.1:5061", want: "tcp/127.0.0.1:5061"},
		{transport: "udp", addr: "0.0.0.0:5060", want: "udp/*:5060"},
		{transport: "udp", addr: "[::]:5060", want: "udp/*:5060"},
	}
	for _, tc := range tests {
		k := mustKey(t, tc.transport, tc.addr)
		if got := k.String(); got != tc.want {
			t.Errorf("NewKey(%s, %s) = %s, want %s", tc.transport, tc.addr, got, tc.want)
		}
		back, ok := parseName(k.name())
		if !ok || back != k {
			t.Errorf("parseName(%q) = %v, %v; want %v", k.name(), back, ok, k)
		}
	}
	if _, err := NewKey("sctp", netip.MustParseAddrPort("127.0.0.1:1")); !errors.Is(err, ErrTransport) {
		t.Errorf("NewKey(sctp) = %v, want ErrTransport", err)
	}
	for _, bad := range []string{"", "siplb/", "siplb/udp", "siplb/sctp/127.0.0.1:1", "siplb/udp/*:x", "siplb/udp/0.0.0.0:1", "other/udp/127.0.0.1:1"} {
		if k, ok := parseName(bad); ok {
			t.Errorf("parseName(%q) = %v, want not a lock", bad, k)
		}
	}
}

func TestConflicts(t *testing.T) {
	tests := []struct {
		name string
		a, b [2]string // transport, address
		want bool
	}{
		{name: "same", a: [2]string{"udp", "127.0.0.1:5060"}, b: [2]string{"udp", "127.0.0.1:5060"}, want: true},
		{name: "wildcard and specific", a: [2]string{"udp", "0.0.0.0:5060"}, b: [2]string{"udp", "127.0.0.1:5060"}, want: true},
		{name: "v6 wildcard and v4 specific", a: [2]string{"udp", "[::]:5060"}, b: [2]string{"udp", "10.0.0.1:5060"}, want: true},
		{name: "tcp and tls", a: [2]string{"tcp", "127.0.0.1:5061"}, b: [2]string{"tls", "127.0.0.1:5061"}, want: true},
		{name: "udp and tcp", a: [2]string{"udp", "127.0.0.1:5060"}, b: [2]string{"tcp", "127.0.0.1:5060"}, want: false},
		{name: "other port", a: [2]string{"udp", "0.0.0.0:5060"}, b: [2]string{"udp", "127.0.0.1:5062"}, want: false},
		{name: "other IP", a: [2]string{"udp", "127.0.0.1:5060"}, b: [2]string{"udp", "127.0.0.2:5060"}, want: false},
	}
	for _, tc := range tests {
		a, b := mustKey(t, tc.a[0], tc.a[1]), mustKey(t, tc.b[0], tc.b[1])
		if got := a.Conflicts(b); got != tc.want || b.Conflicts(a) != got {
			t.Errorf("%s: %s.Conflicts(%s) = %v, want %v both ways", tc.name, a, b, got, tc.want)
		}
	}
}

func TestHeldErrorText(t *testing.T) {
	k := mustKey(t, "udp", "127.0.0.1:5060")
	w := mustKey(t, "udp", "0.0.0.0:5060")
	tests := []struct {
		err  HeldError
		want string
	}{
		{err: HeldError{Key: k, Holder: k, PID: 1234}, want: "already served by siplb pid 1234"},
		{err: HeldError{Key: k, Holder: w, PID: 7}, want: "already served by siplb pid 7 listening on udp/*:5060"},
		{err: HeldError{Key: k, Holder: k, UID: -1}, want: "already served by another siplb (pid unknown)"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(&tc.err, ErrHeld) {
			t.Errorf("%v is not ErrHeld", &tc.err)
		}
	}
}
