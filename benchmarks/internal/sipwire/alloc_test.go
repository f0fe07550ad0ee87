//go:build !race

package sipwire

import "testing"

func TestScanAllocs(t *testing.T) {
	msg := crlf("INVITE sip:bob@example.com SIP/2.0\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\n" +
		"Record-Route: <sip:p1;lr>\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>\nCall-ID: c\nCSeq: 1 INVITE\n" +
		"Content-Length: 0\n\n")
	var m Msg
	var routes [][]byte
	Scan(&m, msg) // grow the slices once
	routes = SplitList(routes, m.RecordRoutes[0])
	allocs := testing.AllocsPerRun(100, func() {
		if !Scan(&m, msg) {
			t.Fatal("Scan failed")
		}
		routes = SplitList(routes[:0], m.RecordRoutes[0])
		_ = Tag(m.From)
		_ = HostPort(URI(m.RecordRoutes[0]))
	})
	if allocs != 0 {
		t.Errorf("Scan: %v allocs per run, want 0", allocs)
	}
}
