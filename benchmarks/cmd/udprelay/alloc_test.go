//go:build linux && !race

package main

import (
	"testing"
	"time"
)

// TestRelayAllocs asserts that relaying a datagram both ways allocates
// nothing once the client's upstream exists (the test's own client and
// backend allocate nothing either: connected Write/Read, AddrPort I/O).
func TestRelayAllocs(t *testing.T) {
	r := startRelay(t, backend(t))
	c := client(t, r)
	msg := []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	roundTrip := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip() // opens the upstream
	if n := testing.AllocsPerRun(200, roundTrip); n != 0 {
		t.Errorf("AllocsPerRun(round trip) = %v, want 0", n)
	}
}
