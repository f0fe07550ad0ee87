package hep

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// IP protocol numbers of the ip proto chunk (IANA). TLS and WebSocket
// legs carry SIP over TCP, so they are ProtoTCP too.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// TypeSIP is the protocol type chunk's value for SIP.
const TypeSIP uint8 = 1

// The address families of the ip family chunk, as HEP writes them (the
// Linux AF_INET and AF_INET6).
const (
	familyIPv4 uint8 = 2
	familyIPv6 uint8 = 10
)

// MaxFrame is the largest frame Sender sends: the largest UDP payload
// over IPv4. A message whose frame would be larger is not encoded.
const MaxFrame = 65507

// The generic chunk types (vendor 0x0000) siplb writes.
const (
	chunkFamily    uint16 = 0x0001 // uint8
	chunkIPProto   uint16 = 0x0002 // uint8
	chunkSrc4      uint16 = 0x0003 // 4 bytes
	chunkDst4      uint16 = 0x0004
	chunkSrc6      uint16 = 0x0005 // 16 bytes
	chunkDst6      uint16 = 0x0006
	chunkSrcPort   uint16 = 0x0007 // uint16
	chunkDstPort   uint16 = 0x0008
	chunkTimeSec   uint16 = 0x0009 // uint32, seconds since the epoch
	chunkTimeUsec  uint16 = 0x000a // uint32, microseconds added to them
	chunkProtoType uint16 = 0x000b // uint8
	chunkCaptureID uint16 = 0x000c // uint32
	chunkAuthKey   uint16 = 0x000e // octets
	chunkPayload   uint16 = 0x000f // octets
	chunkCorrID    uint16 = 0x0011 // octets
)

// The pad chunk that pads a frame sent by UDP GSO (send_linux.go) to its
// class's size: vendor "si", type "pd", zeros after its header. No HEP
// vendor id is siplb's to take; a vendor chunk is what collectors skip.
const (
	padVendor uint16 = 0x7369
	padType   uint16 = 0x7064
)

// frameHeaderLen is "HEP3" and the 16-bit total length; chunkHeaderLen is
// a chunk's vendor id, type and 16-bit length (which counts these 6 bytes).
const (
	frameHeaderLen = 6
	chunkHeaderLen = 6
)

// fixedLen is what every frame has besides its addresses and octet
// chunks: family, ip proto, two ports, the two time chunks, proto type and
// capture id.
const fixedLen = frameHeaderLen + 2*(chunkHeaderLen+1) + 2*(chunkHeaderLen+2) +
	2*(chunkHeaderLen+4) + (chunkHeaderLen + 1) + (chunkHeaderLen + 4)

// Packet is one SIP message as seen on the wire. Its slices are read only
// during Encoder.Append or Sender.Capture, never kept.
type Packet struct {
	// Time is when the message was seen. Zero: Sender.Capture stamps it
	// with the time of the call (Encoder.Append writes it as it is).
	Time     time.Time
	Src, Dst netip.AddrPort // an invalid one is written as the other's family's unspecified address, port 0
	IPProto  uint8          // ProtoUDP or ProtoTCP
	// CorrelationID is the Call-ID, which lets Homer group the messages
	// of a call; nil writes no correlation chunk.
	CorrelationID []byte
	Payload       []byte
}

// Encoder writes HEPv3 frames for one capture agent. The zero value is an
// agent with id 0 and no auth key.
type Encoder struct {
	CaptureID uint32 // the capture agent id chunk (Homer's node id)
	AuthKey   []byte // the auth key chunk (the collector's password); empty: none
}

// Len returns the length of p's frame.
func (e *Encoder) Len(p *Packet) int {
	n := fixedLen + chunkHeaderLen + len(p.Payload)
	if v6(p) {
		n += 2 * (chunkHeaderLen + 16)
	} else {
		n += 2 * (chunkHeaderLen + 4)
	}
	if len(e.AuthKey) > 0 {
		n += chunkHeaderLen + len(e.AuthKey)
	}
	if len(p.CorrelationID) > 0 {
		n += chunkHeaderLen + len(p.CorrelationID)
	}
	return n
}

// Append appends p's frame to dst and returns the extended buffer. The
// caller bounds the frame with Len first: one longer than 65535 bytes
// cannot be written (its length fields would wrap), and Append returns dst
// unchanged.
func (e *Encoder) Append(dst []byte, p *Packet) []byte {
	n := e.Len(p)
	if n > 0xffff {
		return dst
	}
	dst = append(dst, 'H', 'E', 'P', '3')
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	src, to := p.Src.Addr().Unmap(), p.Dst.Addr().Unmap()
	if v6(p) {
		dst = appendUint8(dst, chunkFamily, familyIPv6)
		dst = appendUint8(dst, chunkIPProto, p.IPProto)
		a, b := as16(src), as16(to)
		dst = appendOctets(dst, chunkSrc6, a[:])
		dst = appendOctets(dst, chunkDst6, b[:])
	} else {
		dst = appendUint8(dst, chunkFamily, familyIPv4)
		dst = appendUint8(dst, chunkIPProto, p.IPProto)
		a, b := as4(src), as4(to)
		dst = appendOctets(dst, chunkSrc4, a[:])
		dst = appendOctets(dst, chunkDst4, b[:])
	}
	dst = appendUint16(dst, chunkSrcPort, p.Src.Port())
	dst = appendUint16(dst, chunkDstPort, p.Dst.Port())
	sec, nsec := p.Time.Unix(), p.Time.Nanosecond()
	dst = appendUint32(dst, chunkTimeSec, uint32(sec))
	dst = appendUint32(dst, chunkTimeUsec, uint32(nsec/1000))
	dst = appendUint8(dst, chunkProtoType, TypeSIP)
	dst = appendUint32(dst, chunkCaptureID, e.CaptureID)
	if len(e.AuthKey) > 0 {
		dst = appendOctets(dst, chunkAuthKey, e.AuthKey)
	}
	if len(p.CorrelationID) > 0 {
		dst = appendOctets(dst, chunkCorrID, p.CorrelationID)
	}
	return appendOctets(dst, chunkPayload, p.Payload)
}

// v6 reports whether p's frame carries IPv6 chunks: when either address is
// IPv6 (a v4 one is then written v4-mapped), since a frame has one family.
func v6(p *Packet) bool {
	a, b := p.Src.Addr().Unmap(), p.Dst.Addr().Unmap()
	return a.Is6() || b.Is6()
}

func as4(a netip.Addr) [4]byte {
	if !a.Is4() {
		return [4]byte{}
	}
	return a.As4()
}

func as16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16() // v4-mapped for an IPv4 address
}

func appendChunkHeader(dst []byte, typ uint16, valueLen int) []byte {
	dst = append(dst, 0, 0) // vendor 0x0000: generic chunks
	dst = binary.BigEndian.AppendUint16(dst, typ)
	return binary.BigEndian.AppendUint16(dst, uint16(chunkHeaderLen+valueLen))
}

func appendUint8(dst []byte, typ uint16, v uint8) []byte {
	return append(appendChunkHeader(dst, typ, 1), v)
}

func appendUint16(dst []byte, typ uint16, v uint16) []byte {
	return binary.BigEndian.AppendUint16(appendChunkHeader(dst, typ, 2), v)
}

func appendUint32(dst []byte, typ uint16, v uint32) []byte {
	return binary.BigEndian.AppendUint32(appendChunkHeader(dst, typ, 4), v)
}

func appendOctets(dst []byte, typ uint16, v []byte) []byte {
	return append(appendChunkHeader(dst, typ, len(v)), v...)
}
