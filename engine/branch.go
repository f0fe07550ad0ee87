package engine

import (
	"bytes"

	"github.com/siplb/siplb/internal/fnv1a"
	"github.com/siplb/siplb/parser"
	"github.com/siplb/siplb/pool"
)

// branchCookie is the RFC 3261 §8.1.1.7 magic cookie that starts every branch
// of a 3261-compliant element.
const branchCookie = "z9hG4bK"

// A branch siplb writes is
//
//	z9hG4bK <leg tag: 8 hex> <in-leg: 2 hex> <transaction hash: 16 hex> <loop hash: 8 hex> <in-conn: 16 hex> <mac: 16 hex>
//
// The leg tag names the leg that sent the request (Net::SIP Leg check_via);
// the in-leg says through which leg the response must leave, so no state is
// kept; the transaction hash is the same for a retransmission, the CANCEL and
// the ACK of a non-2xx response (RFC 3261 §16.11); the loop hash covers the
// fields that stay put when a request loops (§16.3 step 4, §16.6 step 8);
// the in-conn names the TCP/TLS connection the request came in on (0 for
// UDP), so the response goes back through it (SocketPool) with no table;
// the mac (SipHash-2-4 under the branch secret's key ring, mac.go) keeps a
// forged response from choosing where siplb sends it or which connection it
// is written to.
const (
	branchTagOff  = len(branchCookie)
	branchLegOff  = branchTagOff + legTagLen
	branchTxOff   = branchLegOff + 2
	branchLoopOff = branchTxOff + 16
	branchConnOff = branchLoopOff + 8
	branchMACOff  = branchConnOff + 16
	branchLen     = branchMACOff + 16
)

// transactionHash identifies the client transaction of a request the way
// §16.11 asks: from the incoming top Via's branch and sent-by when the branch
// is 3261-compliant, else from the fields RFC 2543 transactions are matched by.
func transactionHash(m *parser.Message, top *parser.Via) uint64 {
	h := fnv1a.Offset
	if bytes.HasPrefix(top.Branch, []byte(branchCookie)) {
		h = fnv1a.Add(h, top.Branch)
		h = fnv1a.Sep(h)
		h = fnv1a.Add(h, top.Host)
		h = fnv1a.Sep(h)
		return h ^ uint64(top.Port)
	}
	// RFC 2543: To tag, From tag, Call-ID, Request-URI, top Via, CSeq number.
	// The To tag is left out so the ACK of a non-2xx response (which has one)
	// gets the INVITE's branch, as §16.11 requires.
	h = fnv1a.Add(h, m.FromTag())
	h = fnv1a.Sep(h)
	h = fnv1a.Add(h, m.CallID())
	h = fnv1a.Sep(h)
	h = fnv1a.Add(h, m.RequestURI())
	h = fnv1a.Sep(h)
	h = fnv1a.Add(h, top.Host)
	h = fnv1a.Sep(h)
	h = fnv1a.Add(h, top.Branch)
	n, _ := m.CSeq()
	return h ^ uint64(n)<<16 ^ uint64(top.Port)
}

// loopHash covers what a request keeps when it loops back to siplb
// (§16.3 step 4, §16.6 step 8): the Request-URI, Call-ID, From tag and CSeq
// number, every Route value as received, and the sent-by of the incoming top
// Via, the previous hop. A spiral changes one of them: the Request-URI
// (retargeted), the Route set (another element consumed its values), or
// the previous hop. So a dialog that passes siplb twice (a registrar behind
// siplb sending the call back through it to the registered callee) is not a
// loop: the second pass of its ACK or BYE keeps the Request-URI, Call-ID,
// From tag and CSeq of the first, but comes from the registrar, with the
// Route set the registrar left. The CSeq method, the To tag and the top
// Via's branch are left out, so that the CANCEL and the ACK of a non-2xx
// response, which repeat the INVITE's Request-URI, Route set and top Via
// (§9.1, §17.1.1.3), get the INVITE's whole branch (§16.11).
func loopHash(m *parser.Message, top *parser.Via) uint32 {
	h := fnv1a.Add(fnv1a.Offset, m.RequestURI())
	h = fnv1a.Add(fnv1a.Sep(h), m.CallID())
	h = fnv1a.Add(fnv1a.Sep(h), m.FromTag())
	h = fnv1a.Add(fnv1a.Sep(h), top.Host)
	h = fnv1a.Sep(h) ^ uint64(top.Port)
	for i := range m.NumRoute() {
		h = fnv1a.Sep(h)
		if u, err := m.Route(i); err == nil {
			h = fnv1a.Add(h, u.Raw)
		}
	}
	n, _ := m.CSeq()
	h = fnv1a.Mul(fnv1a.Sep(h) ^ uint64(n))
	return uint32(h ^ h>>32)
}

// appendBranchTail appends the part of the branch after the leg's viaHead
// and the in-leg, signed by the ring's current key.
func (f *Forwarder) appendBranchTail(dst []byte, in int, tx uint64, loop uint32, conn pool.ConnID) []byte {
	dst = appendHex(dst, tx, 16)
	dst = appendHex(dst, uint64(loop), 8)
	dst = appendHex(dst, uint64(conn), 16)
	return appendHex(dst, f.ring.Load().keys[0].branch.branchMAC(in, tx, loop, conn), 16)
}

// toMemberBit, in a branch's in-leg byte (under the MAC), marks a request
// siplb sent to a pool member: only a response to one of those tells of a
// backend's health or counts on it. A client sees only branches of
// requests sent to it, without the bit, so it cannot replay one, with a
// member's address as its forged source, to mark the member down.
const toMemberBit = 0x80

// maxLegs is the most legs a Forwarder takes: the in-leg byte of a branch
// keeps its high bit for toMemberBit.
const maxLegs = toMemberBit

// branchToMember reports whether a branch ourBranch accepted marks a
// request sent to a pool member.
func branchToMember(branch []byte) bool {
	idx, _ := hexByte(branch[branchLegOff], branch[branchLegOff+1])
	return idx&toMemberBit != 0
}

// ourBranch splits a branch written by a leg of f: the leg that wrote it and
// the leg and connection the request came in on.
func (f *Forwarder) ourBranch(branch []byte) (out *Leg, in *Leg, conn pool.ConnID, ok bool) {
	if len(branch) != branchLen || string(branch[:branchTagOff]) != branchCookie {
		return nil, nil, 0, false
	}
	tag := branch[branchTagOff:branchLegOff]
	for _, l := range f.legs {
		if string(l.tag[:]) == string(tag) {
			out = l
			break
		}
	}
	if out == nil {
		return nil, nil, 0, false
	}
	idx, ok := hexByte(branch[branchLegOff], branch[branchLegOff+1])
	if !ok || int(idx&^toMemberBit) >= len(f.legs) {
		return nil, nil, 0, false
	}
	tx, ok1 := parseHex(branch[branchTxOff:branchLoopOff])
	loop, ok2 := parseHex(branch[branchLoopOff:branchConnOff])
	c, ok3 := parseHex(branch[branchConnOff:branchMACOff])
	mac, ok4 := parseHex(branch[branchMACOff:branchLen])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, nil, 0, false
	}
	for _, k := range f.ring.Load().keys {
		if mac == k.branch.branchMAC(int(idx), tx, uint32(loop), pool.ConnID(c)) {
			return out, f.legs[idx&^toMemberBit], pool.ConnID(c), true
		}
	}
	return nil, nil, 0, false
}

// hexVal maps a lowercase hex digit to its value and anything else to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

// parseHex parses at most 16 lowercase hex digits.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	// Branch-free: an invalid digit sets a high bit in bad.
	var v uint64
	var bad byte
	for _, c := range b {
		d := hexVal[c]
		bad |= d
		v = v<<4 | uint64(d&15)
	}
	return v, bad < 16
}

// isLoop reports whether m has looped (§16.3 step 4): its top Via is one of
// siplb's (it came straight back: nothing else handled it), or a Via of
// siplb's further down carries the loop hash m gets again (it came back
// unchanged through other elements).
func (f *Forwarder) isLoop(m *parser.Message, loop uint32) bool {
	var want [8]byte
	appendHex(want[:0], uint64(loop), 8)
	vias := m.Vias()
	var v parser.Via
	for top := true; vias.Next(&v); top = false {
		if len(v.Branch) != branchLen {
			continue
		}
		if _, _, _, ok := f.ourBranch(v.Branch); ok && (top || string(v.Branch[branchLoopOff:branchConnOff]) == string(want[:])) {
			return true
		}
	}
	return false
}

// hexByte parses two lowercase hex digits, by the same table as parseHex.
func hexByte(a, b byte) (byte, bool) {
	x, y := hexVal[a], hexVal[b]
	return x<<4 | y&15, x|y < 16
}
