package engine

import (
	"bytes"
	"testing"
)

// What reaches a backend is counted on it: a new dialog's pick, an
// in-dialog request, and its responses by class.
func TestBackendCounts(t *testing.T) {
	f := newTestForwarder(t)
	r, m := fwd(t, f, invite("counts@x", "z9hG4bKcounts"), client)
	if m == nil {
		t.Fatalf("INVITE dropped: %v", r.Drop)
	}
	be, ok := f.bal.Table().Lookup(r.To)
	if !ok {
		t.Fatalf("INVITE went to %v, not a member", r.To)
	}
	ok200 := bytes.Replace(bytes.Clone(m.Buf), []byte("INVITE sip:bob@example.com SIP/2.0"), []byte("SIP/2.0 200 OK"), 1)
	if out := f.Process(f.NewScratch(), ok200, r.To, f.Legs()[0]); out.Out == nil {
		t.Fatalf("200 dropped: %v", out.Drop)
	}
	bye := sip("BYE sip:bob@"+r.To.String()+" SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKcountsbye;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Call-ID: counts@x", "CSeq: 2 BYE", "Content-Length: 0")
	if out, _ := fwd(t, f, bye, client); out.To != r.To {
		t.Fatalf("BYE to %v, want the INVITE's backend %v", out.To, r.To)
	}
	n := be.Stats.Read()
	if n.NewDialogs != 1 || n.InDialog != 1 || n.Responses[1] != 1 {
		t.Errorf("counts %+v, want 1 new dialog, 1 in-dialog request, one 2xx", n)
	}
}
