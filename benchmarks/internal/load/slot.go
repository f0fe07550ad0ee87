package load

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siplb/siplb/benchmarks/internal/sipwire"
)

// maxDatagram is the receive buffer of a socket.
const maxDatagram = 65535

// sock is one local UDP socket or one TCP connection to the target. The
// fields below localStr are owned by its receiving goroutine and read by Run
// only after that goroutine has ended.
type sock struct {
	conn     *net.UDPConn // UDP; nil on TCP
	stream   *net.TCPConn // TCP; nil on UDP
	localStr string       // host:port for Via and Contact

	buf       []byte
	have      int // TCP: bytes of buf holding an incomplete message
	msg       sipwire.Msg
	routes    [][]byte // scratch: Record-Route elements of a 200
	setup     hist     // first request → final response
	bye       hist     // BYE → final response
	status    [700]uint64
	backends  []backendCount
	lastDone  time.Duration // when the last unit completed
	unmatched uint64        // responses of no outstanding transaction (late, duplicate, foreign)
	invalid   uint64        // datagrams that are not SIP
}

// backendCount is how many units one backend (host:port of the 2xx's
// Contact) answered.
type backendCount struct {
	addr  string
	count uint64
}

func newSock(c *net.UDPConn) *sock {
	return initSock(&sock{conn: c}, c.LocalAddr().(*net.UDPAddr).AddrPort())
}

func newStreamSock(c *net.TCPConn) *sock {
	return initSock(&sock{stream: c}, c.LocalAddr().(*net.TCPAddr).AddrPort())
}

func initSock(sk *sock, local netip.AddrPort) *sock {
	sk.localStr = netip.AddrPortFrom(local.Addr().Unmap(), local.Port()).String()
	sk.buf = make([]byte, maxDatagram)
	sk.msg.Vias = make([][]byte, 0, 8)
	sk.msg.RecordRoutes = make([][]byte, 0, 8)
	sk.routes = make([][]byte, 0, 8)
	return sk
}

// countBackend adds one unit to the backend named by addr. Looking up an
// existing backend allocates nothing; a new one allocates its name once.
func (sk *sock) countBackend(addr []byte) {
	for i := range sk.backends {
		if sk.backends[i].addr == string(addr) {
			sk.backends[i].count++
			return
		}
	}
	sk.backends = append(sk.backends, backendCount{addr: string(addr), count: 1})
}

// phase is where a slot's unit stands.
type phase uint8

const (
	phaseIdle    phase = iota
	phaseInitial       // first request sent, awaiting its final response
	phaseBye           // call: ACK and BYE sent, awaiting the BYE's final response
)

// Widths of the fixed hex fields of Call-IDs, branches and tags.
const hexWidth = 8

// callIDSuffix ends every Call-ID sipload makes: run tag, slot, generation, suffix.
const callIDSuffix = "@sipload"

// slot is one outstanding unit of load and its preformatted requests.
// Everything but deadline is guarded by mu.
type slot struct {
	mu       sync.Mutex
	idx      uint32
	sk       *sock
	gen      uint32
	phase    phase
	t0       time.Duration // when the awaited request was sent
	deadline atomic.Int64  // ns since the run's base; 0 when idle

	req      []byte // the first request; its generation fields are rewritten per unit
	genOffs  [3]int // offsets of the generation hex fields in req
	uri      [2]int // Request-URI span in req
	from     [2]int // From value span in req
	callID   [2]int // Call-ID value span in req
	branchAt int    // offset of the branch parameter value in req
	scratch  []byte // ACK and BYE are built here
}

// newSlot builds the slot's request template for r's scenario.
func (r *runner) newSlot(idx uint32, sk *sock) *slot {
	s := &slot{idx: idx, sk: sk, scratch: make([]byte, 0, 1024)}
	method := r.cfg.Scenario.method()
	b := make([]byte, 0, 1024)
	b = append(b, method...)
	b = append(b, ' ')
	s.uri[0] = len(b)
	if r.cfg.Scenario == Register {
		b = append(b, "sip:"...)
	} else {
		b = append(b, "sip:echo@"...)
	}
	b = append(b, r.targetS...)
	s.uri[1] = len(b)
	b = append(b, " SIP/2.0\r\nVia: "...)
	b = append(b, r.cfg.Transport.viaProto()...)
	b = append(b, sk.localStr...)
	b = append(b, ";branch="...)
	s.branchAt = len(b)
	b = r.appendBranchBase(b, idx)
	s.genOffs[0] = len(b)
	b = append(b, "00000000i;rport\r\nMax-Forwards: 70\r\nFrom: "...)
	// REGISTER: From and To are the address of record, one per slot
	// (RFC 3261 §10.2); otherwise From is this socket's user.
	var from, to []byte
	if r.cfg.Scenario == Register {
		from = append(appendHex32([]byte("<sip:load"), idx), '@')
		from = append(append(from, r.targetS...), '>')
		to = from
	} else {
		from = append(append([]byte(`"sipload" <sip:load@`), sk.localStr...), '>')
		to = append(append([]byte("<sip:echo@"), r.targetS...), '>')
	}
	s.from[0] = len(b)
	b = append(b, from...)
	b = append(b, ";tag="...)
	b = appendHex32(b, idx)
	s.genOffs[1] = len(b)
	b = append(b, "00000000"...)
	s.from[1] = len(b)
	b = append(b, "\r\nTo: "...)
	b = append(b, to...)
	b = append(b, "\r\nCall-ID: "...)
	s.callID[0] = len(b)
	b = append(b, r.runTag[:]...)
	b = appendHex32(b, idx)
	s.genOffs[2] = len(b)
	b = append(b, "00000000"+callIDSuffix...)
	s.callID[1] = len(b)
	b = append(b, "\r\nCSeq: 1 "...)
	b = append(b, method...)
	b = append(b, "\r\nContact: <sip:load@"...)
	b = append(b, sk.localStr...)
	b = append(b, r.cfg.Transport.uriParam()...)
	b = append(b, ">\r\n"...)
	if r.cfg.Scenario == Register {
		b = append(b, "Expires: 3600\r\n"...)
	}
	b = append(b, "User-Agent: sipload\r\n"...)
	if r.cfg.Scenario == Call {
		b = append(b, "Content-Type: application/sdp\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(offerSDP)), 10)
		b = append(b, "\r\n\r\n"+offerSDP...)
	} else {
		b = append(b, "Content-Length: 0\r\n\r\n"...)
	}
	s.req = b
	return s
}

// offerSDP is the SDP offer (RFC 4566) every INVITE carries.
const offerSDP = "v=0\r\no=sipload 1 1 IN IP4 127.0.0.1\r\ns=sipload\r\nc=IN IP4 127.0.0.1\r\n" +
	"t=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"

// appendBranchBase appends the magic cookie (RFC 3261 §8.1.1.7), the run tag
// and the slot; the generation and a kind letter follow.
func (r *runner) appendBranchBase(b []byte, idx uint32) []byte {
	b = append(b, "z9hG4bK"...)
	b = append(b, r.runTag[:]...)
	return appendHex32(b, idx)
}

// begin starts a new unit in s and sends its first request. s.mu is held.
func (r *runner) begin(s *slot, now time.Duration) {
	s.gen++
	for _, off := range s.genOffs {
		putHex32(s.req[off:off+hexWidth], s.gen)
	}
	s.phase = phaseInitial
	s.t0 = now
	s.deadline.Store(int64(now) + r.timeoutN)
	r.send(s, s.req)
}

// finish ends the unit in s, counted by the caller, and starts the next one
// in the same slot (closed loop) or frees the slot (open loop). s.mu is held.
func (r *runner) finish(s *slot, now time.Duration) {
	s.phase = phaseIdle
	s.deadline.Store(0)
	if r.free == nil && r.tryStart() {
		r.begin(s, now)
		return
	}
	r.outstanding.Add(-1)
	if r.free != nil {
		r.free <- s.idx // never blocks: the channel holds every slot
	}
}

// send writes b to the target, on the slot's connection over TCP. A failed
// send surfaces as a timeout.
func (r *runner) send(s *slot, b []byte) {
	if s.sk.stream != nil {
		// One Write per message: net.Conn serialises concurrent writers, so
		// messages sent by the receiver and the pacer never interleave.
		_, _ = s.sk.stream.Write(b)
		return
	}
	_, _ = s.sk.conn.WriteToUDPAddrPort(b, r.target)
}

// onResponse matches one response to its slot and advances the unit.
func (r *runner) onResponse(sk *sock, m *sipwire.Msg, now time.Duration) {
	idx, gen, ok := r.parseCallID(m.CallID)
	if !ok || int(idx) >= len(r.slots) {
		sk.unmatched++
		return
	}
	s := r.slots[idx]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || s.phase == phaseIdle {
		sk.unmatched++
		return
	}
	switch s.phase {
	case phaseInitial:
		if string(m.CSeqMethod) != r.cfg.Scenario.method() {
			sk.unmatched++
			return
		}
		if m.Status < 200 {
			return
		}
		if m.Status >= 300 {
			sk.status[min(m.Status, len(sk.status)-1)]++
			r.failed.Add(1)
			if r.cfg.Scenario == Call {
				// RFC 3261 §17.1.1.3: the INVITE client transaction ACKs a
				// non-2xx final response itself, on the INVITE's branch.
				r.send(s, r.appendAckNon2xx(s.scratch[:0], s, m))
			}
			r.finish(s, now)
			return
		}
		sk.setup.record(now - s.t0)
		sk.countBackend(backendOf(m))
		if r.cfg.Scenario != Call {
			r.completed.Add(1)
			sk.lastDone = now
			r.finish(s, now)
			return
		}
		sk.routes = sk.routes[:0]
		for _, v := range m.RecordRoutes {
			sk.routes = sipwire.SplitList(sk.routes, v)
		}
		s.scratch = r.appendInDialog(s.scratch[:0], s, m, sk.routes, "ACK", 'a')
		r.send(s, s.scratch)
		s.scratch = r.appendInDialog(s.scratch[:0], s, m, sk.routes, "BYE", 'b')
		r.send(s, s.scratch)
		s.phase = phaseBye
		s.t0 = r.now()
		s.deadline.Store(int64(s.t0) + r.timeoutN)
	case phaseBye:
		if string(m.CSeqMethod) != "BYE" || m.Status < 200 {
			// A retransmitted 200 to the INVITE, or a provisional: nothing to do.
			return
		}
		if m.Status >= 300 {
			sk.status[min(m.Status, len(sk.status)-1)]++
			r.failed.Add(1)
		} else {
			sk.bye.record(now - s.t0)
			r.completed.Add(1)
			sk.lastDone = now
		}
		r.finish(s, now)
	}
}

// backendOf names the backend that answered: the host:port of the Contact,
// or for REGISTER (whose Contact is the client's binding) the comment of
// sipecho's Server header.
func backendOf(m *sipwire.Msg) []byte {
	if string(m.CSeqMethod) == "REGISTER" || m.Contact == nil {
		if v := m.Server; len(v) > 2 {
			if i := indexByte(v, '('); i >= 0 && v[len(v)-1] == ')' {
				return v[i+1 : len(v)-1]
			}
		}
		if m.Contact == nil {
			return nil
		}
	}
	return sipwire.HostPort(sipwire.URI(m.Contact))
}

// appendInDialog builds the ACK for a 2xx or the BYE of the dialog the 2xx
// created (RFC 3261 §12.2.1.1, §13.2.2.4): Request-URI is the remote target
// (the 2xx's Contact), the route set is the Record-Route reversed, To carries
// the remote tag, each request has a branch of its own, and the local CSeq
// is 1 for the ACK (that of the INVITE) and 2 for the BYE. Strict routers
// (a route without ;lr) are not handled: every hop is taken to route loosely.
func (r *runner) appendInDialog(b []byte, s *slot, m *sipwire.Msg, routes [][]byte, method string, kind byte) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	if m.Contact != nil {
		b = append(b, sipwire.URI(m.Contact)...)
	} else {
		b = append(b, s.req[s.uri[0]:s.uri[1]]...)
	}
	b = append(b, " SIP/2.0\r\nVia: "...)
	b = append(b, r.cfg.Transport.viaProto()...)
	b = append(b, s.sk.localStr...)
	b = append(b, ";branch="...)
	b = r.appendBranchBase(b, s.idx)
	b = appendHex32(b, s.gen)
	b = append(b, kind)
	b = append(b, ";rport\r\n"...)
	if len(routes) > 0 {
		b = append(b, "Route: "...)
		for i := len(routes) - 1; i >= 0; i-- {
			b = append(b, routes[i]...)
			if i > 0 {
				b = append(b, ", "...)
			}
		}
		b = append(b, "\r\n"...)
	}
	b = r.appendDialogIDs(b, s, m)
	if method == "ACK" {
		b = append(b, "CSeq: 1 ACK\r\n"...)
	} else {
		b = append(b, "CSeq: 2 BYE\r\n"...)
	}
	return append(b, "User-Agent: sipload\r\nContent-Length: 0\r\n\r\n"...)
}

// appendAckNon2xx builds the ACK for a non-2xx final response to the INVITE
// (RFC 3261 §17.1.1.3): same Request-URI and branch as the INVITE, To from
// the response.
func (r *runner) appendAckNon2xx(b []byte, s *slot, m *sipwire.Msg) []byte {
	b = append(b, "ACK "...)
	b = append(b, s.req[s.uri[0]:s.uri[1]]...)
	b = append(b, " SIP/2.0\r\nVia: "...)
	b = append(b, r.cfg.Transport.viaProto()...)
	b = append(b, s.sk.localStr...)
	b = append(b, ";branch="...)
	b = r.appendBranchBase(b, s.idx)
	b = appendHex32(b, s.gen)
	b = append(b, "i;rport\r\n"...)
	b = r.appendDialogIDs(b, s, m)
	return append(b, "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"...)
}

// appendDialogIDs appends Max-Forwards, From (ours), To (the response's,
// with the remote tag) and Call-ID.
func (r *runner) appendDialogIDs(b []byte, s *slot, m *sipwire.Msg) []byte {
	b = append(b, "Max-Forwards: 70\r\nFrom: "...)
	b = append(b, s.req[s.from[0]:s.from[1]]...)
	b = append(b, "\r\nTo: "...)
	b = append(b, m.To...)
	b = append(b, "\r\nCall-ID: "...)
	b = append(b, s.req[s.callID[0]:s.callID[1]]...)
	return append(b, "\r\n"...)
}

// parseCallID recovers the slot and generation from a Call-ID of this run.
func (r *runner) parseCallID(id []byte) (idx, gen uint32, ok bool) {
	if len(id) != 3*hexWidth+len(callIDSuffix) || string(id[:hexWidth]) != string(r.runTag[:]) {
		return 0, 0, false
	}
	idx, ok1 := parseHex32(id[hexWidth : 2*hexWidth])
	gen, ok2 := parseHex32(id[2*hexWidth : 3*hexWidth])
	return idx, gen, ok1 && ok2
}

const hexDigits = "0123456789abcdef"

func appendHex32(b []byte, v uint32) []byte {
	for sh := 28; sh >= 0; sh -= 4 {
		b = append(b, hexDigits[v>>uint(sh)&0xf])
	}
	return b
}

// putHex32 writes v as 8 hex digits into dst[:8].
func putHex32(dst []byte, v uint32) {
	_ = dst[7]
	for i := 7; i >= 0; i-- {
		dst[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

func parseHex32(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(c)
	}
	return v, true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
