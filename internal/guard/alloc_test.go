//go:build !race

package guard

import (
	"runtime"
	"testing"
	"time"
)

// The calls the engine makes per message allocate nothing, and spoofed
// random sources do not grow the heap.
func TestZeroAllocs(t *testing.T) {
	g := newGuard(t, Config{Trusted: []string{"10.0.0.0/8", "2001:db8::/32"}})
	blockedG := newGuard(t, Config{Flood: FloodConfig{Density: 1}})
	set := mustSet(t, prefixes1000(false)...)
	acl, err := NewACL("", ACLConfig{Allow: prefixes1000(true), Deny: []string{"2001:db8:2::/48"}})
	if err != nil {
		t.Fatal(err)
	}
	pass, trusted, v6src, blocked := addr("192.0.2.1"), addr("10.1.1.1"), addr("2001:db8:3e6::1"), addr("198.51.100.1")
	ua, scanUA := []byte("Linphone/5.2.0 (belle-sip/5.2.0)"), []byte("friendly-scanner")
	now, n := t0, uint32(0)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Check pass", func() { now += int64(time.Millisecond); g.Check(pass, now) }},
		{"Check trusted", func() { g.Check(trusted, now) }},
		{"Check blocked", func() { blockedG.Check(blocked, now) }},
		{"Check spoofed", func() { n += 0x9e3779b9; g.Check(v4(n), now) }},
		{"Check IPv6", func() { g.Check(v6src, now) }},
		{"Scanner", func() { g.Scanner(ua); g.Scanner(scanUA) }},
		{"AllowReply", func() { g.AllowReply(pass, now); g.AllowReply(v4(n), now) }},
		{"CIDRSet.Contains", func() { set.Contains(pass); set.Contains(v6src) }},
		{"ACL.Permit", func() { acl.Permit(v6src); acl.Permit(pass) }},
		{"Stats", func() { g.Stats() }},
	} {
		if a := testing.AllocsPerRun(1000, tc.f); a != 0 {
			t.Errorf("%s: %v allocations, want 0", tc.name, a)
		}
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range uint32(1_000_000) {
		g.Check(v4(i*0x9e3779b9), now+int64(i)*1000)
		g.AllowReply(v4(i*0x9e3779b9), now+int64(i)*1000)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<10 {
		t.Errorf("a million spoofed sources grew the heap by %d bytes", grown)
	}
}
