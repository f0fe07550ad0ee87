package engine

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/pool"
)

// A TCP client's request answered by a UDP backend: the response leaves
// from the batched UDP socket's goroutine straight to the client's socket
// (DirectWrites), not through the loop's mailbox. Linux only: batched UDP
// (recvmmsg/sendmmsg) is, and elsewhere gnet's UDP loops write through the
// stream's loop instead.
func TestDirectWriteTCPClientUDPBackend(t *testing.T) {
	uas := startUAS(t)
	_, lb, srv := startMixedLB(t, pool.Limits{}, balance.BackendConfig{Addr: uas.addr})
	c := dialTCP(t, lb)
	const n = 20
	for i := range n {
		if _, err := c.Write(optionsReq(c.LocalAddr().String(), "direct", i+1)); err != nil {
			t.Fatal(err)
		}
		got := readResponses(t, c, 1, 5*time.Second)
		if len(got) != 1 || !bytes.Contains(got[0], fmt.Appendf(nil, "CSeq: %d OPTIONS", i+1)) {
			t.Fatalf("request %d: responses %q", i+1, got)
		}
	}
	st := srv.Stats()
	// One at a time, nothing ever waits on the socket: every response is
	// written directly.
	if st.DirectWrites != n || st.DirectFallbacks != 0 {
		t.Errorf("DirectWrites %d, DirectFallbacks %d for %d responses, want %d and 0", st.DirectWrites, st.DirectFallbacks, n, n)
	}
}
