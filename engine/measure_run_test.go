//go:build measure

// Measurements, not tests: they report figures for the notes and README
// and take minutes and thousands of descriptors, so they build only with
// the measure tag:
//
//	go test -tags measure -run 'TestMeasure' -v -timeout 10m ./engine/

package engine

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/siplb/siplb/pool"
	"golang.org/x/sys/unix"
)

// TestMeasureStreamMemory opens SIPLB_MEASURE_CONNS (default 4000) TCP connections from 16
// loopback addresses, each sending a 60 KB part of a 65000-byte body in
// SIPLB_MEASURE_CHUNKS (default 4) writes, every connection's first write
// before any second one, so that each arrives in as many reads, and
// reports the memory of the process (siplb and the clients) before, while
// they are held, right after they close, and SIPLB_MEASURE_WAIT (default
// 1m) later with debug.FreeOSMemory. It needs about 2.1 descriptors per
// connection (it raises RLIMIT_NOFILE to the hard limit).
//
//	go test -tags measure -run TestMeasureStreamMemory -v -timeout 10m ./engine/
func TestMeasureStreamMemory(t *testing.T) {
	n := 4000
	if v := os.Getenv("SIPLB_MEASURE_CONNS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	chunks := 4
	if v := os.Getenv("SIPLB_MEASURE_CHUNKS"); v != "" {
		chunks, _ = strconv.Atoi(v)
	}
	wait := time.Minute
	if v := os.Getenv("SIPLB_MEASURE_WAIT"); v != "" {
		wait, _ = time.ParseDuration(v)
	}
	// Go raises the soft RLIMIT_NOFILE to the hard one at start.
	var rl unix.Rlimit
	err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	if err != nil || rl.Cur < uint64(2*n+256) {
		t.Fatalf("RLIMIT_NOFILE %d (%v): need %d; raise it (ulimit -n)", rl.Cur, err, 2*n+256)
	}
	uas := startTCPUAS(t)
	_, lb, srv := startMixedLB(t, pool.Limits{}, tcpMember(uas))

	hdr := "MESSAGE sip:service@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-measure;rport\r\n" +
		"From: <sip:a@example.com>;tag=f\r\nTo: <sip:service@example.com>\r\nCall-ID: measure@x\r\nCSeq: 1 MESSAGE\r\n" +
		"Content-Length: 65000\r\n\r\n"
	part := append([]byte(hdr), bytes.Repeat([]byte("b"), 60000)...)

	runtime.GC()
	debug.FreeOSMemory()
	before := measureMem(t)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range n {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%16)}) // 250 per address: under max_per_ip
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("tcp4", lb.String())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	size := (len(part) + chunks - 1) / chunks
	for k := range chunks {
		for i, c := range conns {
			if _, err := c.Write(part[k*size : min((k+1)*size, len(part))]); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := int64(n) * int64(pool.BytesCap(len(part)))
	deadline := time.Now().Add(2 * time.Minute)
	for srv.Stats().StreamBytes < want && srv.Stats().BudgetCloses == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := srv.Stats()
	during := measureMem(t)
	runtime.GC()
	duringGC := measureMem(t)
	t.Logf("%d connections, each holding a %d-byte partial message sent in %d writes, in %v: StreamBytes %d (%.1f MiB), budget closes %d, streams open %d",
		n, len(part), chunks, time.Since(start).Round(time.Millisecond), st.StreamBytes, float64(st.StreamBytes)/(1<<20), st.BudgetCloses, st.Conns)
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]
	deadline = time.Now().Add(time.Minute)
	for srv.Stats().Conns > 2 && time.Now().Before(deadline) { // the backend's connections stay
		time.Sleep(50 * time.Millisecond)
	}
	closed := measureMem(t)
	time.Sleep(wait)
	runtime.GC()
	debug.FreeOSMemory()
	later := measureMem(t)
	t.Logf("before:                        %v", before)
	t.Logf("held:                          %v", during)
	t.Logf("held, after a GC:              %v  (%.1f KiB RSS per connection over before)", duringGC, float64(duringGC.rss-before.rss)/float64(n)/1024)
	t.Logf("closed:                        %v  (StreamBytes %d)", closed, srv.Stats().StreamBytes)
	t.Logf("%v later, FreeOSMemory: %v", wait, later)
}

// TestMeasureTLSIdleMemory is a measurement, not a test: it runs measureTLSIdle over SIPLB_MEASURE_CONNS (default
// 2000) connections and logs the figures. SIPLB_MEASURE_HEAPPROFILE=file
// writes a heap profile of every allocation while they are held,
// SIPLB_MEASURE_STACKS=1 the goroutines' stacks to stderr.
//
//	go test -tags measure -run TestMeasureTLSIdleMemory -v -timeout 10m ./engine/
func TestMeasureTLSIdleMemory(t *testing.T) {
	n := 2000
	if v := os.Getenv("SIPLB_MEASURE_CONNS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	measureTLSIdle(t, n)
}
