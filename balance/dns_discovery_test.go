package balance

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestSetMembers(t *testing.T) {
	newBal := func(t *testing.T) *Balancer {
		t.Helper()
		bal, err := New([]PoolConfig{{Name: "a", Backends: members(3)}, {Name: "b", Backends: members(2)}})
		if err != nil {
			t.Fatal(err)
		}
		bal.SetHealth(backendAt(0), false)
		bal.SetHealth(backendAt(2), false)
		if _, err := bal.SetState(backendAt(1), Draining); err != nil {
			t.Fatal(err)
		}
		return bal
	}
	tests := []struct {
		name      string
		pool      string
		members   []BackendConfig
		wantErr   error
		wantState map[netip.AddrPort]State // in pool "a" of the new Table
		wantGone  []netip.AddrPort         // no longer configured anywhere
	}{
		{
			name: "marks of staying members kept, new member up",
			pool: "a", members: []BackendConfig{{Addr: backendAt(0)}, {Addr: backendAt(1)}, {Addr: backendAt(5)}},
			wantState: map[netip.AddrPort]State{backendAt(0): Down, backendAt(1): Draining, backendAt(5): Up},
			wantGone:  []netip.AddrPort{backendAt(2)},
		},
		{
			name: "new member configured down starts down",
			pool: "a", members: []BackendConfig{{Addr: backendAt(1)}, {Addr: backendAt(6), State: Down}},
			wantState: map[netip.AddrPort]State{backendAt(1): Draining, backendAt(6): Down},
		},
		{name: "unknown pool", pool: "zzz", members: members(1), wantErr: ErrUnknownPool},
		{name: "empty", pool: "a", wantErr: ErrNoBackends},
		{name: "duplicate", pool: "a", members: []BackendConfig{{Addr: backendAt(1)}, {Addr: backendAt(1)}}, wantErr: ErrDuplicateBackend},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bal := newBal(t)
			old := bal.Table()
			err := bal.SetMembers(tc.pool, tc.members)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("SetMembers: err = %v, want %v", err, tc.wantErr)
			}
			tab := bal.Table()
			if err != nil {
				if tab != old {
					t.Error("a failed SetMembers published a Table")
				}
				return
			}
			if tab.Generation() != old.Generation()+1 {
				t.Errorf("generation %d -> %d", old.Generation(), tab.Generation())
			}
			p := tab.Pool(0)
			if len(p.Backends()) != len(tc.members) {
				t.Errorf("pool a has %d members, want %d", len(p.Backends()), len(tc.members))
			}
			for _, b := range p.Backends() {
				if want, ok := tc.wantState[b.Addr]; ok && b.State != want {
					t.Errorf("%v: state %v, want %v", b.Addr, b.State, want)
				}
			}
			if n := len(tab.Pool(1).Backends()); n != 2 {
				t.Errorf("pool b has %d members, want 2 (untouched)", n)
			}
			// Pool b still lists backendAt(0) and (1); a member removed from
			// every pool forgets its mark and comes back Up.
			for _, a := range tc.wantGone {
				if err := bal.SetMembers("a", []BackendConfig{{Addr: a}}); err != nil {
					t.Fatal(err)
				}
				if b, _ := bal.Table().Lookup(a); b.State != Up {
					t.Errorf("%v came back %v, want up (its old mark forgotten)", a, b.State)
				}
			}
		})
	}
}

// farmKeys are the Call-IDs used to check that dialogs stay put.
var farmKeys = callIDs(20000)

func srvRecord(ttl, prio, weight int, host string) string {
	return fmt.Sprintf("_sip._udp.farm.example. %d IN SRV %d %d 5060 %s.farm.example.", ttl, prio, weight, host)
}

func hostRecord(ttl int, host string, ip string) string {
	return fmt.Sprintf("%s.farm.example. %d IN A %s", host, ttl, ip)
}

// farmRecords returns SRV and A records for hosts h1..hN (10.1.0.i), all
// with priority 10 and weight 5.
func farmRecords(ttl int, hosts ...int) []string {
	var rrs []string
	for _, h := range hosts {
		name := "h" + fmt.Sprint(h)
		rrs = append(rrs, srvRecord(ttl, 10, 5, name), hostRecord(ttl, name, fmt.Sprintf("10.1.0.%d", h)))
	}
	return rrs
}

func farmAddr(h int) netip.AddrPort { return netip.MustParseAddrPort(fmt.Sprintf("10.1.0.%d:5060", h)) }

func farmBalancer(t *testing.T) *Balancer {
	t.Helper()
	bal, err := New([]PoolConfig{{Name: "farm", Backends: []BackendConfig{{Addr: netip.MustParseAddrPort("10.9.9.9:5060")}}}})
	if err != nil {
		t.Fatal(err)
	}
	return bal
}

func poolAddrs(bal *Balancer) []netip.AddrPort {
	var out []netip.AddrPort
	for _, b := range bal.Table().Pool(0).Backends() {
		out = append(out, b.Addr)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// TestDiscoverySRVChange: a change of the SRV set is applied once the TTL
// has run out, not before; only the keys of a member that left move, and
// only to a member that joined; health marks of staying members are kept.
func TestDiscoverySRVChange(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t, farmRecords(30, 1, 2, 3)...)
	clk := newFakeClock()
	r := testResolver(t, clk, ResolverConfig{}, srv)
	bal := farmBalancer(t)
	d := NewDiscovery(bal, r, []DiscoveryConfig{{Pool: "farm", SRV: "_sip._udp.farm.example."}}, nil)
	if err := d.RefreshNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := poolAddrs(bal), []netip.AddrPort{farmAddr(1), farmAddr(2), farmAddr(3)}; !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	for _, b := range bal.Table().Pool(0).Backends() {
		if b.Priority != 11 || b.Weight != 5 || b.Transport != UDP {
			t.Errorf("%v: priority %d weight %d %v, want 11 5 udp", b.Addr, b.Priority, b.Weight, b.Transport)
		}
	}
	bal.SetHealth(farmAddr(3), false)

	steps := []struct {
		name    string
		hosts   []int
		advance time.Duration
		want    []int
		joined  int // the only member keys may move to (0: none)
		left    int // the only member keys may move from (0: none)
	}{
		{name: "change within TTL not seen", hosts: []int{1, 2, 3, 4}, advance: 10 * time.Second, want: []int{1, 2, 3}},
		{name: "member joins after TTL", hosts: []int{1, 2, 3, 4}, advance: 21 * time.Second, want: []int{1, 2, 3, 4}, joined: 4},
		{name: "unchanged set publishes nothing", hosts: []int{4, 3, 2, 1}, advance: 31 * time.Second, want: []int{1, 2, 3, 4}},
		{name: "member leaves after TTL", hosts: []int{2, 3, 4}, advance: 31 * time.Second, want: []int{2, 3, 4}, left: 1},
	}
	for _, st := range steps {
		srv.remove("_sip._udp.farm.example.", 33) // SRV
		srv.set(t, farmRecords(30, st.hosts...)...)
		clk.Advance(st.advance)
		before := assignment(t, bal.Table().Pool(0), farmKeys)
		gen := bal.Table().Generation()
		if err := d.RefreshNow(t.Context()); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var want []netip.AddrPort
		for _, h := range st.want {
			want = append(want, farmAddr(h))
		}
		if got := poolAddrs(bal); !slices.Equal(got, want) {
			t.Fatalf("%s: members %v, want %v", st.name, got, want)
		}
		if changed := bal.Table().Generation() != gen; changed != (st.joined != 0 || st.left != 0) {
			t.Errorf("%s: table republished = %v", st.name, changed)
		}
		after := assignment(t, bal.Table().Pool(0), farmKeys)
		moved := 0
		for i := range farmKeys {
			if before[i] == after[i] {
				continue
			}
			moved++
			if (st.joined == 0 || after[i] != farmAddr(st.joined)) && (st.left == 0 || before[i] != farmAddr(st.left)) {
				t.Fatalf("%s: key %q moved %v -> %v", st.name, farmKeys[i], before[i], after[i])
			}
		}
		if (st.joined != 0 || st.left != 0) && moved == 0 {
			t.Errorf("%s: no key moved", st.name)
		}
		if b, _ := bal.Table().Lookup(farmAddr(3)); b.State != Down {
			t.Errorf("%s: %v is %v, want its health mark (down) kept", st.name, farmAddr(3), b.State)
		}
	}
}

// TestDiscoveryKeepsMembersOnFailure: a failing or empty source leaves the
// pool as it was; a source that never resolved leaves the configured
// members.
func TestDiscoveryKeepsMembersOnFailure(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t, farmRecords(30, 1, 2)...)
	clk := newFakeClock()
	r := testResolver(t, clk, ResolverConfig{}, srv)
	bal := farmBalancer(t)
	d := NewDiscovery(bal, r, []DiscoveryConfig{
		{Pool: "farm", SRV: "_sip._udp.farm.example."},
		{Pool: "nosuchpool", Host: "h1.farm.example."},
	}, nil)
	if err := d.RefreshNow(t.Context()); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("RefreshNow: err = %v, want ErrUnknownPool", err)
	}
	want := []netip.AddrPort{farmAddr(1), farmAddr(2)}
	srv.remove("_sip._udp.farm.example.", 33)
	clk.Advance(time.Hour)
	if err := d.RefreshNow(t.Context()); !errors.Is(err, ErrNotFound) {
		t.Errorf("records gone: err = %v, want ErrNotFound", err)
	}
	if got := poolAddrs(bal); !slices.Equal(got, want) {
		t.Errorf("records gone: members %v, want %v", got, want)
	}
	srv.failName("_sip._udp.farm.example.")
	clk.Advance(time.Hour)
	if err := d.RefreshNow(t.Context()); !errors.Is(err, ErrServerFailure) {
		t.Errorf("servfail: err = %v, want ErrServerFailure", err)
	}
	if got := poolAddrs(bal); !slices.Equal(got, want) {
		t.Errorf("servfail: members %v, want %v", got, want)
	}

	other := farmBalancer(t)
	d = NewDiscovery(other, r, []DiscoveryConfig{{Pool: "farm", SRV: "_sip._udp.farm.example."}}, nil)
	_ = d.RefreshNow(t.Context())
	if got := poolAddrs(other); !slices.Equal(got, []netip.AddrPort{netip.MustParseAddrPort("10.9.9.9:5060")}) {
		t.Errorf("never resolved: members %v, want the configured one", got)
	}
}

// TestDiscoveryHosts: A/AAAA sources with port, transport and weight; two
// sources of one pool are merged and an address found twice is kept once.
func TestDiscoveryHosts(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t,
		"a.farm.example. 60 IN A 10.1.0.1", "a.farm.example. 60 IN AAAA 2001:db8::1",
		"b.farm.example. 60 IN A 10.1.0.1", "b.farm.example. 60 IN A 10.1.0.2",
		"_sips._tcp.farm.example. 60 IN SRV 0 7 5061 a.farm.example.")
	r := testResolver(t, nil, ResolverConfig{}, srv)
	bal := farmBalancer(t)
	d := NewDiscovery(bal, r, []DiscoveryConfig{
		{Pool: "farm", Host: "a.farm.example", Port: 5070, Transport: TCP, Weight: 3},
		{Pool: "farm", Host: "b.farm.example", Port: 5070, Transport: TCP},
		{Pool: "farm", SRV: "_sips._tcp.farm.example"},
		{Pool: "farm", Host: "10.1.0.9"},
	}, nil)
	if err := d.RefreshNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bal.Table().Pool(0).Backends() {
		got = append(got, fmt.Sprintf("%v w=%d p=%d", b, b.Weight, b.Priority))
	}
	slices.Sort(got)
	want := []string{
		"10.1.0.1:5061/tls w=7 p=1",
		"10.1.0.1:5070/tcp w=3 p=1",
		"10.1.0.2:5070/tcp w=1 p=1",
		"10.1.0.9:5060/udp w=1 p=1",
		"[2001:db8::1]:5061/tls w=7 p=1",
		"[2001:db8::1]:5070/tcp w=3 p=1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("members\n got %q\nwant %q", got, want)
	}
}

// TestDiscoveryRun: Run picks up a change of the SRV set by itself once
// the (short) TTL has run out.
func TestDiscoveryRun(t *testing.T) {
	srv := newTestDNS(t)
	srv.set(t, farmRecords(1, 1, 2)...)
	r := testResolver(t, nil, ResolverConfig{MinTTL: 100 * time.Millisecond}, srv)
	bal := farmBalancer(t)
	d := NewDiscovery(bal, r, []DiscoveryConfig{{Pool: "farm", SRV: "_sip._udp.farm.example."}}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	waitMembers := func(want []netip.AddrPort) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !slices.Equal(poolAddrs(bal), want) {
			if time.Now().After(deadline) {
				t.Fatalf("members %v, want %v", poolAddrs(bal), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitMembers([]netip.AddrPort{farmAddr(1), farmAddr(2)})
	srv.set(t, farmRecords(1, 1, 2, 3)...)
	start := time.Now()
	waitMembers([]netip.AddrPort{farmAddr(1), farmAddr(2), farmAddr(3)})
	if el := time.Since(start); el > 2500*time.Millisecond {
		t.Errorf("change seen after %v, want within about the 1s TTL", el)
	}
}
