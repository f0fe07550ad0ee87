package engine

import (
	"bytes"
	"encoding/binary"

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
func loopHash(m *parser.Message, top *parser.Via, routes *routeCache) uint32 {
	h := fnv1a.Add(fnv1a.Offset, m.RequestURI())
	h = fnv1a.Add(fnv1a.Sep(h), m.CallID())
	h = fnv1a.Add(fnv1a.Sep(h), m.FromTag())
	return loopTail(h, m, top, routes)
}

// loopTail is the end of loopHash from the From tag on: the top Via's
// sent-by, the Route set and the CSeq number, folded to 32 bits.
func loopTail(h uint64, m *parser.Message, top *parser.Via, routes *routeCache) uint32 {
	h = fnv1a.Add(fnv1a.Sep(h), top.Host)
	h = fnv1a.Sep(h) ^ uint64(top.Port)
	for i := range m.NumRoute() {
		h = fnv1a.Sep(h)
		if u, err := routes.at(m, i); err == nil {
			h = fnv1a.Add(h, u.Raw)
		}
	}
	n, _ := m.CSeq()
	h = fnv1a.Mul(fnv1a.Sep(h) ^ uint64(n))
	return uint32(h ^ h>>32)
}

// branchHashes returns transactionHash(m, top) and loopHash(m, top,
// routes), bit for bit, computed together: each is a chain of FNV-1a steps,
// one multiply per byte waiting on the last, so the bytes of the two are
// taken side by side where both have some (the Request-URI with the
// branch, the Call-ID with the sent-by host), and the CPU runs the two
// chains at once. The values are in every branch siplb writes, which the
// CANCEL and the ACK of another instance or version must find again: they
// may never change (TestBranchHashesMatch, TestProcessGolden).
//
// The third, call, is balance.HashKey(m.CallID()), the hash a Call-ID-keyed
// pool picks a new dialog's member by, taken beside the others.
func branchHashes(m *parser.Message, top *parser.Via, routes *routeCache) (tx uint64, loop uint32, call uint64) {
	if !bytes.HasPrefix(top.Branch, []byte(branchCookie)) {
		return transactionHash(m, top), loopHash(m, top, routes), fnv1a.Add(fnv1a.Offset, m.CallID())
	}
	l, t, call := add3(fnv1a.Offset, m.RequestURI(), fnv1a.Offset, top.Branch, fnv1a.Offset, m.CallID())
	l, t = add2(fnv1a.Sep(l), m.CallID(), fnv1a.Sep(t), top.Host)
	tx = fnv1a.Sep(t) ^ uint64(top.Port)
	l = fnv1a.Add(fnv1a.Sep(l), m.FromTag())
	return tx, loopTail(l, m, top, routes), call
}

// add3 is add2 with a third chain.
func add3(a uint64, x []byte, b uint64, y []byte, c uint64, z []byte) (uint64, uint64, uint64) {
	n := min(len(x), len(y), len(z))
	xs, ys, zs := x[:n], y[:n], z[:n]
	for i, v := range xs {
		a = fnv1a.Mul(a ^ uint64(v))
		b = fnv1a.Mul(b ^ uint64(ys[i]))
		c = fnv1a.Mul(c ^ uint64(zs[i]))
	}
	a, b = add2(a, x[n:], b, y[n:])
	return a, b, fnv1a.Add(c, z[n:])
}

// add2 is fnv1a.Add(a, x) and fnv1a.Add(b, y), the two chains interleaved.
func add2(a uint64, x []byte, b uint64, y []byte) (uint64, uint64) {
	n := min(len(x), len(y))
	xs, ys := x[:n], y[:n]
	for i, c := range xs {
		a = fnv1a.Mul(a ^ uint64(c))
		b = fnv1a.Mul(b ^ uint64(ys[i]))
	}
	return fnv1a.Add(a, x[n:]), fnv1a.Add(b, y[n:])
}

// appendBranchTail appends the part of the branch after the leg's viaHead
// and the in-leg, signed by the ring's current key.
func (f *Forwarder) appendBranchTail(dst []byte, in int, tx uint64, loop uint32, conn pool.ConnID) []byte {
	dst = appendHex16(dst, tx)
	dst = appendHex8(dst, loop)
	dst = appendHex16(dst, uint64(conn))
	return appendHex16(dst, f.ring.Load().keys[0].branch.branchMAC(in, tx, loop, conn))
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
	switch len(b) {
	case 16:
		hi, ok1 := parseHex8(b)
		lo, ok2 := parseHex8(b[8:])
		return uint64(hi)<<32 | uint64(lo), ok1 && ok2
	case 8:
		v, ok := parseHex8(b)
		return uint64(v), ok
	}
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

// SWAR constants: every byte of a uint64 set to 0x01, to 0x80.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// parseHex8 parses the 8 lowercase hex digits that start b (len(b) >= 8) a
// word at a time: parseHex's answer for them, with no table and no loop.
func parseHex8(b []byte) (uint32, bool) {
	x := binary.BigEndian.Uint64(b) // the first digit in the top byte
	// Per byte c < 0x80, c+(0x80-lo) has its high bit set iff c >= lo, and
	// no sum carries into the next byte; a byte >= 0x80 fails on its own.
	digit := (x + 0x50*ones) &^ (x + 0x46*ones)  // '0' <= c <= '9'
	letter := (x + 0x1f*ones) &^ (x + 0x19*ones) // 'a' <= c <= 'f'
	ok := (digit|letter)&highs == highs && x&highs == 0
	v := x&(0x0f*ones) + (letter>>7&ones)*9 // each byte its digit's value
	v = (v | v>>4) & 0x00ff00ff00ff00ff
	v = (v | v>>8) & 0x0000ffff0000ffff
	v = (v | v>>16) & 0x00000000ffffffff
	return uint32(v), ok
}

// hex8 spreads x as 8 lowercase hex digits over a uint64, the most
// significant digit in the top byte (binary.BigEndian order).
func hex8(x uint32) uint64 {
	v := uint64(x)
	v = (v | v<<16) & 0x0000ffff0000ffff
	v = (v | v<<8) & 0x00ff00ff00ff00ff
	v = (v | v<<4) & 0x0f0f0f0f0f0f0f0f
	letters := (v + 0x06*ones) >> 4 & ones // 1 in each byte that is 10-15
	return v + '0'*ones + letters*('a'-'0'-10)
}

// appendHex8 is appendHex(dst, uint64(x), 8), a word at a time.
func appendHex8(dst []byte, x uint32) []byte {
	return binary.BigEndian.AppendUint64(dst, hex8(x))
}

// appendHex2 is appendHex(dst, uint64(x), 2), with no loop.
func appendHex2(dst []byte, x byte) []byte {
	const digits = "0123456789abcdef"
	return append(dst, digits[x>>4], digits[x&15])
}

// appendHex4 is appendHex(dst, uint64(x), 4), with no loop.
func appendHex4(dst []byte, x uint16) []byte {
	const digits = "0123456789abcdef"
	return append(dst, digits[x>>12], digits[x>>8&15], digits[x>>4&15], digits[x&15])
}

// appendHex16 is appendHex(dst, v, 16), a word at a time.
func appendHex16(dst []byte, v uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, hex8(uint32(v>>32)))
	return binary.BigEndian.AppendUint64(dst, hex8(uint32(v)))
}

// isLoop reports whether m has looped (§16.3 step 4): its top Via is one of
// siplb's (it came straight back: nothing else handled it), or a Via of
// siplb's further down carries the loop hash m gets again (it came back
// unchanged through other elements).
// top is m's top Via, as TopVia returns it.
func (f *Forwarder) isLoop(m *parser.Message, top *parser.Via, loop uint32) bool {
	if len(top.Branch) == branchLen {
		if _, _, _, ok := f.ourBranch(top.Branch); ok {
			return true
		}
	}
	vias := m.Vias()
	if !vias.Pass() {
		return false
	}
	want := hex8(loop)
	var v parser.Via
	for vias.Next(&v) {
		// Below the top, only a Via with m's loop hash can say loop: the
		// compare comes before the MAC.
		if len(v.Branch) != branchLen || binary.BigEndian.Uint64(v.Branch[branchLoopOff:]) != want {
			continue
		}
		if _, _, _, ok := f.ourBranch(v.Branch); ok {
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
