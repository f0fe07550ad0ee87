//go:build !race

package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
)

// Admission allocates nothing: a new dialog diverted from a shedding member,
// one refused with 503 when every member sheds, and a member's overload
// report taken from its response.
func TestAdmissionAllocs(t *testing.T) {
	f := newTestForwarder(t)
	s := f.NewScratch()
	leg := f.Legs()[0]
	inv := invite("adm@x", "z9hG4bKadm")
	r := f.Process(s, inv, client, leg)
	if r.Out == nil {
		t.Fatal(r.Drop)
	}
	hot := r.To
	fwdInv := bytes.Clone(r.Out)
	_, m := fwd(t, f, inv, client)
	rep := ocResponse(m, `;oc=100;oc-algo="loss";oc-validity=60000;oc-seq=5.0`)
	if n := testing.AllocsPerRun(1, func() { f.Process(s, rep, hot, leg) }); n != 0 {
		t.Errorf("overload report: %.1f allocations, want 0", n)
	}
	be, _ := f.bal.Table().Lookup(hot)
	if be.Overload().Read(time.Now().UnixNano()).Reduction != 100 {
		t.Fatalf("report not taken (forwarded INVITE:\n%s)", fwdInv)
	}
	if n := testing.AllocsPerRun(100, func() {
		if r := f.Process(s, inv, client, leg); r.To == hot {
			t.Fatal("sent to the shedding member")
		}
	}); n != 0 {
		t.Errorf("diverted INVITE: %.1f allocations, want 0", n)
	}
	for _, b := range f.bal.Table().Pool(0).Backends() {
		b.Overload().Report(balance.OverloadReport{Reduction: 100, Validity: 60000, Seq: 1 << 60}, time.Now().UnixNano())
	}
	if n := testing.AllocsPerRun(100, func() {
		if r := f.Process(s, inv, client, leg); r.Status != 503 {
			t.Fatalf("status %d, want 503", r.Status)
		}
	}); n != 0 {
		t.Errorf("503 by admission: %.1f allocations, want 0", n)
	}
}
