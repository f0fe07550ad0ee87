//go:build !race

package echo

import (
	"testing"
)

// TestHandleAllocs pins the hot path: answering a message allocates nothing.
func TestHandleAllocs(t *testing.T) {
	srv := startEcho(t, 1)
	sink := client(t) // answers go here and are never read
	k := srv.socks[0]
	dst := sink.LocalAddr().(interface{ String() string })
	_ = dst
	src := sinkAddr(t, sink)
	for _, method := range []string{"OPTIONS", "INVITE", "CANCEL", "REGISTER", "BYE"} {
		req := request(sink, method, "alloc@test", "Record-Route: <sip:127.0.0.1;lr>\r\n", "v=0\r\n")
		k.handle(req, src) // grow the buffers once
		if allocs := testing.AllocsPerRun(100, func() { k.handle(req, src) }); allocs != 0 {
			t.Errorf("handle(%s): %v allocs per message, want 0", method, allocs)
		}
	}
}
