package engine

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/fnv1a"
	"github.com/siplb/siplb/internal/guard"
	"github.com/siplb/siplb/internal/mmsg"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// DefaultUDPMTU is RFC 3261 §18.1.1's bound on a request over UDP when
// the path MTU is unknown.
const DefaultUDPMTU = 1300

// DefaultRetryAfter is the Retry-After, in seconds, of the stateless 503 sent
// when a pool has no backend to take a request.
const DefaultRetryAfter = 5

// Config configures the data path. The zero value of each field means the
// documented default.
type Config struct {
	Legs []LegConfig
	// DisableRecordRoute stops siplb inserting Record-Route (on by default,
	// so in-dialog requests come back through the balancer).
	DisableRecordRoute bool
	// RetryAfter is the Retry-After of a 503 (default DefaultRetryAfter).
	RetryAfter int
	// Limits bound the header and body of a message (parser defaults).
	Limits parser.Limits
	// Resolver finds next hops named by domain (RFC 3263) for requests a
	// backend sends; nil drops them (counted as unresolvable).
	Resolver *balance.Resolver
	// OutgoingProxy, if set, takes the requests a backend sends towards
	// destinations that are neither a pool member nor a client flow
	// (Dispatcher outgoing_proxy): a URI or host[:port].
	OutgoingProxy string
	// Domains maps a destination domain to the proxy that takes it
	// (Dispatcher domain2proxy); it wins over OutgoingProxy.
	Domains *balance.DomainMap
	// BranchSecret keys the MACs of every token siplb mints (Via branches,
	// flow tokens, rewritten Contacts). Instances that accept each other's
	// tokens (anycast, ECMP, a restart) need the same one. Empty: a random
	// secret for this Forwarder alone, so tokens do not survive a restart.
	BranchSecret string
	// PreviousSecrets still verify tokens but sign none (a rotation's grace
	// period); SetSecrets changes both at run time.
	PreviousSecrets []string
	// RewriteContact rewrites a client's Contact into one of siplb's that
	// carries the client's flow, when the request changes legs (the
	// StatelessProxy page's rewrite_contact); ForceRewrite does it on the
	// same leg too (force_rewrite).
	RewriteContact, ForceRewrite bool
	// URISchemes are the Request-URI schemes siplb routes; others get 416
	// (RFC 3261 §16.3 step 2). Empty: DefaultURISchemes.
	URISchemes []string
	// ProxyRequire are the option tags siplb supports in a Proxy-Require;
	// a request requiring any other gets 420 Bad Extension with an
	// Unsupported header naming them (§16.3 step 5). Empty: none.
	ProxyRequire []string
	// UDPMTU bounds a request sent over UDP (RFC 3261 §18.1.1: 1300 bytes
	// unless configured): a larger one goes to a member that takes TCP too
	// (BackendConfig.AlsoTCP) over TCP; otherwise it is sent as it is and
	// counted (Counters.LargeUDP). 0: DefaultUDPMTU.
	UDPMTU int
	// Guard, if set, applies the edge defences: the flood detector, the
	// scanner filter and the limit on stateless replies (admit.go).
	Guard *guard.Guard
	// Log takes the rare events of the data path (a source blocked); nil
	// discards them.
	Log *slog.Logger
}

// Forwarder holds the stateless forwarding rules of RFC 3261 §16 and §16.11.
// It is immutable and shared by every event loop; what changes per message
// lives in a Scratch.
type Forwarder struct {
	legs        []*Leg
	byTransport [balance.NumTransports]*Leg // the first leg of each transport: where requests to a backend of that transport leave
	bal         *balance.Balancer
	recordRoute bool
	retryAfter  []byte // "Retry-After: 5\r\n"
	limits      parser.Limits
	probes      ProbeHandler
	observer    Observer
	capture     Capture // mirrors messages to a collector (capture.go); nil: off
	resolver    *balance.Resolver
	proxy       parser.URI // OutgoingProxy parsed; Host nil when none
	proxyRaw    []byte
	domains     *balance.DomainMap
	hops        domainHops // domains' values parsed (route.go)

	rewriteContact, forceRewrite bool
	ring                         atomic.Pointer[keyRing] // keys every token's MAC (mac.go)
	guard                        *guard.Guard
	log                          *slog.Logger
	clock                        atomic.Int64     // coarse UnixNano for the defences, advanced by the running server while there is traffic; 0: read the wall clock
	clockUsed                    atomic.Bool      // the coarse clock was read since the last tick
	clockWake                    chan struct{}    // restarts a parked clock (capacity 1)
	onBlock                      func(netip.Addr) // told of a source blocked anew (the server's kernel filter); set before the server runs
	schemes, proxyRequire        [][]byte         // lower-cased URISchemes and ProxyRequire
	draining                     atomic.Bool      // Server.Drain with RejectNewDialogs: a new dialog from outside gets 503
	scratches                    atomic.Int64     // Scratches made: each gets a stripe of the backends' counters
	mtu                          int              // UDPMTU
}

// ProbeHandler consumes the replies to health probes (balance.Checker).
type ProbeHandler interface {
	// Response reports whether a response with this top Via branch was a
	// probe of the handler's; such a response is consumed, never forwarded.
	Response(branch []byte, status int) bool
}

// probeBranchLen is the length of a probe's branch: our prefix and "ff",
// 16 hex digits of probe id and 8 of zeros.
const probeBranchLen = branchTxOff + 16 + 8

// SetProbes routes the replies to health probes to h. Call it before the
// server runs.
func (f *Forwarder) SetProbes(h ProbeHandler) { f.probes = h }

// Observer is told the status of every final response that siplb routes
// back (its top Via is one of siplb's), with its source, for passive health
// detection (a run of 5xx from a backend; responses from one that ignores
// probes).
type Observer interface {
	Observe(src netip.AddrPort, status int)
}

// SetObserver reports final responses to o. Call it before the server runs.
func (f *Forwarder) SetObserver(o Observer) { f.observer = o }

// ProbeIdentity is what health probes say about their sender: the first
// UDP leg (else the first leg), its sent-by, and a branch prefix no forwarded
// request uses.
func (f *Forwarder) ProbeIdentity() (transport, sentBy, branchPrefix string) {
	l := f.byTransport[balance.UDP]
	if l == nil {
		l = f.legs[0]
	}
	return l.Transport.ViaName(), string(l.sentBy), branchCookie + string(l.tag[:]) + "ff"
}

// NewForwarder checks cfg against the pools of bal and builds the legs.
func NewForwarder(cfg Config, bal *balance.Balancer) (*Forwarder, error) {
	if len(cfg.Legs) == 0 {
		return nil, errors.New("no listener configured")
	}
	if len(cfg.Legs) > maxLegs {
		return nil, fmt.Errorf("%d listeners: at most %d", len(cfg.Legs), maxLegs)
	}
	if bal == nil || bal.Table().NumPools() == 0 {
		return nil, errors.New("no backend pool configured")
	}
	f := &Forwarder{bal: bal, recordRoute: !cfg.DisableRecordRoute, limits: cfg.Limits, clockWake: make(chan struct{}, 1),
		resolver: cfg.Resolver, domains: cfg.Domains,
		rewriteContact: cfg.RewriteContact || cfg.ForceRewrite, forceRewrite: cfg.ForceRewrite,
		guard: cfg.Guard, log: cfg.Log, proxyRequire: lowerAll(cfg.ProxyRequire)}
	if len(cfg.URISchemes) > 0 {
		f.schemes = lowerAll(cfg.URISchemes)
	} else {
		f.schemes = lowerAll(DefaultURISchemes)
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.mtu = cfg.UDPMTU
	if f.mtu <= 0 {
		f.mtu = DefaultUDPMTU
	}
	if cfg.OutgoingProxy != "" {
		u, err := proxyURI(cfg.OutgoingProxy)
		if err != nil {
			return nil, fmt.Errorf("outgoing proxy %q: %w", cfg.OutgoingProxy, err)
		}
		f.proxyRaw = u
		if err := parser.ParseURI(&f.proxy, f.proxyRaw); err != nil {
			return nil, fmt.Errorf("outgoing proxy %q: %w", cfg.OutgoingProxy, err)
		}
	}
	ra := cfg.RetryAfter
	if ra <= 0 {
		ra = DefaultRetryAfter
	}
	f.retryAfter = []byte("Retry-After: " + strconv.Itoa(ra) + "\r\n")
	t := bal.Table()
	for i, lc := range cfg.Legs {
		pool := balance.PoolID(0)
		if lc.Pool != "" {
			id, ok := t.PoolByName(lc.Pool)
			if !ok {
				return nil, fmt.Errorf("listener %d (%s): pool %q is not configured", i, lc.Addr, lc.Pool)
			}
			pool = id
		}
		l, err := newLeg(i, lc, pool)
		if err != nil {
			return nil, fmt.Errorf("listener %d (%s): %w", i, lc.Addr, err)
		}
		for _, o := range f.legs {
			if o.tag == l.tag {
				return nil, fmt.Errorf("listener %d (%s): advertises the same %s as listener %d", i, lc.Addr, l.sentBy, o.Index)
			}
		}
		f.legs = append(f.legs, l)
		if f.byTransport[l.Transport] == nil {
			f.byTransport[l.Transport] = l
		}
	}
	secret := cfg.BranchSecret
	if secret == "" {
		// Never a value derived from what siplb shows (its legs): a
		// random one, good for this process only.
		var b [32]byte
		rand.Read(b[:])
		secret = hex.EncodeToString(b[:])
	}
	f.SetSecrets(secret, cfg.PreviousSecrets...)
	for i := range t.NumPools() {
		for _, b := range t.Pool(balance.PoolID(i)).Backends() {
			if f.byTransport[b.Transport] == nil {
				return nil, fmt.Errorf("backend %s: no %s listener to send from", b.Addr, b.Transport)
			}
		}
	}
	return f, nil
}

// Legs returns the legs in configuration order.
func (f *Forwarder) Legs() []*Leg { return f.legs }

// Result is what to do with one received message. Out aliases the Scratch's
// buffer: valid until the next Process with that Scratch.
type Result struct {
	Out      []byte         // bytes to send; nil when the message is dropped
	To       netip.AddrPort // where to send Out
	Sockaddr unix.Sockaddr  // To, ready for sendto: the Scratch's own, overwritten by the next Process
	Leg      *Leg           // the leg whose socket sends Out
	Conn     pool.ConnID    // for TCP/TLS: the connection to write to; if it has closed, open one to To
	Drop     Drop           // why nothing is sent; DropNone when Out is set
	Status   int            // status of a reply siplb made itself, 0 when forwarding

	// Resolve is set, and nothing else, when the next hop is a domain whose
	// resolution is not cached: resolve it off the data path, then process
	// the message again.
	Resolve *DNSQuestion
}

// DNSQuestion is a next hop to resolve (RFC 3263) before a message can go.
type DNSQuestion struct {
	Host      string
	Port      uint16
	Transport string
	Secure    bool
}

// Scratch is the per-event-loop state of the hot path: the parsed message,
// the output buffer and the counters. Owned by one goroutine at a time.
type Scratch struct {
	stripe   int  // the stripe of balance.BackendStats this Scratch counts in
	toMember bool // the response being processed answers a request siplb sent to a pool member
	Msg      parser.Message
	Counters Counters

	inConn pool.ConnID // the connection the message being processed came in on

	capture captured // the packets handed to Forwarder.capture (capture.go)

	out     []byte
	rr      []byte
	path    []byte // the Path values added to a REGISTER
	route   []byte // the Route value a strict next hop gets (§16.6 step 6)
	orig    []byte // a restored Contact URI
	contact []byte // a rewritten Contact URI
	ext     []byte // unsupported Proxy-Require tags
	extra   []byte // an extra header line of a stateless reply
	via     []byte
	recv    []byte
	tag     []byte
	repl    []byte     // the Call-ID a Refer-To's Replaces names, unescaped
	ocVia   []byte     // the parameters of siplb's Via in the response being processed, where its overload report would be
	routes  routeCache // the Route values of the request being processed (request.go)
	src     srcMember  // what the Table says of the message's source, asked once (request.go)
	edits   parser.Edits
	sa4     unix.SockaddrInet4
	sa6     unix.SockaddrInet6
}

// NewScratch returns a Scratch with buffers sized for the largest message.
func (f *Forwarder) NewScratch() *Scratch {
	lim := f.limits
	if lim.MaxHeader <= 0 {
		lim.MaxHeader = parser.DefaultMaxHeader
	}
	if lim.MaxBody <= 0 {
		lim.MaxBody = parser.DefaultMaxBody
	}
	s := &Scratch{
		out:     make([]byte, 0, lim.MaxHeader+lim.MaxBody+1024),
		via:     make([]byte, 0, 256),
		rr:      make([]byte, 0, 256),
		path:    make([]byte, 0, 256),
		route:   make([]byte, 0, 256),
		orig:    make([]byte, 0, 256),
		contact: make([]byte, 0, 512),
		ext:     make([]byte, 0, 128),
		extra:   make([]byte, 0, 160),
		recv:    make([]byte, 0, 64),
		tag:     make([]byte, 0, 16),
		repl:    make([]byte, 0, maxReplacesCallID),
	}
	s.Msg.Limits = f.limits
	s.stripe = int(f.scratches.Add(1))
	return s
}

// Process applies the forwarding rules to one message b received from src on
// leg in. It never panics on network input and allocates nothing in steady
// state.
func (f *Forwarder) Process(s *Scratch, b []byte, src netip.AddrPort, in *Leg) Result {
	return f.ProcessConn(s, b, src, in, 0)
}

// ProcessConn is Process for a message that came in on the TCP/TLS
// connection conn.
func (f *Forwarder) ProcessConn(s *Scratch, b []byte, src netip.AddrPort, in *Leg, conn pool.ConnID) Result {
	if f.capture != nil {
		return f.processCaptured(s, b, src, in, conn)
	}
	return f.processConn(s, b, src, in, conn)
}

// processConn is ProcessConn's work; processCaptured wraps it when capture is on.
func (f *Forwarder) processConn(s *Scratch, b []byte, src netip.AddrPort, in *Leg, conn pool.ConnID) Result {
	s.inConn = conn
	if d := f.admit(s, src, in); d != DropNone {
		return Result{Drop: d}
	}
	if isKeepAlive(b) {
		// A bare CRLF datagram is a NAT keep-alive (RFC 5626 §3.5.1 uses it
		// on streams; many UAs send it over UDP too): nothing to answer.
		s.Counters.KeepAlives.Add(1)
		return Result{}
	}
	m := &s.Msg
	if err := parser.Parse(m, b); err != nil {
		return f.malformed(s, b, src, in, err)
	}
	// The counters are counted after the work, next to each other: each
	// atomic add waits for every store before it to drain, and the parse
	// and the edits leave many.
	if !m.IsRequest() {
		r := f.response(s)
		s.Counters.ResponsesIn.Add(1)
		if r.Out != nil {
			s.Counters.ResponsesOut.Add(1)
			// Only a response to a request siplb forwarded (its top Via
			// passed the branch MAC) tells of a backend's health: one with
			// a forged source must not keep a dead backend up (passive
			// success) or mark a live one down (a run of 5xx). Probe
			// replies go to the Checker by Response.
			if s.toMember {
				if f.observer != nil && m.StatusCode() >= 200 {
					f.observer.Observe(src, m.StatusCode())
				}
				t := f.bal.Table()
				if be, ok := s.src.lookup(t, src); ok {
					be.Stats.Response(s.stripe, m.StatusCode())
					f.recordOverload(s, t, be)
				}
			}
		}
		return r
	}
	if f.scanner(s) {
		// Silently: an answer tells a scanner there is something here.
		s.Counters.RequestsIn.Add(1)
		return s.drop(DropScanner)
	}
	r := f.request(s, src, in)
	s.Counters.RequestsIn.Add(1)
	if r.Out != nil && r.Status == 0 {
		s.Counters.RequestsOut.Add(1)
	}
	return r
}

// malformed answers a request that failed to parse with the status its error
// carries, sent back to where it came from; a malformed response, or an ACK
// (which gets no response, §17.2.1), is dropped and counted.
func (f *Forwarder) malformed(s *Scratch, b []byte, src netip.AddrPort, in *Leg, err error) Result {
	if len(b) >= 4 && string(b[:4]) == "SIP/" {
		return s.drop(DropMalformedResponse)
	}
	if !looksLikeRequestLine(b) {
		// Neither a request nor a response: nobody to answer.
		return s.drop(DropNotSIP)
	}
	s.Counters.RequestsIn.Add(1)
	if hasPrefixFold(b, "ack ") {
		return s.drop(DropMalformedRequest)
	}
	pe, ok := errors.AsType[*parser.Error](err)
	if !ok {
		pe = parser.ErrBadRequest
	}
	if !f.allowReply(s, src, in) {
		return Result{Drop: DropReplyLimited}
	}
	h := fnv1a.Add(fnv1a.Offset, b[:min(len(b), 256)])
	s.tag = append(s.tag[:0], "lb"...)
	s.tag = appendHex(s.tag, h, 12)
	out, ok := appendRawReply(s.out[:0], b, pe.Status, pe.Reason, s.tag)
	if !ok {
		return s.drop(DropMalformedRequest)
	}
	s.Counters.countReply(pe.Status)
	// The Via may be the defect: answer the address the request came from.
	return Result{Out: out, To: src, Sockaddr: s.sockaddr(src), Leg: in, Conn: s.inConn, Status: pe.Status}
}

// isKeepAlive reports whether b holds only CR, LF and blanks (at most 8).
func isKeepAlive(b []byte) bool {
	if len(b) == 0 || len(b) > 8 {
		return false
	}
	for _, c := range b {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' && c != 0 {
			return false
		}
	}
	return true
}

// response routes a response back along the Via chain (§16.7, §16.11): the
// top Via must be one of ours (Leg check_via); it is removed and the next one
// says where the response goes.
func (f *Forwarder) response(s *Scratch) Result {
	m := &s.Msg
	// The top Via and the next one are all a response needs: walk to them
	// rather than split the whole Via list.
	vias := m.Vias()
	var top, next parser.Via
	if !vias.Next(&top) {
		return s.drop(DropMalformedResponse)
	}
	if len(top.Branch) == probeBranchLen && f.probes != nil && f.probes.Response(top.Branch, m.StatusCode()) {
		s.Counters.ProbeReplies.Add(1)
		return Result{Drop: DropNone}
	}
	_, in, conn, ok := f.ourBranch(top.Branch)
	if !ok {
		return s.drop(DropForeignVia)
	}
	s.toMember = branchToMember(top.Branch)
	if s.ocVia = nil; s.toMember {
		s.ocVia = top.Params // read by recordOverload if the member's pool has overload control
	}
	if !vias.Next(&next) {
		if vias.Err() != nil {
			return s.drop(DropMalformedResponse)
		}
		return s.drop(DropNoNextHop)
	}
	dst, ok := viaDestination(&next)
	if !ok {
		return s.drop(DropUnresolvable)
	}
	s.edits = parser.Edits{RemoveTopVia: true, ContentLength: in.Transport != balance.UDP}
	if f.rewriteContact && m.NumContact() > 0 {
		// A Contact siplb rewrote goes back to the client as the client wrote it.
		if cu, err := m.Contact(0); err == nil && f.legFor(&cu) != nil {
			if _, orig, ok := f.ring.Load().unrewriteContact(s.orig[:0], &cu); ok {
				s.orig = orig
				s.edits.Contact = s.orig
			}
		}
	}
	out := m.AppendForward(s.out[:0], &s.edits)
	return Result{Out: out, To: dst, Sockaddr: s.sockaddr(dst), Leg: in, Conn: conn}
}

// viaDestination is where a response goes by a Via (RFC 3261 §18.2.2 for
// unreliable transports, RFC 3581 §4): received, else the sent-by host; rport,
// else the sent-by port, else 5060.
func viaDestination(v *parser.Via) (netip.AddrPort, bool) {
	host := v.Host
	if len(v.Received) > 0 {
		host = v.Received
	}
	ip, ok := parseIP(host)
	if !ok {
		return netip.AddrPort{}, false
	}
	port := v.RPort
	if port == 0 {
		port = v.Port
	}
	if port == 0 {
		port = DefaultSIPPort
		if equalFold(v.Transport, []byte("TLS")) {
			port = DefaultSIPSPort
		}
	}
	return netip.AddrPortFrom(ip, port), true
}

func (s *Scratch) drop(d Drop) Result {
	s.Counters.Drops[d].Add(1)
	return Result{Drop: d}
}

// sockaddr fills the Scratch's sockaddr for dst. The value is overwritten by
// the next call: use it before processing another message.
func (s *Scratch) sockaddr(dst netip.AddrPort) unix.Sockaddr {
	return mmsg.Sockaddr(dst, &s.sa4, &s.sa6)
}
