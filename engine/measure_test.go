package engine

import (
	"golang.org/x/sys/unix"

	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/pool"
	siptls "github.com/siplb/siplb/tls"
)

// memFigures is what the process holds at one moment.
type memFigures struct {
	rss, heapInuse, heapSys uint64
}

func (m memFigures) String() string {
	return fmt.Sprintf("RSS %6.1f MiB, heap in use %6.1f MiB, heap from the OS %6.1f MiB",
		float64(m.rss)/(1<<20), float64(m.heapInuse)/(1<<20), float64(m.heapSys)/(1<<20))
}

func measureMem(t *testing.T) memFigures {
	t.Helper()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f := memFigures{heapInuse: ms.HeapInuse, heapSys: ms.HeapSys - ms.HeapReleased}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			f.rss = kb << 10
		}
	}
	return f
}

// TestMeasureStreamMemory is a measurement, not a test: with SIPLB_MEASURE=1
// it opens SIPLB_MEASURE_CONNS (default 4000) TCP connections from 16
// loopback addresses, each sending a 60 KB part of a 65000-byte body in
// SIPLB_MEASURE_CHUNKS (default 4) writes, every connection's first write
// before any second one, so that each arrives in as many reads, and
// reports the memory of the process (siplb and the clients) before, while
// they are held, right after they close, and SIPLB_MEASURE_WAIT (default
// 1m) later with debug.FreeOSMemory. It needs about 2.1 descriptors per
// connection (it raises RLIMIT_NOFILE to the hard limit).
//
//	SIPLB_MEASURE=1 go test -run TestMeasureStreamMemory -v -timeout 10m ./engine/
func TestMeasureStreamMemory(t *testing.T) {
	if os.Getenv("SIPLB_MEASURE") == "" {
		t.Skip("a measurement: set SIPLB_MEASURE=1")
	}
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

// TestMeasureTLSIdleMemory is a measurement, not a test: with
// SIPLB_MEASURE=1 it runs measureTLSIdle over SIPLB_MEASURE_CONNS (default
// 2000) connections and logs the figures. SIPLB_MEASURE_HEAPPROFILE=file
// writes a heap profile of every allocation while they are held,
// SIPLB_MEASURE_STACKS=1 the goroutines' stacks to stderr.
//
//	SIPLB_MEASURE=1 go test -run TestMeasureTLSIdleMemory -v -timeout 10m ./engine/
func TestMeasureTLSIdleMemory(t *testing.T) {
	if os.Getenv("SIPLB_MEASURE") == "" {
		t.Skip("a measurement: set SIPLB_MEASURE=1")
	}
	n := 2000
	if v := os.Getenv("SIPLB_MEASURE_CONNS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	measureTLSIdle(t, n)
}

// tlsIdle is what measureTLSIdle found, in bytes per connection.
type tlsIdle struct {
	heap, stacks, rss float64
}

// measureTLSIdle runs a TLS leg in front of a UDP backend and a child
// process (this test binary, TestMeasureTLSClients) that opens n TLS
// connections from 16 loopback addresses, sends one REGISTER on each and
// reads its 200, then leaves them idle. The clients live in the child so
// that what is measured is siplb's alone. It reports, per connection, the
// heap and goroutine stacks in use and the RSS over the figures before the
// connections opened, after a few GCs (a GC is also when the runtime
// shrinks the stacks that grew), and logs them with the figures found
// before the GCs.
func measureTLSIdle(t *testing.T, n int) tlsIdle {
	t.Helper()
	if os.Getenv("SIPLB_MEASURE_HEAPPROFILE") != "" {
		defer func(r int) { runtime.MemProfileRate = r }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1 // every allocation, for the profile written while they are held
	}
	pki := newTestPKI(t)
	store, err := siptls.NewStore(siptls.Config{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile})
	if err != nil {
		t.Fatal(err)
	}
	uas := startUAS(t)
	legs := []LegConfig{
		{Transport: balance.TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"), TLS: store},
		{Transport: balance.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	srv := startLegs(t, legs, balance.BackendConfig{Addr: uas.addr})

	settle := func() (memFigures, runtime.MemStats) {
		for range 4 {
			runtime.GC()
		}
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return measureMem(t), ms
	}
	before, msBefore := settle()
	gBefore := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-test.run=^TestMeasureTLSClients$", "-test.v")
	cmd.Env = append(os.Environ(), "SIPLB_MEASURE_TLS_ADDR="+legs[0].Addr.String(),
		"SIPLB_MEASURE_TLS_CA="+pki.caFile, "SIPLB_MEASURE_CONNS="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		line := sc.Text()
		t.Log("clients: " + line)
		if strings.HasPrefix(line, "ready") {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("the clients did not get ready")
	}
	go io.Copy(io.Discard, stdout)
	opened := time.Since(start)
	var msFound runtime.MemStats
	runtime.ReadMemStats(&msFound)
	found := measureMem(t)
	held, msHeld := settle()
	if p := os.Getenv("SIPLB_MEASURE_HEAPPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	if os.Getenv("SIPLB_MEASURE_STACKS") != "" {
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
	}
	st := srv.Stats()
	perConn := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) / 1024 }
	t.Logf("%d idle TLS connections after one REGISTER each (opened in %v); streams open %d, handshake failures %d",
		n, opened.Round(time.Millisecond), st.Conns, st.TLSHandshakeFailures)
	t.Logf("before: %v, stacks %.1f MiB, %d goroutines", before, float64(msBefore.StackInuse)/(1<<20), gBefore)
	t.Logf("held:   %v, stacks %.1f MiB, %d goroutines", held, float64(msHeld.StackInuse)/(1<<20), runtime.NumGoroutine())
	t.Logf("per connection as found, before a GC: heap %.1f KiB (live and garbage) + stacks %.1f KiB; RSS %.1f KiB",
		perConn(msFound.HeapInuse, msBefore.HeapInuse), perConn(msFound.StackInuse, msBefore.StackInuse), perConn(found.rss, before.rss))
	t.Logf("per connection: heap %.1f KiB + stacks %.1f KiB = %.1f KiB; RSS %.1f KiB; goroutines %.2f",
		perConn(msHeld.HeapInuse, msBefore.HeapInuse), perConn(msHeld.StackInuse, msBefore.StackInuse),
		perConn(msHeld.HeapInuse+msHeld.StackInuse, msBefore.HeapInuse+msBefore.StackInuse),
		perConn(held.rss, before.rss), float64(runtime.NumGoroutine()-gBefore)/float64(n))
	return tlsIdle{
		heap:   perConn(msHeld.HeapInuse, msBefore.HeapInuse) * 1024,
		stacks: perConn(msHeld.StackInuse, msBefore.StackInuse) * 1024,
		rss:    perConn(held.rss, before.rss) * 1024,
	}
}

// TestMeasureTLSClients is TestMeasureTLSIdleMemory's child process: it
// opens the connections, prints "ready" and holds them until its stdin
// closes.
func TestMeasureTLSClients(t *testing.T) {
	addr := os.Getenv("SIPLB_MEASURE_TLS_ADDR")
	if addr == "" {
		t.Skip("the child of TestMeasureTLSIdleMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("SIPLB_MEASURE_CONNS"))
	caPEM, err := os.ReadFile(os.Getenv("SIPLB_MEASURE_TLS_CA"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	conns := make([]*tls.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%16)}) // under max_per_ip
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := tls.DialWithDialer(d, "tcp4", addr, cfg)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		reg := sip("REGISTER sips:example.com SIP/2.0",
			"Via: SIP/2.0/TLS "+c.LocalAddr().String()+";branch=z9hG4bK-m"+strconv.Itoa(i)+";rport",
			"Max-Forwards: 70", "From: <sips:u"+strconv.Itoa(i)+"@example.com>;tag=a", "To: <sips:u"+strconv.Itoa(i)+"@example.com>",
			"Call-ID: measure-"+strconv.Itoa(i)+"@x", "CSeq: 1 REGISTER", "Contact: <sips:u@"+c.LocalAddr().String()+">",
			"Expires: 3600", "Content-Length: 0")
		if _, err := c.Write(reg); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if got := readResponses(t, c, 1, 5*time.Second); len(got) != 1 || !bytes.HasPrefix(got[0], []byte("SIP/2.0 200 ")) {
			t.Fatalf("connection %d: got %q", i, got)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}
