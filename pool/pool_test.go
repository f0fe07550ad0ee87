package pool

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

type conn struct{ name string }

func TestRegistryIDs(t *testing.T) {
	r := NewRegistry[conn](Limits{MaxConns: 2, MaxConnsPerIP: 2})
	ip := netip.MustParseAddr("127.0.0.1")
	a, b := &conn{"a"}, &conn{"b"}
	ida, err := r.Add(a, ip, true)
	if err != nil {
		t.Fatal(err)
	}
	idb, err := r.Add(b, ip, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(&conn{"c"}, ip, false); !errors.Is(err, ErrTooManyConns) {
		t.Errorf("third Add: %v, want ErrTooManyConns", err)
	}
	if r.Get(ida) != a || r.Get(idb) != b || r.Len() != 2 {
		t.Fatalf("Get(%v)=%v Get(%v)=%v Len=%d", ida, r.Get(ida), idb, r.Get(idb), r.Len())
	}
	r.Remove(ida, ip, true)
	if r.Get(ida) != nil {
		t.Errorf("Get of a removed id found %v", r.Get(ida))
	}
	c := &conn{"c"}
	idc, err := r.Add(c, ip, true)
	if err != nil {
		t.Fatal(err)
	}
	if idc == ida || idc.slot() != ida.slot() {
		t.Errorf("reused slot: new id %#x, old %#x; want same slot, new generation", idc, ida)
	}
	if r.Get(ida) != nil || r.Get(idc) != c {
		t.Errorf("stale id resolves to %v; new id to %v", r.Get(ida), r.Get(idc))
	}
	r.Remove(ida, ip, true) // stale: must not remove c
	if r.Get(idc) != c || r.Len() != 2 {
		t.Errorf("removing a stale id removed the slot's new connection")
	}
	if r.Get(0) != nil {
		t.Errorf("ConnID 0 resolved")
	}
}

func TestRegistryPerIPCap(t *testing.T) {
	r := NewRegistry[conn](Limits{MaxConns: 10, MaxConnsPerIP: 2})
	ip := netip.MustParseAddr("127.0.0.2")
	other := netip.MustParseAddr("127.0.0.3")
	var ids []ConnID
	for range 2 {
		id, err := r.Add(&conn{}, ip, true)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := r.Add(&conn{}, ip, true); !errors.Is(err, ErrTooManyFromIP) {
		t.Errorf("third from one IP: %v, want ErrTooManyFromIP", err)
	}
	if _, err := r.Add(&conn{}, other, true); err != nil {
		t.Errorf("another IP refused: %v", err)
	}
	if _, err := r.Add(&conn{}, ip, false); err != nil {
		t.Errorf("outbound to the same IP refused: %v", err)
	}
	r.Remove(ids[0], ip, true)
	if _, err := r.Add(&conn{}, ip, true); err != nil {
		t.Errorf("after a close the IP is still refused: %v", err)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry[conn](Limits{MaxConns: 1000, MaxConnsPerIP: 1000})
	ip := netip.MustParseAddr("127.0.0.1")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				c := &conn{}
				id, err := r.Add(c, ip, true)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Get(id) != c {
					t.Error("Get after Add")
				}
				r.Remove(id, ip, true)
			}
		})
	}
	wg.Wait()
	if r.Len() != 0 {
		t.Errorf("Len = %d after all removed", r.Len())
	}
}

func TestIdleTimeout(t *testing.T) {
	l := Limits{MaxConns: 1000}
	tests := []struct {
		open int
		want time.Duration
	}{
		{0, 120 * time.Second},
		{1, 120*time.Second - 105*time.Millisecond},
		{500, 67500 * time.Millisecond},
		{1000, 15 * time.Second},
		{5000, 15 * time.Second},
	}
	for _, tc := range tests {
		if got := l.IdleTimeout(tc.open); got != tc.want {
			t.Errorf("IdleTimeout(%d) = %v, want %v", tc.open, got, tc.want)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := (Limits{}).Defaults().Validate("transport"); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	bad := Limits{IdleMin: time.Minute, IdleMax: time.Second}.Defaults()
	if err := bad.Validate("transport"); err == nil {
		t.Errorf("idle_min > idle_max accepted")
	}
}

func TestDests(t *testing.T) {
	d := NewDests[conn]()
	dst := netip.MustParseAddrPort("127.0.0.1:5070")
	if c, open := d.Pick(dst, 2); c != nil || !open {
		t.Fatalf("empty: Pick = %v, %v", c, open)
	}
	a, b := &conn{"a"}, &conn{"b"}
	d.Add(dst, a)
	if c, open := d.Pick(dst, 2); c != a || !open {
		t.Errorf("one of two: Pick = %v, %v; want a, open another", c, open)
	}
	d.Add(dst, b)
	seen := map[*conn]int{}
	for range 4 {
		c, open := d.Pick(dst, 2)
		if open {
			t.Errorf("two of two: asked to open another")
		}
		seen[c]++
	}
	if seen[a] != 2 || seen[b] != 2 {
		t.Errorf("not spread: %v", seen)
	}
	d.Remove(dst, a)
	d.Remove(dst, b)
	if d.Len() != 0 {
		t.Errorf("Len = %d after removing all", d.Len())
	}
}

func TestBufferCopy(t *testing.T) {
	b := Copy([]byte("INVITE"))
	if string(b.B) != "INVITE" {
		t.Errorf("Copy = %q", b.B)
	}
	PutBuffer(b)
}

// Ids carry a random part: consecutive connections' ids say nothing about
// each other, and the outbound bit tells who opened the connection.
func TestRegistryIDsUnguessable(t *testing.T) {
	r := NewRegistry[conn](Limits{MaxConns: 64, MaxConnsPerIP: 64})
	ip := netip.MustParseAddr("127.0.0.1")
	seen := map[uint64]bool{}
	var prev ConnID
	for i := range 32 {
		id, err := r.Add(&conn{}, ip, i%2 == 0)
		if err != nil {
			t.Fatal(err)
		}
		if id.Outbound() != (i%2 != 0) {
			t.Errorf("id %#x: Outbound %v for inbound=%v", id, id.Outbound(), i%2 == 0)
		}
		if id.Trusted() {
			t.Errorf("id %#x: Trusted without AddTrusted", id)
		}
		high := uint64(id) >> randomShift
		if seen[high] {
			t.Errorf("random part %#x repeated", high)
		}
		seen[high] = true
		if prev != 0 && id-prev == 1 {
			t.Errorf("sequential ids %#x, %#x", prev, id)
		}
		prev = id
		// A guessed neighbour (slot and generation right, random part not)
		// resolves to nothing.
		if r.Get(id^1<<40) != nil || r.Get(id|trustedBit) != nil {
			t.Errorf("id %#x with another random part or the trusted bit resolved", id)
		}
	}
}

func TestMemoryBudgetValidate(t *testing.T) {
	if got := (Limits{}).Defaults().MemoryBudget; got != DefaultMemoryBudget {
		t.Errorf("default memory_budget = %d, want %d", got, DefaultMemoryBudget)
	}
	for _, tc := range []struct {
		name string
		v    int64
		ok   bool
	}{
		{name: "default", v: 0, ok: true},
		{name: "minimum", v: MinMemoryBudget, ok: true},
		{name: "below minimum", v: MinMemoryBudget - 1},
		{name: "negative", v: -1},
		{name: "above maximum", v: MaxMemoryBudget + 1},
	} {
		err := Limits{MemoryBudget: tc.v}.Defaults().Validate("streams")
		if (err == nil) != tc.ok {
			t.Errorf("%s: memory_budget %d: Validate = %v", tc.name, tc.v, err)
		}
		if err != nil && !strings.Contains(err.Error(), "streams.memory_budget") {
			t.Errorf("%s: error %q does not name the key", tc.name, err)
		}
	}
}

func TestMaxWriteQueueValidate(t *testing.T) {
	if got := (Limits{}).Defaults().MaxWriteQueue; got != DefaultMaxWriteQueue {
		t.Errorf("default max_write_queue = %d, want %d", got, DefaultMaxWriteQueue)
	}
	for _, tc := range []struct {
		name string
		v    int
		ok   bool
	}{
		{name: "default", v: 0, ok: true},
		{name: "minimum", v: MinMaxWriteQueue, ok: true},
		{name: "maximum", v: MaxMaxWriteQueue, ok: true},
		{name: "below minimum", v: MinMaxWriteQueue - 1},
		{name: "negative", v: -1},
		{name: "above maximum", v: MaxMaxWriteQueue + 1},
	} {
		err := Limits{MaxWriteQueue: tc.v}.Defaults().Validate("streams")
		if (err == nil) != tc.ok {
			t.Errorf("%s: max_write_queue %d: Validate = %v", tc.name, tc.v, err)
		}
		if err != nil && !strings.Contains(err.Error(), "streams.max_write_queue") {
			t.Errorf("%s: error %q does not name the key", tc.name, err)
		}
	}
}

func TestWriteBudgetValidate(t *testing.T) {
	if got := (Limits{MaxWriteQueue: MaxMaxWriteQueue}).Defaults().WriteBudget; got != MaxMaxWriteQueue {
		t.Errorf("default write_budget beside a max_write_queue of %d = %d, want as much", MaxMaxWriteQueue, got)
	}
	for _, tc := range []struct {
		name   string
		queue  int
		budget int64
		ok     bool
	}{
		{name: "defaults", ok: true},
		{name: "equal to the queue", queue: MinMaxWriteQueue, budget: MinMaxWriteQueue, ok: true},
		{name: "below the queue", queue: 2 * MinMaxWriteQueue, budget: MinMaxWriteQueue},
		{name: "below the default queue", budget: 1 << 10},
		{name: "above maximum", budget: MaxMemoryBudget + 1},
	} {
		err := Limits{MaxWriteQueue: tc.queue, WriteBudget: tc.budget}.Defaults().Validate("streams")
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v", tc.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "streams.write_budget") {
			t.Errorf("%s: error %q does not name streams.write_budget", tc.name, err)
		}
	}
}
