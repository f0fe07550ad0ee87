package engine

import (
	"net/netip"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/fnv1a"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// A request's way through the forwarding rules (RFC 3261 §16.3-§16.6), one
// method per step:
//
//	popOwnRoutes      §16.4: the Route values naming siplb (loose routing)
//	checkRequest      §16.3 steps 2 and 5, §26.2: scheme, Proxy-Require, sips
//	strictRoute       §16.4: a Request-URI of ours came through a strict router
//	(request itself)  §16.3 steps 3 and 4: OPTIONS to siplb, Max-Forwards, loops
//	backendTarget     the destination of a request a backend sent: any
//	outsideTarget     the destination of a request from outside: a pool
//	                  member; pickBackend for a new dialog
//	forwardRequest    §16.6: the edits (strictNextHop, recordRouteEdits,
//	                  pathEdits), siplb's Via
//
// Each step fills the hop it is given. One that ends the request returns
// the sentinel of the stateless reply it earns (reply), or the Result of a
// drop or a DNS question and true.

// hop is the decision on one request as the steps build it. It lives on
// request's stack.
type hop struct {
	top         parser.Via
	ruri        parser.URI // where the request is addressed: its Request-URI, or the last Route value after §16.4 strict routing
	pops        int        // Route values naming siplb, from the top
	routeLeg    *Leg       // the leg the last popped value names
	strict      bool       // the previous hop was a strict router: the last Route value became ruri
	remaining   int        // Route values left after pops (and the strict one)
	fromBackend bool
	t           *balance.Table

	out       *Leg               // the leg the request leaves on
	dst       netip.AddrPort     // where it goes
	conn      pool.ConnID        // for a stream: the connection to write to (0: by dst)
	restored  bool               // the Request-URI was a Contact siplb rewrote; s.orig holds the original
	viaRoute  bool               // the next hop is the next Route value's (§16.6 step 6 applies)
	flow      flow               // from a backend: the client's flow a token of siplb's named
	flowed    bool               // flow is set: the request goes to a client by its NAT binding or connection
	be        *balance.Backend   // from outside: the member it goes to, counted when it leaves
	routes    *routeCache        // the Scratch's: Route values parsed once per request
	popLegs   [cachedRoutes]*Leg // the legs the top popped Route values name
	ruriLeg   *Leg               // legFor(&ruri), once ruriKnown
	ruriKnown bool
	callHash  uint64 // balance.HashKey of the Call-ID (branchHashes)
}

// ruriIsOurs is f.legFor(&h.ruri), found once per value of h.ruri.
func (h *hop) ruriIsOurs(f *Forwarder) *Leg {
	if !h.ruriKnown {
		h.ruriLeg, h.ruriKnown = f.legFor(&h.ruri), true
	}
	return h.ruriLeg
}

// cachedRoutes is how many Route values from the top a routeCache keeps:
// siplb's own (two after a double Record-Route) and the next hop's.
const cachedRoutes = 4

// routeCache holds the Route values of the request being processed, parsed
// on first use: Route processing, the loop hash, the popped flows and the
// next hop all read the top ones, and parsing a URI costs more than
// copying one. Reset by request for each message.
type routeCache struct {
	have  uint8 // bit i: uri[i] and err[i] hold Route(i)
	uri   [cachedRoutes]parser.URI
	err   [cachedRoutes]error
	spare parser.URI // a value below the top cachedRoutes, the last one asked for
}

// at is m.Route(i), parsed once per message for the top cachedRoutes. The
// URI is the cache's: read it, or copy it, before asking for another
// value below the top cachedRoutes.
func (c *routeCache) at(m *parser.Message, i int) (*parser.URI, error) {
	if i < 0 || i >= cachedRoutes {
		var err error
		c.spare, err = m.Route(i)
		return &c.spare, err
	}
	if c.have&(1<<i) == 0 {
		c.uri[i], c.err[i] = m.Route(i)
		c.have |= 1 << i
	}
	return &c.uri[i], c.err[i]
}

// request applies §16.3-§16.6 to a request: validation, Route processing,
// loop detection, the choice of the next hop, and the edits.
func (f *Forwarder) request(s *Scratch, src netip.AddrPort, in *Leg) Result {
	m := &s.Msg
	// Parse checked the top Via: it is there and well-formed.
	var h hop
	h.top, h.out = m.TopVia(), in
	s.routes.have = 0
	h.routes = &s.routes
	if e := f.popOwnRoutes(m, &h); e != nil {
		return f.reply(s, src, in, e, nil)
	}
	h.t = f.bal.Table()
	h.fromBackend = f.fromBackend(s, h.t, src, s.inConn)
	if e, extra := f.checkRequest(s, &h, in); e != nil {
		return f.reply(s, src, in, e, extra)
	}
	if e := f.strictRoute(m, &h); e != nil {
		return f.reply(s, src, in, e, nil)
	}
	// A keep-alive probe of the balancer itself is answered here, even with
	// Max-Forwards 0.
	if m.Method() == parser.OPTIONS && h.remaining == 0 && len(h.ruri.User) == 0 && h.ruriIsOurs(f) != nil {
		return f.reply(s, src, in, parser.StatusOK, nil)
	}
	// §16.3 step 3: Max-Forwards.
	if mf, ok := m.MaxForwards(); ok && mf == 0 {
		return f.reply(s, src, in, parser.ErrTooManyHops, nil)
	}
	tx, loop, call := branchHashes(m, &h.top, h.routes)
	h.callHash = call
	if f.isLoop(m, &h.top, loop) {
		return f.reply(s, src, in, parser.ErrLoopDetected, nil)
	}
	var (
		r    Result
		done bool
	)
	if h.fromBackend {
		r, done = f.backendTarget(s, src, in, &h)
	} else {
		r, done = f.outsideTarget(s, src, in, &h)
	}
	if done {
		return r
	}
	r = f.forwardRequest(s, src, in, &h, tx, loop)
	if r.Out != nil && h.out.Transport == balance.UDP && len(r.Out) > f.mtu {
		// §18.1.1: a request larger than the MTU bound goes over TCP when
		// the member takes it (and siplb has a TCP leg), with its Via
		// saying so; else it goes as it is, counted.
		if tcp := f.byTransport[balance.TCP]; h.be != nil && h.be.AlsoTCP && tcp != nil {
			h.out = tcp
			r = f.forwardRequest(s, src, in, &h, tx, loop)
			s.Counters.UDPToTCP.Add(1)
		} else {
			s.Counters.LargeUDP.Add(1)
		}
	}
	if r.Out != nil && h.be != nil {
		h.be.Stats.Forwarded(s.stripe, len(m.ToTag()) == 0)
	}
	return r
}

// popOwnRoutes counts the Route values at the top that name one of siplb's
// legs (§16.4, loose routing: two of them after a double Record-Route); the
// last one names the leg facing the next hop.
func (f *Forwarder) popOwnRoutes(m *parser.Message, h *hop) *parser.Error {
	for h.pops < m.NumRoute() {
		u, err := h.routes.at(m, h.pops)
		if err != nil {
			return parser.ErrMalformedRoute
		}
		l := f.legFor(u)
		if l == nil {
			break
		}
		if h.pops < cachedRoutes {
			h.popLegs[h.pops] = l
		}
		h.routeLeg = l
		h.pops++
	}
	return nil
}

// checkRequest parses the Request-URI into h.ruri and applies §16.3 step 2
// (a scheme siplb routes), step 5 (Proxy-Require: the reply then carries an
// Unsupported header, returned as extra) and §26.2 (a sips: request from
// outside arrives over TLS).
func (f *Forwarder) checkRequest(s *Scratch, h *hop, in *Leg) (*parser.Error, []byte) {
	m := &s.Msg
	if err := parser.ParseURI(&h.ruri, m.RequestURI()); err != nil {
		if sch := uriScheme(m.RequestURI()); sch != nil && !f.schemeRouted(sch) {
			return parser.ErrUnsupportedURIScheme, nil
		}
		return parser.ErrMalformedRequestURI, nil
	}
	if !f.schemeRouted(h.ruri.Scheme) {
		return parser.ErrUnsupportedURIScheme, nil
	}
	if s.ext = f.unsupportedProxyRequire(s.ext[:0], m); len(s.ext) > 0 {
		s.extra = append(append(append(s.extra[:0], "Unsupported: "...), s.ext...), "\r\n"...)
		return parser.ErrBadExtension, s.extra
	}
	// A backend inside the farm may speak UDP or TCP to siplb; siplb itself
	// takes the request to the client over TLS.
	if !h.fromBackend && !in.Transport.Secure() && equalFold(h.ruri.Scheme, []byte("sips")) {
		return parser.ErrSIPSRequiresTLS, nil
	}
	return nil, nil
}

// strictRoute applies §16.4's strict-router rule: a Request-URI that is a
// Record-Route value of ours means the previous hop was a strict router,
// and the real target is the last Route value, which the edits remove.
func (f *Forwarder) strictRoute(m *parser.Message, h *hop) *parser.Error {
	h.remaining = m.NumRoute() - h.pops
	if h.pops > 0 || m.NumRoute() == 0 || h.ruriIsOurs(f) == nil {
		return nil
	}
	last, err := h.routes.at(m, m.NumRoute()-1)
	if err != nil {
		return parser.ErrMalformedRoute
	}
	h.ruri, h.strict, h.ruriKnown = *last, true, false
	h.remaining--
	return nil
}

// backendTarget finds where a request from a backend goes: a backend may
// reach any destination. The client's flow, from the Record-Route siplb
// wrote (in-dialog) or from a Contact siplb rewrote (the Request-URI of a
// request to a registered client, then restored); else the next Route
// value, else the Request-URI, through domain2proxy, the outgoing proxy and
// DNS.
func (f *Forwarder) backendTarget(s *Scratch, src netip.AddrPort, in *Leg, h *hop) (Result, bool) {
	m := &s.Msg
	target := h.ruri
	if h.remaining > 0 {
		u, err := h.routes.at(m, h.pops)
		if err != nil {
			return f.reply(s, src, in, parser.ErrMalformedRoute, nil), true
		}
		target, h.viaRoute = *u, true
	}
	if h.routeLeg != nil {
		h.out = h.routeLeg
	} else if l := f.byTransport[uriTransport(&target)]; l != nil {
		h.out = l
	}
	fl, flowed := f.poppedFlow(s, h)
	if h.ruriIsOurs(f) != nil {
		if x, ok := f.restoreContact(s, h, &target); ok && !flowed {
			fl, flowed = x, true
			if fo := f.byTransport[x.transport]; fo != nil {
				h.out = fo
			}
		}
	}
	if flowed {
		h.flow, h.flowed = fl, true
		h.dst, h.conn = fl.addr, fl.conn
		if h.conn == 0 || h.dst.IsValid() {
			return Result{}, false
		}
	}
	next := f.nextHop(h.t, &target)
	if next != &target {
		if l := f.byTransport[uriTransport(next)]; l != nil {
			h.out = l
		}
	}
	if _, isIP := parseIP(next.Host); h.conn != 0 && !isIP {
		// The connection is the way; a domain is only a fallback not
		// worth waiting on DNS for.
		return Result{}, false
	}
	dst, out, r, done := f.resolveHop(s, src, in, next, h.out)
	if done {
		return r, true
	}
	h.dst, h.out = dst, out
	return Result{}, false
}

// poppedFlow returns the client's flow that a token in the Route values
// siplb pops names: a Record-Route flow (lbf, bound to the dialog's
// Call-ID) or a Path flow (lbp, bound to none). The last that verifies wins
// and sets h.out to the leg its value names, the one facing the client; a
// token that fails is counted and ignored.
func (f *Forwarder) poppedFlow(s *Scratch, h *hop) (fl flow, flowed bool) {
	m := &s.Msg
	ring := f.ring.Load()
	for i := range h.pops {
		u, _ := h.routes.at(m, i)
		var x flow
		var ok, bad bool
		if v, has := u.Param(flowParam); has {
			x, ok, bad = ring.verifyFlow(v, m.CallID())
		} else if v, has := u.Param(pathParam); has {
			x, ok, bad = ring.verifyPath(v)
		}
		if bad {
			s.Counters.BadTokens.Add(1)
		}
		if ok {
			fl, flowed = x, true
			var l *Leg
			if i < cachedRoutes {
				l = h.popLegs[i] // popOwnRoutes found it
			} else {
				l = f.legFor(u)
			}
			if l != nil {
				h.out = l
			}
		}
	}
	return fl, flowed
}

// restoreContact undoes rewrite_contact for a Request-URI that is a
// Contact siplb rewrote (a backend's request to a client registered
// through siplb): the original URI goes into s.orig and *target, and the
// flow it carried is returned.
func (f *Forwarder) restoreContact(s *Scratch, h *hop, target *parser.URI) (flow, bool) {
	x, orig, ok := f.ring.Load().unrewriteContact(s.orig[:0], &h.ruri)
	if !ok {
		return flow{}, false
	}
	s.orig = orig
	var ou parser.URI
	if parser.ParseURI(&ou, s.orig) != nil {
		return flow{}, false
	}
	h.restored, *target = true, ou
	return x, true
}

// outsideTarget finds where a request from outside goes: only to pool
// members (no open relay). Inside a dialog, the member its next Route value
// or its Request-URI names; else the pool's pick for a new dialog.
func (f *Forwarder) outsideTarget(s *Scratch, src netip.AddrPort, in *Leg, h *hop) (Result, bool) {
	m := &s.Msg
	var be *balance.Backend
	if len(m.ToTag()) > 0 {
		if h.remaining > 0 {
			if u, err := h.routes.at(m, h.pops); err == nil {
				be = usableMember(h.t, u)
				h.viaRoute = be != nil
			}
		}
		if be == nil {
			be = usableMember(h.t, &h.ruri)
		}
		if be != nil && f.byTransport[be.Transport] == nil {
			be, h.viaRoute = nil, false // no listener to reach it from (added by a reload or DNS)
		}
	}
	if be == nil {
		if f.draining.Load() && len(m.ToTag()) == 0 && m.Method() != parser.ACK && m.Method() != parser.CANCEL {
			// A new dialog while draining (drain.go): the client takes it
			// to another instance, or here again after Retry-After.
			return f.reply(s, src, in, parser.ErrServiceUnavailable, f.retryAfter), true
		}
		b, why := f.pickBackend(s, h.t, in, m, h.callHash)
		if b == nil {
			if why == balance.RefusedOverload || why == balance.RefusedRate {
				s.Counters.AdmitRefused.Add(1)
			}
			return f.reply(s, src, in, parser.ErrServiceUnavailable, f.retryAfter), true
		}
		be = b
	}
	h.be = be
	h.dst = be.Addr
	h.out = f.byTransport[be.Transport]
	return Result{}, false
}

// pickBackend is where a request from outside that no Route or
// Request-URI sends to a member gets one: the pick of the leg's pool over
// the key its algorithm hashes (for a new INVITE with Replaces or Join, or
// a new REFER with Replaces, the Call-ID of the dialog it names:
// ReplacesAffinity), among
// the members siplb has a listener to reach. A new dialog (no To tag; not
// an ACK or CANCEL, which follow their INVITE) is admitted by the members'
// overload reports and max_cps (PickAdmitted); the Refusal says why none
// took it.
//
// callHash is balance.HashKey(m.CallID()), which the caller has.
func (f *Forwarder) pickBackend(s *Scratch, t *balance.Table, in *Leg, m *parser.Message, callHash uint64) (*balance.Backend, balance.Refusal) {
	p := t.Pool(in.Pool)
	key := p.Key(requestKeys{m})
	newDialog := len(m.ToTag()) == 0 && m.Method() != parser.ACK && m.Method() != parser.CANCEL
	replaced := false
	if newDialog && p.ReplacesAffinity() {
		if id := replacedCallID(s, m); id != nil {
			key, replaced = id, true
			s.Counters.ReplacesAffinity.Add(1)
		}
	}
	var b *balance.Backend
	why := balance.Admitted
	if newDialog {
		a := balance.Admit{Now: f.now(), Stripe: s.stripe}
		// Dialog is the Call-ID's hash; with a Call-ID key it is the key's
		// too (DialogIsKey), hashed once.
		a.Dialog, a.DialogIsKey = callHash, !replaced && p.Algorithm().CallIDKeyed()
		b, why = p.PickAdmitted(key, &a)
	} else if x, ok := p.Pick(key); ok {
		b = x
	} else {
		why = balance.NoMember
	}
	if b == nil {
		return nil, why
	}
	if f.byTransport[b.Transport] == nil {
		return nil, balance.NoMember
	}
	return b, balance.Admitted
}

// requestKeys is a parsed request as the hashed algorithms see it
// (balance.KeySource). It is one pointer, so handing it over as the
// interface allocates nothing.
type requestKeys struct{ m *parser.Message }

func (k requestKeys) CallID() []byte     { return k.m.CallID() }
func (k requestKeys) RequestURI() []byte { return k.m.RequestURI() }

func (k requestKeys) FromUser() []byte {
	if u, err := k.m.FromURI(); err == nil {
		return u.User
	}
	return nil
}

func (k requestKeys) ToUser() []byte {
	if u, err := k.m.ToURI(); err == nil {
		return u.User
	}
	return nil
}

// maxRewrittenURI is the longest Contact URI rewrite_contact rewrites.
const maxRewrittenURI = 256

// forwardRequest writes the request as §16.6 edits it: Max-Forwards, the
// Route values siplb pops, the Request-URI (strict routing, a restored
// Contact), a rewritten Contact, received/rport on the sender's Via, siplb's
// own Via and its Record-Route.
func (f *Forwarder) forwardRequest(s *Scratch, src netip.AddrPort, in *Leg, h *hop, tx uint64, loop uint32) Result {
	m := &s.Msg
	out := h.out
	e := &s.edits
	*e = parser.Edits{MaxForwards: true, PopRoutes: h.pops, DropLastRoute: h.strict, ContentLength: out.Transport != balance.UDP}
	if h.strict {
		e.RequestURI = h.ruri.Raw
	}
	if h.restored {
		e.RequestURI = s.orig
	}
	f.strictNextHop(s, h)
	if !h.restored && !h.fromBackend && f.rewriteContact && (out != in || f.forceRewrite) && m.NumContact() > 0 {
		// The StatelessProxy page's rewrite_contact: a client's Contact
		// becomes one of ours carrying its flow, so a backend's request to it
		// (an INVITE to a registered phone) comes through siplb and reaches
		// the client by its connection or NAT binding.
		// The original travels hex-encoded (twice its size): a longer one
		// than maxRewrittenURI is left as it is, so the output stays within
		// the Scratch's buffer whatever the sender wrote.
		if cu, err := m.Contact(0); err == nil && f.legFor(&cu) == nil && len(cu.Raw) <= maxRewrittenURI {
			s.contact = appendRewrittenContact(s.contact[:0], f.ring.Load().keys[0].contact, out, cu.Raw, src, s.inConn, in.Transport)
			e.Contact = s.contact
		}
	}
	// RFC 3261 §18.2.1 and RFC 3581 §4: say where the request really came
	// from. A received or an rport value the sender wrote itself is
	// replaced: the response must not go where the sender says, or siplb
	// would reflect a backend's answers to a third party.
	srcIP := src.Addr().Unmap()
	if h.top.HasRPort {
		e.RPort = int(src.Port())
	}
	if h.top.HasRPort || len(h.top.Received) > 0 || !sameIP(h.top.Host, srcIP) {
		s.recv = appendIP(s.recv[:0], srcIP)
		e.Received = s.recv
	}
	s.via = append(s.via[:0], out.viaHead...)
	mark := in.Index
	if h.be != nil {
		mark |= toMemberBit
	}
	s.via = appendHex2(s.via, byte(mark))
	s.via = f.appendBranchTail(s.via, mark, tx, loop, s.inConn)
	s.via = append(s.via, ";rport"...)
	if h.be != nil && h.t.Pool(balance.PoolID(h.be.Pool)).OverloadControl() {
		s.via = append(s.via, ocOffer...)
	}
	e.PushVia = s.via
	if f.recordRoute && m.Method() != parser.REGISTER {
		f.recordRouteEdits(s, src, in, h)
	}
	if m.Method() == parser.REGISTER && !h.fromBackend && hasOptionTag(m, parser.HdrSupported, "path") {
		f.pathEdits(s, src, in, h)
	}
	msg := m.AppendForward(s.out[:0], e)
	// The Scratch's own Sockaddr: unix.Sendto writes into the one it is
	// given, so one shared by every loop would be a data race.
	return Result{Out: msg, To: h.dst, Sockaddr: s.sockaddr(h.dst), Leg: out, Conn: h.conn}
}

// strictNextHop applies §16.6 step 6: when the request goes to the next
// Route value and that has no lr, the next hop is a strict router (RFC
// 2543), which routes by the Request-URI. That value becomes the Request-URI and leaves the Route set,
// and the Request-URI the request would have had goes last in it.
func (f *Forwarder) strictNextHop(s *Scratch, h *hop) {
	if !h.viaRoute {
		return
	}
	m, e := &s.Msg, &s.edits
	next, err := h.routes.at(m, h.pops)
	if err != nil || next.LR {
		return
	}
	ruri := e.RequestURI
	if ruri == nil {
		ruri = m.RequestURI()
	}
	s.route = append(append(append(s.route[:0], '<'), ruri...), '>')
	e.AppendRoute = s.route
	e.RequestURI = next.Raw
	e.PopRoutes++
}

// appendIP is ip.AppendTo(dst): for IPv6 the RFC 5952 text netip writes
// (lower case, no leading zeros, the leftmost longest run of two or more
// zero groups as "::"), from the 16 bytes, where netip shifts its 128 bits
// per group: every request from an IPv6 client gets a received= of it.
func appendIP(dst []byte, ip netip.Addr) []byte {
	if ip.Is4() {
		// Dotted decimal as netip writes it, without its call chain.
		b := ip.As4()
		dst = appendOctet(dst, b[0])
		dst = appendOctet(append(dst, '.'), b[1])
		dst = appendOctet(append(dst, '.'), b[2])
		return appendOctet(append(dst, '.'), b[3])
	}
	if !ip.Is6() || ip.Is4In6() || ip.Zone() != "" {
		return ip.AppendTo(dst)
	}
	b := ip.As16()
	var g [8]uint16
	for i := range g {
		g[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	zs, ze := 8, 8 // the run of zero groups written as "::"
	for i := 0; i < 8; {
		if g[i] != 0 {
			i++
			continue
		}
		j := i + 1
		for j < 8 && g[j] == 0 {
			j++
		}
		if j-i >= 2 && j-i > ze-zs {
			zs, ze = i, j
		}
		i = j
	}
	for i := 0; i < 8; i++ {
		if i == zs {
			dst = append(dst, ':', ':')
			if i = ze; i >= 8 {
				break
			}
		} else if i > 0 {
			dst = append(dst, ':')
		}
		dst = appendGroup(dst, g[i])
	}
	return dst
}

// appendOctet appends x in decimal without leading zeros.
func appendOctet(dst []byte, x byte) []byte {
	switch {
	case x >= 100:
		return append(dst, '0'+x/100, '0'+x/10%10, '0'+x%10)
	case x >= 10:
		return append(dst, '0'+x/10, '0'+x%10)
	}
	return append(dst, '0'+x)
}

// appendGroup appends an IPv6 group in hex without leading zeros.
func appendGroup(dst []byte, x uint16) []byte {
	const digits = "0123456789abcdef"
	switch {
	case x >= 0x1000:
		return append(dst, digits[x>>12], digits[x>>8&15], digits[x>>4&15], digits[x&15])
	case x >= 0x100:
		return append(dst, digits[x>>8], digits[x>>4&15], digits[x&15])
	case x >= 0x10:
		return append(dst, digits[x>>4], digits[x&15])
	}
	return append(dst, digits[x])
}

// sameIP reports whether a Via host is the IP address ip.
func sameIP(host []byte, ip netip.Addr) bool {
	a, ok := parseIP(host)
	return ok && a == ip
}

// recordRouteEdits sets the Record-Route values of the edits. RFC 5658: the
// value facing the next hop first, then the one facing the previous hop
// when the request changes legs. The one facing a client carries the
// client's flow, so that the requests in the dialog reach the client
// through its connection or its NAT binding: from outside, the sender's
// flow; from a backend to a client siplb reached by a flow (a registrar's
// call to a phone registered through siplb), that client's, so the
// backend's ACK and BYE to the client's Contact (an ephemeral TCP port, a
// private address) take the same way.
func (f *Forwarder) recordRouteEdits(s *Scratch, src netip.AddrPort, in *Leg, h *hop) {
	e, out := &s.edits, h.out
	key := f.ring.Load().keys[0].flow
	callID := s.Msg.CallID()
	s.rr = s.rr[:0]
	if out != in {
		s.rr = append(s.rr, out.rrHead...)
		if h.flowed {
			s.rr = appendFlow(s.rr, key, h.flow.addr, h.flow.conn, h.flow.transport, callID)
		}
		s.rr = append(s.rr, '>')
	}
	mark := len(s.rr)
	s.rr = append(s.rr, in.rrHead...)
	switch {
	case !h.fromBackend:
		s.rr = appendFlow(s.rr, key, src, s.inConn, in.Transport, callID)
	case h.flowed && out == in:
		s.rr = appendFlow(s.rr, key, h.flow.addr, h.flow.conn, h.flow.transport, callID)
	}
	s.rr = append(s.rr, '>')
	if out != in {
		e.RecordRoute, e.RecordRoute2 = s.rr[:mark], s.rr[mark:]
	} else {
		e.RecordRoute = s.rr
	}
}

// pathEdits sets the Path values of a REGISTER from a client that
// supports Path (RFC 3327 §5.1): the value facing the registrar (the leg
// the REGISTER leaves on), then, when the REGISTER changes legs, the one
// facing the client; the one facing the client carries its flow, signed
// with no dialog (pathMAC). The registrar's later requests to the contact
// name these values in their Route, come back through siplb and go out by
// the client's NAT binding or connection.
func (f *Forwarder) pathEdits(s *Scratch, src netip.AddrPort, in *Leg, h *hop) {
	e, out := &s.edits, h.out
	s.path = s.path[:0]
	if out != in {
		s.path = append(s.path, out.rrHead...)
		s.path = append(s.path, '>')
	}
	mark := len(s.path)
	s.path = append(s.path, in.rrHead...)
	s.path = appendPathFlow(s.path, f.ring.Load().keys[0].path, src, s.inConn, in.Transport)
	s.path = append(s.path, '>')
	if out != in {
		e.Path, e.Path2 = s.path[:mark], s.path[mark:]
	} else {
		e.Path = s.path
	}
}

// fromBackend reports whether a request's sender is a backend, by what no
// sender can write: a UDP source address:port that is a member's, a
// connection siplb opened to a member, a source IP the operator listed in a
// pool's backend_sources, or a TLS connection whose verified client
// certificate a pool's backend_certs names. A Via sent-by never counts (anyone writes
// one), nor does an inbound connection from a member's address (a client
// may bind a member's UDP port for its TCP socket).
func (f *Forwarder) fromBackend(s *Scratch, t *balance.Table, src netip.AddrPort, conn pool.ConnID) bool {
	if conn.Trusted() {
		return true // a verified client certificate in a pool's backend_certs
	}
	if conn == 0 || conn.Outbound() {
		if _, ok := s.src.lookup(t, src); ok {
			return true
		}
	}
	return s.src.backendSource(t, src)
}

// srcMember is what a Table says of the source of the message being
// processed, asked once: admit, fromBackend and a response's accounting
// all want it. It is keyed by the Table and the source, both compared on
// every use, so it needs no reset and a reload (a new Table) is never
// answered from the old one.
type srcMember struct {
	t       *balance.Table
	src     netip.AddrPort
	be      *balance.Backend
	isBE    bool // Lookup's answer
	isSrc   bool // BackendSource's answer
	haveSrc bool // isSrc is known
}

// lookup is t.Lookup(src), asked once per Table and source.
func (c *srcMember) lookup(t *balance.Table, src netip.AddrPort) (*balance.Backend, bool) {
	if c.t != t || c.src != src {
		c.t, c.src, c.haveSrc = t, src, false
		c.be, c.isBE = t.Lookup(src)
	}
	return c.be, c.isBE
}

// backendSource is t.BackendSource(src.Addr()), asked once per Table and
// source.
func (c *srcMember) backendSource(t *balance.Table, src netip.AddrPort) bool {
	c.lookup(t, src)
	if !c.haveSrc {
		c.isSrc, c.haveSrc = t.BackendSource(src.Addr()), true
	}
	return c.isSrc
}

// isMember is Forwarder.isMember by the Scratch's cache.
func (c *srcMember) isMember(t *balance.Table, src netip.AddrPort) bool {
	if _, ok := c.lookup(t, src); ok {
		return true
	}
	return c.backendSource(t, src)
}

// uriScheme returns the scheme of a URI that may not parse as a SIP URI
// (a mailto: or an http: one), nil when it has none.
func uriScheme(u []byte) []byte {
	for i, c := range u {
		switch {
		case c == ':' && i > 0:
			return u[:i]
		case (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || (c < '0' || c > '9') && c != '+' && c != '-' && c != '.'):
			return nil
		}
	}
	return nil
}

// reply builds the stateless response e (with extra header lines, each
// ending in CRLF, or nil) to the request in s.Msg and addresses it as
// §18.2.2 says for the request's top Via: back to the source when the
// client asked for rport, else to the source IP and the sent-by port. An
// ACK never gets one (§17.1.1.3): it is dropped under the reason e names.
func (f *Forwarder) reply(s *Scratch, src netip.AddrPort, in *Leg, e *parser.Error, extra []byte) Result {
	m := &s.Msg
	if m.Method() == parser.ACK {
		return s.drop(ackDrop(e))
	}
	if !f.allowReply(s, src, in) {
		return Result{Drop: DropReplyLimited}
	}
	dst := src
	if top := m.TopVia(); !top.HasRPort {
		port := top.Port
		if port == 0 {
			port = in.Transport.DefaultPort()
		}
		dst = netip.AddrPortFrom(src.Addr(), port)
	}
	// A To tag of our own, the same for every retransmission (§8.2.6.2).
	var toTag []byte
	if e.Status > 100 {
		h := fnv1a.Add(fnv1a.Offset, m.CallID())
		h = fnv1a.Add(fnv1a.Sep(h), m.FromTag())
		s.tag = append(s.tag[:0], "lb"...)
		s.tag = appendHex(s.tag, h, 12)
		toTag = s.tag
	}
	out := parser.AppendResponse(s.out[:0], m, e.Status, e.Reason, toTag, extra)
	s.Counters.countReply(e.Status)
	return Result{Out: out, To: dst, Sockaddr: s.sockaddr(dst), Leg: in, Conn: s.inConn, Status: e.Status}
}

// ackDrop is the drop that stands for the reply e to an ACK, which gets no
// response.
func ackDrop(e *parser.Error) Drop {
	switch e {
	case parser.ErrLoopDetected:
		return DropLoop
	case parser.ErrTooManyHops:
		return DropTooManyHops
	case parser.ErrServiceUnavailable:
		return DropNoBackend
	case parser.ErrDestinationUnresolvable:
		return DropUnresolvable
	}
	return DropMalformedRequest
}
