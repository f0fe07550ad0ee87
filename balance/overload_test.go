package balance

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseOCSeq(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{in: "1282321615.782", want: 128232161578200, ok: true},
		{in: "1282321615.78", want: 128232161578000, ok: true},
		{in: "1.5", want: 150000, ok: true},
		{in: "7", want: 700000, ok: true},
		{in: "999999999999.99999", want: 99999999999999999, ok: true},
		{in: "1234567890123.1"},
		{in: "1.123456"},
		{in: "1."},
		{in: ".5"},
		{in: ""},
		{in: "1a"},
		{in: "-1.0"},
	}
	for _, tc := range tests {
		got, ok := ParseOCSeq([]byte(tc.in))
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseOCSeq(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	a, _ := ParseOCSeq([]byte("100.9"))
	b, _ := ParseOCSeq([]byte("100.10"))
	if a <= b {
		t.Errorf("ParseOCSeq: 100.9 (%d) must order after 100.10 (%d)", a, b)
	}
}

// Reports are taken in oc-seq order; a validity of 0 or a reduction of 0
// ends overload control; a report expires after its validity.
func TestOverloadReport(t *testing.T) {
	const ms = int64(1e6)
	now := int64(1_700_000_000_000) * ms
	type step struct {
		name      string
		at        int64 // ms after now
		r         OverloadReport
		taken     bool
		reduction int // in force right after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "newer seq replaces, equal and older ignored", steps: []step{
			{name: "first", r: OverloadReport{Reduction: 20, Validity: 1000, Seq: 10}, taken: true, reduction: 20},
			{name: "newer", at: 10, r: OverloadReport{Reduction: 50, Validity: 1000, Seq: 11}, taken: true, reduction: 50},
			{name: "equal", at: 20, r: OverloadReport{Reduction: 90, Validity: 1000, Seq: 11}, reduction: 50},
			{name: "older while live", at: 30, r: OverloadReport{Reduction: 90, Validity: 1000, Seq: 5}, reduction: 50},
		}},
		{name: "validity 0 stops", steps: []step{
			{name: "on", r: OverloadReport{Reduction: 40, Validity: 500, Seq: 1}, taken: true, reduction: 40},
			{name: "stop", at: 1, r: OverloadReport{Reduction: 40, Validity: 0, Seq: 2}, taken: true, reduction: 0},
		}},
		{name: "reduction 0 stops", steps: []step{
			{name: "on", r: OverloadReport{Reduction: 40, Validity: 500, Seq: 1}, taken: true, reduction: 40},
			{name: "zero", at: 1, r: OverloadReport{Reduction: 0, Validity: 500, Seq: 2}, taken: true, reduction: 0},
		}},
		{name: "expires", steps: []step{
			{name: "on", r: OverloadReport{Reduction: 40, Validity: 500, Seq: 1}, taken: true, reduction: 40},
			{name: "after validity", at: 500, r: OverloadReport{Reduction: 40, Validity: 500, Seq: 1}, reduction: 0},
			{name: "restarted sequence", at: 600, r: OverloadReport{Reduction: 30, Validity: 500, Seq: 0}, taken: true, reduction: 30},
		}},
		{name: "out of range", steps: []step{
			{name: "over 100", r: OverloadReport{Reduction: 101, Validity: 500, Seq: 1}},
			{name: "negative validity", r: OverloadReport{Reduction: 10, Validity: -1, Seq: 1}},
			{name: "validity capped", r: OverloadReport{Reduction: 10, Validity: 1 << 40, Seq: 1}, taken: true, reduction: 10},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o Overload
			for _, s := range tc.steps {
				at := now + s.at*ms
				if got := o.Report(s.r, at); got != s.taken {
					t.Errorf("%s: Report(%+v) = %v, want %v", s.name, s.r, got, s.taken)
				}
				st := o.Read(at)
				if st.Reduction != s.reduction {
					t.Errorf("%s: Reduction = %d, want %d", s.name, st.Reduction, s.reduction)
				}
				if st.Reduction > 0 && st.ExpiresMs > at/ms+MaxOverloadValidity {
					t.Errorf("%s: expires %d ms ahead, more than MaxOverloadValidity", s.name, st.ExpiresMs-at/ms)
				}
			}
		})
	}
}

// A reduction of N sheds about N% of the dialogs, the same ones every time.
func TestOverloadShedShare(t *testing.T) {
	now := int64(1e18)
	for _, pct := range []int{0, 10, 35, 100} {
		var o Overload
		o.Report(OverloadReport{Reduction: pct, Validity: 10_000, Seq: 1}, now)
		keys := callIDs(20000)
		shed := 0
		for _, k := range keys {
			d := HashKey(k)
			s := o.sheds(d, now)
			if s != o.sheds(d, now+1e6) {
				t.Fatalf("reduction %d: decision for %q changed", pct, k)
			}
			if s {
				shed++
			}
		}
		got := float64(shed) / float64(len(keys)) * 100
		if got < float64(pct)-1.5 || got > float64(pct)+1.5 {
			t.Errorf("reduction %d: shed %.1f%% of dialogs", pct, got)
		}
	}
}

// A member shedding by overload gives way to the member the pool would pick
// without it; with every member shedding, nothing is admitted. In-dialog
// traffic is not the pool's business (Pick is unchanged).
func TestPickAdmittedOverload(t *testing.T) {
	now := int64(1e18)
	for _, alg := range []Algorithm{HashCallID, RoundRobin} {
		t.Run(alg.String(), func(t *testing.T) {
			bal := onePool(t, alg, members(4))
			without := onePool(t, alg, members(4)[1:])
			p := bal.Table().Pool(0)
			hot := p.Backends()[0]
			hot.Overload().Report(OverloadReport{Reduction: 100, Validity: 60_000, Seq: 1}, now)
			for i, k := range callIDs(400) {
				a := Admit{Dialog: HashKey(k), Now: now}
				b, why := p.PickAdmitted(k, &a)
				if why != Admitted || b == nil {
					t.Fatalf("PickAdmitted(%q) refused: %v", k, why)
				}
				if b == hot {
					t.Fatalf("PickAdmitted(%q) = the member shedding 100%%", k)
				}
				if alg.Hashed() {
					w, _ := without.Table().Pool(0).Pick(k)
					if w.Addr != b.Addr {
						t.Errorf("key %d: diverted to %s, the pool without the member picks %s", i, b.Addr, w.Addr)
					}
				}
			}
			if got := hot.Overload().Read(now).ShedOverload; got == 0 {
				t.Error("ShedOverload = 0 on the shedding member")
			}
			for _, m := range p.Backends() {
				m.Overload().Report(OverloadReport{Reduction: 100, Validity: 60_000, Seq: 1}, now)
			}
			a := Admit{Dialog: 1, Now: now}
			if b, why := p.PickAdmitted([]byte("x@y"), &a); b != nil || why != RefusedOverload {
				t.Errorf("all members shedding: PickAdmitted = %v, %v; want nil, RefusedOverload", b, why)
			}
		})
	}
}

// MaxCPS admits a second's worth of new dialogs at once, overflows to the
// next member, refuses when every member is full, whichever stripes (event
// loops) ask, and refills.
func TestPickAdmittedMaxCPS(t *testing.T) {
	now := int64(1e18)
	bcs := members(2)
	bcs[0].MaxCPS = 10
	bal, err := New([]PoolConfig{{Name: "p", Algorithm: RoundRobin, Backends: bcs, MaxCPS: 4}})
	if err != nil {
		t.Fatal(err)
	}
	p := bal.Table().Pool(0)
	if got := p.Backends()[1].MaxCPS; got != 4 {
		t.Fatalf("member without max_cps: MaxCPS = %v, want the pool's 4", got)
	}
	n := 0
	for i := range 100 {
		a := Admit{Dialog: uint64(i), Now: now, Stripe: i % 5}
		if _, why := p.PickAdmitted(nil, &a); why == Admitted {
			n++
		} else if why != RefusedRate {
			t.Fatalf("refusal %v, want RefusedRate", why)
		}
	}
	if n != 14 {
		t.Errorf("admitted %d at one instant from 5 stripes, want 14 (10 + 4)", n)
	}
	a := Admit{Now: now + 100e6, Stripe: 7}
	if b, why := p.PickAdmitted(nil, &a); why != Admitted || b != p.Backends()[0] {
		t.Errorf("100 ms later: %v, %v; want the member of max_cps 10 (one token back)", b, why)
	}
	st := p.Backends()[0].Overload().Read(now)
	if st.ShedRate == 0 {
		t.Error("ShedRate = 0 on the full member")
	}
}

func TestMaxCPSValidation(t *testing.T) {
	for _, v := range []float64{-1, MaxCPS + 1} {
		bcs := members(1)
		bcs[0].MaxCPS = v
		if _, err := New([]PoolConfig{{Name: "p", Backends: bcs}}); !errors.Is(err, ErrMaxCPS) {
			t.Errorf("backend MaxCPS %v: err = %v, want ErrMaxCPS", v, err)
		}
		if _, err := New([]PoolConfig{{Name: "p", Backends: members(1), MaxCPS: v}}); !errors.Is(err, ErrMaxCPS) {
			t.Errorf("pool MaxCPS %v: err = %v, want ErrMaxCPS", v, err)
		}
	}
}

// The overload state belongs to the address: it survives a reload.
func TestOverloadSurvivesReload(t *testing.T) {
	now := int64(1e18)
	bal := onePool(t, HashCallID, members(2))
	bal.Table().Pool(0).Backends()[0].Overload().Report(OverloadReport{Reduction: 30, Validity: 60_000, Seq: 1}, now)
	if err := bal.Reload([]PoolConfig{{Name: "p", Backends: members(3)}}); err != nil {
		t.Fatal(err)
	}
	b, _ := bal.Table().Lookup(netip.MustParseAddrPort("10.0.0.1:5060"))
	if got := b.Overload().Read(now).Reduction; got != 30 {
		t.Errorf("after Reload: Reduction = %d, want 30", got)
	}
}

func TestReplacesAffinityFlag(t *testing.T) {
	tests := []struct {
		name string
		pc   PoolConfig
		want bool
	}{
		{name: "hash-callid default", pc: PoolConfig{Algorithm: HashCallID}, want: true},
		{name: "hash-callid disabled", pc: PoolConfig{Algorithm: HashCallID, DisableReplacesAffinity: true}},
		{name: "hash-from-user", pc: PoolConfig{Algorithm: HashFromUser}},
		{name: "round-robin", pc: PoolConfig{Algorithm: RoundRobin}},
	}
	for _, tc := range tests {
		tc.pc.Name, tc.pc.Backends = "p", members(1)
		bal, err := New([]PoolConfig{tc.pc})
		if err != nil {
			t.Fatal(err)
		}
		if got := bal.Table().Pool(0).ReplacesAffinity(); got != tc.want {
			t.Errorf("%s: ReplacesAffinity = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// BenchmarkPickAdmitted is the admission of a new dialog: no report and no
// cap (the common case), a member shedding half its dialogs, and a member
// past its cap whose dialogs go to the next.
func BenchmarkPickAdmitted(b *testing.B) {
	now := int64(1e18)
	keys := callIDs(1024)
	for _, tc := range []struct {
		name string
		set  func(p *Pool)
	}{
		{name: "plain", set: func(*Pool) {}},
		{name: "overload 50%", set: func(p *Pool) {
			p.Backends()[0].Overload().Report(OverloadReport{Reduction: 50, Validity: 3600_000, Seq: 1}, now)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bal := onePool(b, HashCallID, members(4))
			p := bal.Table().Pool(0)
			tc.set(p)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keys[i%len(keys)]
				a := Admit{Dialog: HashKey(k), Now: now}
				p.PickAdmitted(k, &a)
				i++
			}
		})
	}
	b.Run("max_cps full", func(b *testing.B) {
		bcs := members(4)
		bcs[0].MaxCPS = 1
		bal, _ := New([]PoolConfig{{Name: "p", Backends: bcs}})
		p := bal.Table().Pool(0)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i%len(keys)]
			a := Admit{Dialog: HashKey(k), Now: now}
			p.PickAdmitted(k, &a)
			i++
		}
	})
}

// A caller that hashed the Call-ID key itself (Dialog preset with
// DialogIsKey) gets the member and the Dialog that PickAdmitted finds
// hashing it there.
func TestPickAdmittedPresetDialog(t *testing.T) {
	now := int64(1e18)
	for _, alg := range []Algorithm{HashCallID, LeastLatency, LeastLatencyP2C} {
		bal := onePool(t, alg, members(5))
		p := bal.Table().Pool(0)
		p.Backends()[1].Overload().Report(OverloadReport{Reduction: 50, Validity: 60_000, Seq: 1}, now)
		for _, k := range callIDs(300) {
			a1 := Admit{DialogIsKey: true, Now: now}
			b1, why1 := p.PickAdmitted(k, &a1)
			a2 := Admit{DialogIsKey: true, Dialog: HashKey(k), Now: now}
			b2, why2 := p.PickAdmitted(k, &a2)
			if b1 != b2 || why1 != why2 || a1.Dialog != a2.Dialog {
				t.Fatalf("%v %q: %v %v %#x, preset %v %v %#x", alg, k, b1, why1, a1.Dialog, b2, why2, a2.Dialog)
			}
		}
	}
}
