// Package load is a SIP load generator over UDP or TCP: it drives OPTIONS,
// REGISTER or whole calls (INVITE, ACK, BYE) at a target, closed loop (a
// window of outstanding transactions) or open loop (a rate of new ones), and
// measures completions, failures, losses, latency and which backend answered.
//
// Each local UDP socket (or TCP connection to the target, framed by
// Content-Length with the product's parser.Frame) has a receiving goroutine; every outstanding
// transaction lives in a slot whose requests are preformatted templates with
// fixed-width hex counters rewritten in place, and whose Call-ID names the
// slot, so matching a response is a parse of the Call-ID and an array index.
// Nothing is allocated per message.
//
// Concurrency: a slot is guarded by its own mutex (taken by the receiver of
// its socket, the timeout reaper and, open loop, the pacer); the histograms
// and tables a receiver fills are its own and are merged after it ends.
package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/siplb/siplb/benchmarks/internal/sipwire"
	"github.com/siplb/siplb/parser"
)

// Scenario is what one unit of load is.
type Scenario uint8

const (
	// Options is one OPTIONS transaction, complete on its 2xx.
	Options Scenario = iota
	// Call is INVITE (with SDP), 100/180/200, ACK, BYE, complete on the BYE's 2xx.
	Call
	// Register is one REGISTER transaction, complete on its 2xx.
	Register
)

// ParseScenario maps "options", "call" or "register" to a Scenario.
func ParseScenario(s string) (Scenario, error) {
	switch s {
	case "options":
		return Options, nil
	case "call":
		return Call, nil
	case "register":
		return Register, nil
	}
	return 0, fmt.Errorf("unknown scenario %q (want options, call or register)", s)
}

// String returns the scenario's name as ParseScenario takes it.
func (s Scenario) String() string {
	switch s {
	case Call:
		return "call"
	case Register:
		return "register"
	}
	return "options"
}

// method is the method of the scenario's first request.
func (s Scenario) method() string {
	switch s {
	case Call:
		return "INVITE"
	case Register:
		return "REGISTER"
	}
	return "OPTIONS"
}

// Transport is how requests travel to the target.
type Transport uint8

const (
	// UDP sends every request as a datagram from one of Sockets local sockets.
	UDP Transport = iota
	// TCP opens Sockets connections to the target; each unit's requests go
	// over one of them, its Via names the connection's local address, and
	// its responses may come back on any of them.
	TCP
)

// ParseTransport maps "udp" or "tcp" to a Transport.
func ParseTransport(s string) (Transport, error) {
	switch s {
	case "udp":
		return UDP, nil
	case "tcp":
		return TCP, nil
	}
	return 0, fmt.Errorf("unknown transport %q (want udp or tcp)", s)
}

// String returns the transport's name as ParseTransport takes it.
func (t Transport) String() string {
	if t == TCP {
		return "tcp"
	}
	return "udp"
}

// viaProto is the sent-protocol of a Via (RFC 3261 §20.42), with the space
// that follows it.
func (t Transport) viaProto() string {
	if t == TCP {
		return "SIP/2.0/TCP "
	}
	return "SIP/2.0/UDP "
}

// uriParam is the transport parameter of a Contact URI (RFC 3261 §19.1.1);
// empty for UDP, the default.
func (t Transport) uriParam() string {
	if t == TCP {
		return ";transport=tcp"
	}
	return ""
}

// Defaults of Config's zero fields.
const (
	DefaultDuration = 30 * time.Second
	DefaultDrain    = 2 * time.Second
	DefaultWindow   = 100
	DefaultSockets  = 4
	DefaultTimeout  = 2 * time.Second
)

// maxSlots bounds the slot table of an open-loop run.
const maxSlots = 1 << 20

// Config is one load run. Zero fields take the defaults above.
type Config struct {
	Target    string        // host:port every request is sent to (required)
	Scenario  Scenario      // what one unit of load is
	N         int           // units to start; 0: as many as Duration allows
	Duration  time.Duration // stop starting units after this (default 30s)
	Drain     time.Duration // then wait this long for answers (default 2s)
	Window    int           // closed loop: units outstanding at once (default 100)
	Rate      float64       // open loop: units started per second; 0: closed loop
	Sockets   int           // local UDP sockets, or TCP connections to the target, on its loopback or unspecified address (default 4)
	Transport Transport     // UDP (default) or TCP
	Timeout   time.Duration // per transaction; then the unit counts as lost (default 2s)
	// Progress, when set, is called about ten times a second from Run's
	// goroutine with the units finished (completed, failed or lost) and started.
	Progress func(done, sent uint64)
}

func (c *Config) setDefaults() {
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Sockets <= 0 {
		c.Sockets = DefaultSockets
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
}

// runner is the state of one Run.
type runner struct {
	cfg      Config
	target   netip.AddrPort
	targetS  string
	base     time.Time
	runTag   [8]byte // hex, distinguishes this run's Call-IDs and branches
	socks    []*sock
	slots    []*slot
	free     chan uint32 // open loop: idle slots
	timeoutN int64

	started     atomic.Uint64
	completed   atomic.Uint64
	failed      atomic.Uint64
	lost        atomic.Uint64
	outstanding atomic.Int64
	stopping    atomic.Bool
}

// Run drives the load described by cfg until N units are finished, the
// Duration plus Drain has passed or ctx is done, and returns what it
// measured. It returns an error only when it cannot start (bad target,
// sockets); failures of the load itself are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	target, err := resolve(cfg.Target)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, target: target, targetS: target.String(), timeoutN: int64(cfg.Timeout)}
	seed := uint32(time.Now().UnixNano()) ^ uint32(target.Port())<<16
	copy(r.runTag[:], appendHex32(nil, seed))

	if err := r.openSockets(); err != nil {
		r.closeSockets()
		return nil, err
	}

	nslots := cfg.Window
	if cfg.Rate > 0 {
		nslots = int(min(cfg.Rate*(cfg.Timeout.Seconds()+0.5), maxSlots)) + cfg.Window
	}
	if cfg.N > 0 {
		nslots = min(nslots, cfg.N)
	}
	r.slots = make([]*slot, nslots)
	for i := range r.slots {
		r.slots[i] = r.newSlot(uint32(i), r.socks[i%len(r.socks)])
	}

	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	r.base = time.Now()

	if cfg.Rate > 0 {
		r.free = make(chan uint32, nslots)
		for i := range r.slots {
			r.free <- uint32(i)
		}
	}

	var wg sync.WaitGroup
	for _, sk := range r.socks {
		wg.Go(func() { r.receive(sk) })
	}
	quit := make(chan struct{})
	wg.Go(func() { r.reap(quit) })
	if cfg.Rate > 0 {
		wg.Go(func() { r.pace(quit) })
	} else {
		for _, s := range r.slots {
			if !r.tryStart() {
				break
			}
			r.outstanding.Add(1)
			s.mu.Lock()
			r.begin(s, r.now())
			s.mu.Unlock()
		}
	}

	end := r.control(ctx)
	r.stopping.Store(true)
	close(quit)
	r.closeSockets()
	wg.Wait()

	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	res := r.result(end, cpuTime(&ru1)-cpuTime(&ru0))
	return res, nil
}

// control waits for the run to end and reports progress; it returns the
// time the run ended.
func (r *runner) control(ctx context.Context) time.Duration {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var stopAt time.Duration = -1
	var lastProgress time.Duration
	for {
		select {
		case <-ctx.Done():
			return r.now()
		case <-tick.C:
		}
		now := r.now()
		if stopAt < 0 && (now >= r.cfg.Duration || r.budgetSpent()) {
			stopAt = now
			r.stopping.Store(true)
		}
		if r.cfg.Progress != nil && (now-lastProgress >= 100*time.Millisecond) {
			lastProgress = now
			r.cfg.Progress(r.completed.Load()+r.failed.Load()+r.lost.Load(), r.started.Load())
		}
		if stopAt >= 0 && r.outstanding.Load() == 0 {
			return now
		}
		if stopAt >= 0 && now-stopAt >= r.cfg.Drain {
			return now
		}
	}
}

// budgetSpent reports whether N units have been started.
func (r *runner) budgetSpent() bool {
	return r.cfg.N > 0 && r.started.Load() >= uint64(r.cfg.N)
}

// tryStart takes one unit from the budget; false once stopping or spent.
func (r *runner) tryStart() bool {
	for {
		if r.stopping.Load() {
			return false
		}
		cur := r.started.Load()
		if r.cfg.N > 0 && cur >= uint64(r.cfg.N) {
			return false
		}
		if r.started.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

// now is the monotonic time since the run began.
func (r *runner) now() time.Duration { return time.Since(r.base) }

// pace starts units at cfg.Rate per second until quit or the budget ends.
func (r *runner) pace(quit <-chan struct{}) {
	var begun uint64
	for {
		select {
		case <-quit:
			return
		default:
		}
		now := r.now()
		due := uint64(now.Seconds()*r.cfg.Rate) + 1
		for begun < due {
			var idx uint32
			select {
			case idx = <-r.free:
			default:
				// Every slot is busy: wait for answers or timeouts.
				goto sleep
			}
			if !r.tryStart() {
				r.free <- idx
				return
			}
			begun++
			r.outstanding.Add(1)
			s := r.slots[idx]
			s.mu.Lock()
			r.begin(s, now)
			s.mu.Unlock()
		}
	sleep:
		time.Sleep(time.Millisecond)
	}
}

// reap counts the units whose transaction timed out as lost.
func (r *runner) reap(quit <-chan struct{}) {
	period := min(max(r.cfg.Timeout/20, time.Millisecond), 50*time.Millisecond)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case <-tick.C:
		}
		now := int64(r.now())
		for _, s := range r.slots {
			if d := s.deadline.Load(); d == 0 || now < d {
				continue
			}
			s.mu.Lock()
			if s.phase != phaseIdle && now >= s.deadline.Load() {
				r.lost.Add(1)
				r.finish(s, r.now())
			}
			s.mu.Unlock()
		}
	}
}

// openSockets opens cfg.Sockets local UDP sockets, or TCP connections to
// the target, from the target's loopback address when it is a loopback one.
func (r *runner) openSockets() error {
	local := netip.IPv4Unspecified()
	if r.target.Addr().Is6() {
		local = netip.IPv6Unspecified()
	}
	if r.target.Addr().IsLoopback() {
		local = r.target.Addr()
		if local.Is4() {
			local = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	for range r.cfg.Sockets {
		if r.cfg.Transport == TCP {
			c, err := net.DialTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0)),
				net.TCPAddrFromAddrPort(r.target))
			if err != nil {
				return fmt.Errorf("load: connect to %s: %w", r.target, err)
			}
			r.socks = append(r.socks, newStreamSock(c))
			continue
		}
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
		if err != nil {
			return fmt.Errorf("load: local socket: %w", err)
		}
		_ = c.SetReadBuffer(8 << 20)
		_ = c.SetWriteBuffer(8 << 20)
		r.socks = append(r.socks, newSock(c))
	}
	return nil
}

// receive reads and matches the responses arriving on sk until it is closed.
func (r *runner) receive(sk *sock) {
	if sk.stream != nil {
		r.receiveStream(sk)
		return
	}
	for {
		n, _, err := sk.conn.ReadFromUDPAddrPort(sk.buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors (nothing listening at the target yet) are
			// reported on a later read; the timeouts count the loss.
			continue
		}
		r.onMessage(sk, sk.buf[:n], r.now())
	}
}

// receiveStream reads the TCP connection of sk until it is closed or
// broken, and matches every complete response it frames.
func (r *runner) receiveStream(sk *sock) {
	for {
		if sk.have == len(sk.buf) {
			// A message larger than the buffer: nothing sipload provokes.
			sk.invalid++
			return
		}
		n, err := sk.stream.Read(sk.buf[sk.have:])
		if n > 0 {
			sk.have += n
			if !r.frame(sk, r.now()) {
				return
			}
		}
		if err != nil {
			// Closed by Run, or by the target: what is outstanding on this
			// connection times out and counts as lost.
			return
		}
	}
}

// frame matches every complete message buffered in sk and keeps the
// incomplete tail at the front of sk.buf; false when the stream cannot be
// framed.
func (r *runner) frame(sk *sock, now time.Duration) bool {
	off, ok := 0, true
	for off < sk.have {
		n, kind, err := parser.Frame(sk.buf[off:sk.have], parser.Limits{})
		if err != nil {
			sk.invalid++
			ok = false
			break
		}
		if n == 0 {
			break
		}
		if kind == parser.FrameMessage {
			r.onMessage(sk, sk.buf[off:off+n], now)
		}
		off += n
	}
	sk.have = copy(sk.buf, sk.buf[off:sk.have])
	return ok
}

// onMessage scans one received message and matches it if it is a response.
func (r *runner) onMessage(sk *sock, b []byte, now time.Duration) {
	m := &sk.msg
	if !sipwire.Scan(m, b) {
		sk.invalid++
		return
	}
	if m.Request {
		sk.unmatched++
		return
	}
	r.onResponse(sk, m, now)
}

func (r *runner) closeSockets() {
	for _, sk := range r.socks {
		if sk.stream != nil {
			sk.stream.Close()
		} else {
			sk.conn.Close()
		}
	}
}

// resolve turns host:port into an address, resolving a name once.
func resolve(target string) (netip.AddrPort, error) {
	if target == "" {
		return netip.AddrPort{}, errors.New("load: no target")
	}
	if ap, err := netip.ParseAddrPort(target); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	ua, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("load: target %q: %w", target, err)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func cpuTime(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
