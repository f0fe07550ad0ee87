package engine

import (
	"net/netip"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/internal/hep"
	"github.com/siplb/siplb/pool"
)

// Capture mirrors the SIP messages the Forwarder receives and sends to a
// capture server (hep.Sender sends them to Homer as HEPv3).
type Capture interface {
	// Capture is given one message received and, unless out is nil, the
	// message siplb sends for it (forwarded, or a stateless reply). It is
	// called on the data path: it must not block, and must not keep in,
	// out or their slices after it returns. The packets come with a zero
	// Time: the Capture stamps them with the time of the call.
	Capture(in, out *hep.Packet)
}

// SetCapture mirrors every message to c; nil turns capture off. Call it
// before the server runs.
//
// The hook is ProcessConn, so every transport is covered. A message is
// captured once the edge defences admitted it: the datagrams of a blocked
// flood source, of one an allow or deny list refuses, keep-alives and
// datagrams that are not SIP are not mirrored (a flood would otherwise
// reach the collector too). A message waiting for DNS is captured when it
// is processed again. Addresses are the real peers' and the listeners'
// own: for a connection siplb opened to a backend, the local address is
// its listener's, not the connection's ephemeral port.
func (f *Forwarder) SetCapture(c Capture) { f.capture = c }

// captured holds the packets of one capture, in the Scratch so that
// handing their pointers to Capture allocates nothing.
type captured struct {
	in, out hep.Packet
}

// processCaptured is ProcessConn with capture on: it processes the message,
// then hands it and what is sent for it to f.capture.
func (f *Forwarder) processCaptured(s *Scratch, b []byte, src netip.AddrPort, in *Leg, conn pool.ConnID) Result {
	r := f.processConn(s, b, src, in, conn)
	if !capturable(&r, b) {
		return r
	}
	c := &s.capture
	var callID []byte
	if m := &s.Msg; len(b) > 0 && len(m.Buf) == len(b) && &m.Buf[0] == &b[0] {
		callID = m.CallID() // parsed from b: empty if it failed before Call-ID
	}
	// No time: the Capture stamps both packets with one reading of its
	// clock, taken after processing. A clock read here costs the data path
	// more than the encoding (over 50 ns for time.Now on a virtual
	// machine's kvm-clock), and siplb takes microseconds to decide: the
	// stamp is that late for what was received, and the same for what is
	// sent, whose frame goes second, so a collector that orders equal
	// times by arrival keeps the order.
	c.in = hep.Packet{Src: src, Dst: in.Addr, IPProto: ipProto(in.Transport), CorrelationID: callID, Payload: b}
	if r.Out == nil {
		f.capture.Capture(&c.in, nil)
		return r
	}
	c.out = hep.Packet{Src: r.Leg.Addr, Dst: r.To, IPProto: ipProto(r.Leg.Transport), CorrelationID: callID, Payload: r.Out}
	f.capture.Capture(&c.in, &c.out)
	return r
}

// capturable reports whether the message b, which got r, is mirrored: not
// when it is to be processed again after DNS, nor when it is not SIP or
// the edge defences refused it.
func capturable(r *Result, b []byte) bool {
	switch {
	case r.Resolve != nil:
		return false
	case r.Drop == DropFlood, r.Drop == DropDenied, r.Drop == DropNotSIP:
		return false
	case r.Out == nil && r.Drop == DropNone && isKeepAlive(b):
		return false
	}
	return true
}

// ipProto is the IP protocol a leg's messages travel over: TLS and
// WebSocket ride on TCP.
func ipProto(t balance.Transport) uint8 {
	if t == balance.UDP {
		return hep.ProtoUDP
	}
	return hep.ProtoTCP
}

var _ Capture = (*hep.Sender)(nil)
