package balance

import (
	"errors"
	"net/netip"
	"testing"
)

func TestNewValidation(t *testing.T) {
	good := members(2)
	tests := []struct {
		name  string
		pools []PoolConfig
		err   error
	}{
		{name: "no pools", pools: nil, err: ErrNoPools},
		{name: "empty name", pools: []PoolConfig{{Backends: good}}, err: ErrPoolName},
		{name: "duplicate name", pools: []PoolConfig{{Name: "a", Backends: good}, {Name: "a", Backends: good}}, err: ErrDuplicatePool},
		{name: "no backends", pools: []PoolConfig{{Name: "a"}}, err: ErrNoBackends},
		{name: "bad algorithm", pools: []PoolConfig{{Name: "a", Algorithm: numAlgorithms, Backends: good}}, err: ErrUnknownAlgorithm},
		{name: "zero addr", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{}}}}, err: ErrInvalidAddr},
		{name: "port 0", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: netip.MustParseAddrPort("10.0.0.1:0")}}}}, err: ErrInvalidAddr},
		{name: "unspecified", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: netip.MustParseAddrPort("0.0.0.0:5060")}}}}, err: ErrInvalidAddr},
		{name: "duplicate member", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: backendAt(0)}, {Addr: backendAt(0), Transport: TCP}}}}, err: ErrDuplicateBackend},
		{name: "duplicate member mapped", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: backendAt(0)}, {Addr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:5060")}}}}, err: ErrDuplicateBackend},
		{name: "negative weight", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: backendAt(0), Weight: -1}}}}, err: ErrWeight},
		{name: "huge weight", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: backendAt(0), Weight: MaxWeight + 1}}}}, err: ErrWeight},
		{name: "negative priority", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: backendAt(0), Priority: -1}}}}, err: ErrPriority},
		{name: "bad transport", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: backendAt(0), Transport: 9}}}}, err: ErrUnknownTransport},
		{name: "bad state", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: backendAt(0), State: 9}}}}, err: ErrUnknownState},
		{name: "bad zone", pools: []PoolConfig{{Name: "a", Backends: []BackendConfig{{Addr: netip.MustParseAddrPort("[fe80::1%nosuchif0]:5060")}}}}, err: ErrInvalidAddr},
		{name: "valid", pools: []PoolConfig{{Name: "a", Backends: good}, {Name: "b", Backends: good}}},
		{name: "same member in two pools", pools: []PoolConfig{{Name: "a", Backends: good}, {Name: "b", Backends: good[:1]}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.pools)
			if !errors.Is(err, tc.err) {
				t.Fatalf("New: err = %v, want %v", err, tc.err)
			}
			if err == nil && b.Table() == nil {
				t.Fatal("New: no table published")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	bal := onePool(t, HashCallID, []BackendConfig{{Addr: backendAt(0)}})
	b := bal.Table().Pool(0).Backends()[0]
	if b.Weight != DefaultWeight || b.Priority != DefaultPriority || b.State != Up || b.Transport != UDP {
		t.Errorf("defaults: weight %d priority %d state %v transport %v; want %d %d up udp",
			b.Weight, b.Priority, b.State, b.Transport, DefaultWeight, DefaultPriority)
	}
	if got := bal.Table().Pool(0).Algorithm(); got != HashCallID {
		t.Errorf("default algorithm = %v, want hash-callid", got)
	}
}

func TestNewCopiesConfig(t *testing.T) {
	bcs := members(2)
	pools := []PoolConfig{{Name: "p", Backends: bcs}}
	bal, err := New(pools)
	if err != nil {
		t.Fatal(err)
	}
	bcs[0].Addr = backendAt(9)
	pools[0].Name = "q"
	bal.SetHealth(backendAt(1), false) // rebuilds from the stored copy
	tab := bal.Table()
	if _, ok := tab.PoolByName("p"); !ok {
		t.Error(`pool "p" gone after the caller changed its slice`)
	}
	if _, ok := tab.Lookup(backendAt(0)); !ok {
		t.Error("member 0 gone after the caller changed its slice")
	}
}

func TestTableAccessors(t *testing.T) {
	bal, err := New([]PoolConfig{
		{Name: "registrars", Algorithm: HashFromUser, Backends: members(3)},
		{Name: "media", Algorithm: RoundRobin, Backends: []BackendConfig{
			{Addr: netip.MustParseAddrPort("[2001:db8::7]:5080"), Transport: TLS},
			{Addr: backendAt(1), Transport: TCP}, // also a registrar
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tab := bal.Table()
	if tab.NumPools() != 2 {
		t.Fatalf("NumPools = %d, want 2", tab.NumPools())
	}
	for _, id := range []PoolID{-1, 2, 100} {
		if p := tab.Pool(id); p != nil {
			t.Errorf("Pool(%d) = %q, want nil", id, p.Name())
		}
		if _, ok := tab.Pick(id, nil); ok {
			t.Errorf("Pick(%d) succeeded", id)
		}
	}
	id, ok := tab.PoolByName("media")
	if !ok || id != 1 || tab.Pool(id).Name() != "media" || tab.Pool(id).Algorithm() != RoundRobin {
		t.Errorf(`PoolByName("media") = %d, %v`, id, ok)
	}
	if _, ok := tab.PoolByName("nope"); ok {
		t.Error(`PoolByName("nope") succeeded`)
	}
	if len(tab.Pool(0).Backends()) != 3 {
		t.Errorf("registrars has %d backends, want 3", len(tab.Pool(0).Backends()))
	}

	lookups := []struct {
		name      string
		addr      string
		wantOK    bool
		wantPool  int
		wantIndex int
		wantTr    Transport
	}{
		{name: "ipv4", addr: "10.0.0.3:5060", wantOK: true, wantPool: 0, wantIndex: 2},
		{name: "first pool wins", addr: "10.0.0.2:5060", wantOK: true, wantPool: 0, wantIndex: 1},
		{name: "ipv6", addr: "[2001:db8::7]:5080", wantOK: true, wantPool: 1, wantIndex: 0, wantTr: TLS},
		{name: "ipv4-mapped", addr: "[::ffff:10.0.0.1]:5060", wantOK: true, wantPool: 0, wantIndex: 0},
		{name: "other port", addr: "10.0.0.1:5061"},
		{name: "unknown", addr: "192.0.2.1:5060"},
	}
	for _, tc := range lookups {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := tab.Lookup(netip.MustParseAddrPort(tc.addr))
			if ok != tc.wantOK {
				t.Fatalf("Lookup(%s): ok = %v, want %v", tc.addr, ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if b.Pool != tc.wantPool || b.Index != tc.wantIndex || b.Transport != tc.wantTr {
				t.Errorf("Lookup(%s) = pool %d index %d %v; want pool %d index %d %v",
					tc.addr, b.Pool, b.Index, b.Transport, tc.wantPool, tc.wantIndex, tc.wantTr)
			}
			if tab.Pool(PoolID(b.Pool)).Backends()[b.Index] != b {
				t.Errorf("Lookup(%s) is not Pool(%d).Backends()[%d]", tc.addr, b.Pool, b.Index)
			}
		})
	}
	if got, want := tab.Pool(1).Backends()[0].String(), "[2001:db8::7]:5080/tls"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// A link-local member's zone is a number or an interface of this host;
// any other name is refused when the pool is built.
func TestBackendZone(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{addr: "10.0.0.1:5060", ok: true},
		{addr: "[::ffff:10.0.0.1]:5070", ok: true},
		{addr: "[fe80::1%3]:5060", ok: true},
		{addr: "[fe80::1%lo]:5060", ok: true},
		{addr: "[fe80::1%no-such-interface]:5060", ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			_, err := New([]PoolConfig{{Name: "p", Backends: []BackendConfig{{Addr: netip.MustParseAddrPort(tc.addr)}}}})
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidAddr)) {
				t.Errorf("New(%s) = %v, want ok %v", tc.addr, err, tc.ok)
			}
		})
	}
}

// An IPv4-mapped backend_sources prefix shorter than /96 covers IPv6
// space only: it never becomes 0.0.0.0/0 (every IPv4 source a backend).
func TestBackendSourcesMapped(t *testing.T) {
	bal, err := New([]PoolConfig{{Name: "p", Backends: []BackendConfig{{Addr: netip.MustParseAddrPort("127.0.0.1:5070")}},
		BackendSources: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/80"), netip.MustParsePrefix("::ffff:192.0.2.0/120")}}})
	if err != nil {
		t.Fatal(err)
	}
	tab := bal.Table()
	for _, tc := range []struct {
		ip   string
		want bool
	}{{"203.0.113.7", false}, {"10.1.2.3", false}, {"192.0.2.9", true}, {"::ffff:192.0.2.9", true}} {
		if got := tab.BackendSource(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("BackendSource(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
}
