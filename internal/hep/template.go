package hep

import (
	"encoding/binary"
	"net/netip"
)

// template writes the frames of one Encoder fast: the chunks every frame
// has, and the auth key, are copied from a frame encoded once per address
// family, then the values that change are written at their offsets. It
// writes what Encoder.Append writes, byte for byte (a test compares them).
type template struct {
	enc    Encoder
	v4, v6 []byte // a frame's fixed chunks, through the auth key
}

// Offsets in a frame of the values template writes; l is the length of an
// address (4 or 16). The chunks come in Append's order: family, ip proto,
// source and destination address, ports, seconds, microseconds, protocol
// type, capture id, auth key.
const (
	offLen     = 4
	offIPProto = frameHeaderLen + (chunkHeaderLen + 1) + chunkHeaderLen
	offSrc     = frameHeaderLen + 2*(chunkHeaderLen+1) + chunkHeaderLen
)

func offDst(l int) int     { return offSrc + l + chunkHeaderLen }
func offSrcPort(l int) int { return offDst(l) + l + chunkHeaderLen }
func offDstPort(l int) int { return offSrcPort(l) + 2 + chunkHeaderLen }
func offSec(l int) int     { return offDstPort(l) + 2 + chunkHeaderLen }
func offUsec(l int) int    { return offSec(l) + 4 + chunkHeaderLen }

func newTemplate(e Encoder) *template {
	t := &template{enc: e}
	// A frame with no payload ends in an empty payload chunk: the rest is
	// the fixed part.
	cut := func(p *Packet) []byte {
		b := e.Append(nil, p)
		return b[:len(b)-chunkHeaderLen]
	}
	t.v4 = cut(&Packet{Src: netip.AddrPortFrom(netip.IPv4Unspecified(), 0), Dst: netip.AddrPortFrom(netip.IPv4Unspecified(), 0)})
	t.v6 = cut(&Packet{Src: netip.AddrPortFrom(netip.IPv6Unspecified(), 0), Dst: netip.AddrPortFrom(netip.IPv6Unspecified(), 0)})
	return t
}

// appendFrame is Encoder.Append given the frame's length n (Encoder.Len),
// with now (UnixNano) for the time when p.Time is zero.
func (t *template) appendFrame(dst []byte, p *Packet, n int, now int64) []byte {
	if n > 0xffff {
		return dst
	}
	src, to := p.Src.Addr().Unmap(), p.Dst.Addr().Unmap()
	fixed, l := t.v4, 4
	if src.Is6() || to.Is6() {
		fixed, l = t.v6, 16
	}
	off := len(dst)
	dst = append(dst, fixed...)
	b := dst[off:]
	binary.BigEndian.PutUint16(b[offLen:], uint16(n))
	b[offIPProto] = p.IPProto
	if l == 4 {
		a, c := as4(src), as4(to)
		copy(b[offSrc:], a[:])
		copy(b[offDst(4):], c[:])
	} else {
		a, c := as16(src), as16(to)
		copy(b[offSrc:], a[:])
		copy(b[offDst(16):], c[:])
	}
	binary.BigEndian.PutUint16(b[offSrcPort(l):], p.Src.Port())
	binary.BigEndian.PutUint16(b[offDstPort(l):], p.Dst.Port())
	sec, usec := uint32(now/1e9), uint32(now%1e9/1000)
	if !p.Time.IsZero() {
		sec, usec = uint32(p.Time.Unix()), uint32(p.Time.Nanosecond()/1000)
	}
	binary.BigEndian.PutUint32(b[offSec(l):], sec)
	binary.BigEndian.PutUint32(b[offUsec(l):], usec)
	if len(p.CorrelationID) > 0 {
		dst = appendOctets(dst, chunkCorrID, p.CorrelationID)
	}
	return appendOctets(dst, chunkPayload, p.Payload)
}
