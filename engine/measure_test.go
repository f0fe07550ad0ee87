package engine

import (
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

// tlsIdle is what measureTLSIdle found, in bytes per connection.
type tlsIdle struct {
	heap, stacks, rss float64
}

// measureTLSIdle runs a TLS leg in front of a UDP backend and a child
// process (this test binary, tlsClients) that opens n TLS
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

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), tlsClientsEnv+"="+legs[0].Addr.String(),
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

// tlsClientsEnv, when set to siplb's TLS address, makes the test binary
// run tlsClients instead of the tests (TestMain): measureTLSIdle's child.
const tlsClientsEnv = "SIPLB_MEASURE_TLS_ADDR"

// tlsClients is measureTLSIdle's child process: it opens
// SIPLB_MEASURE_CONNS connections to addr, registers on each, prints
// "ready" and holds them until its stdin closes. It returns the exit code.
func tlsClients(addr string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "tls clients: "+format+"\n", args...)
		return 1
	}
	n, _ := strconv.Atoi(os.Getenv("SIPLB_MEASURE_CONNS"))
	caPEM, err := os.ReadFile(os.Getenv("SIPLB_MEASURE_TLS_CA"))
	if err != nil {
		return fail("%v", err)
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
	buf := make([]byte, 4096)
	for i := range n {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%16)}) // under max_per_ip
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := tls.DialWithDialer(d, "tcp4", addr, cfg)
		if err != nil {
			return fail("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		reg := sip("REGISTER sips:example.com SIP/2.0",
			"Via: SIP/2.0/TLS "+c.LocalAddr().String()+";branch=z9hG4bK-m"+strconv.Itoa(i)+";rport",
			"Max-Forwards: 70", "From: <sips:u"+strconv.Itoa(i)+"@example.com>;tag=a", "To: <sips:u"+strconv.Itoa(i)+"@example.com>",
			"Call-ID: measure-"+strconv.Itoa(i)+"@x", "CSeq: 1 REGISTER", "Contact: <sips:u@"+c.LocalAddr().String()+">",
			"Expires: 3600", "Content-Length: 0")
		if _, err := c.Write(reg); err != nil {
			return fail("connection %d: %v", i, err)
		}
		// The 200 has no body: its head is the whole of it.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := 0
		for !bytes.Contains(buf[:got], []byte("\r\n\r\n")) {
			k, err := c.Read(buf[got:])
			if got += k; err != nil || got == len(buf) {
				return fail("connection %d: %q, %v", i, buf[:got], err)
			}
		}
		if !bytes.HasPrefix(buf[:got], []byte("SIP/2.0 200 ")) {
			return fail("connection %d: got %q", i, buf[:got])
		}
		c.SetReadDeadline(time.Time{})
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}
