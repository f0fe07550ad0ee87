package hep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// frame is a HEPv3 frame as the test's own decoder reads it: every generic
// chunk's value by type.
type frame struct {
	chunks map[uint16][]byte
	order  []uint16
	pad    int // bytes of the pad chunk (GSO), 0 if none
}

var errBadFrame = errors.New("bad frame")

// decode reads one HEPv3 frame, written plainly from the layout (not from
// the encoder): "HEP3", a total length equal to len(b), then chunks of
// vendor, type, length (at least 6, counting the header) and value, which
// must fill the frame exactly. The one chunk of a vendor allowed is the pad
// chunk, last, all zeros after its header.
func decode(b []byte) (*frame, error) {
	if len(b) < 6 || string(b[:4]) != "HEP3" {
		return nil, errBadFrame
	}
	if int(binary.BigEndian.Uint16(b[4:6])) != len(b) {
		return nil, errBadFrame
	}
	f := &frame{chunks: map[uint16][]byte{}}
	for i := 6; i < len(b); {
		if len(b)-i < 6 {
			return nil, errBadFrame
		}
		vendor := binary.BigEndian.Uint16(b[i:])
		typ := binary.BigEndian.Uint16(b[i+2:])
		n := int(binary.BigEndian.Uint16(b[i+4:]))
		if n < 6 || i+n > len(b) {
			return nil, errBadFrame
		}
		if vendor != 0 {
			if vendor != padVendor || typ != padType || i+n != len(b) || bytes.Count(b[i+6:i+n], []byte{0}) != n-6 {
				return nil, errBadFrame
			}
			f.pad = n
			break
		}
		if _, dup := f.chunks[typ]; dup {
			return nil, errBadFrame
		}
		f.chunks[typ] = b[i+6 : i+n]
		f.order = append(f.order, typ)
		i += n
	}
	return f, nil
}

func (f *frame) u8(t uint16) int {
	if v, ok := f.chunks[t]; ok && len(v) == 1 {
		return int(v[0])
	}
	return -1
}

func (f *frame) u16(t uint16) int {
	if v, ok := f.chunks[t]; ok && len(v) == 2 {
		return int(binary.BigEndian.Uint16(v))
	}
	return -1
}

func (f *frame) u32(t uint16) int64 {
	if v, ok := f.chunks[t]; ok && len(v) == 4 {
		return int64(binary.BigEndian.Uint32(v))
	}
	return -1
}

func (f *frame) addr(t uint16) netip.Addr {
	a, _ := netip.AddrFromSlice(f.chunks[t])
	return a
}

func TestEncoderAppend(t *testing.T) {
	at := time.Unix(1764633600, 123456789)
	sip := []byte("INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: abc@x\r\n\r\n")
	tests := []struct {
		name     string
		enc      Encoder
		p        Packet
		family   int
		src, dst netip.Addr
		srcType  uint16 // the address chunks expected
		dstType  uint16
	}{
		{
			name:   "ipv4 udp with auth key and call-id",
			enc:    Encoder{CaptureID: 2001, AuthKey: []byte("s3cret")},
			p:      Packet{Time: at, Src: netip.MustParseAddrPort("192.0.2.10:5070"), Dst: netip.MustParseAddrPort("127.0.0.1:5060"), IPProto: ProtoUDP, CorrelationID: []byte("abc@x"), Payload: sip},
			family: 2, src: netip.MustParseAddr("192.0.2.10"), dst: netip.MustParseAddr("127.0.0.1"), srcType: 3, dstType: 4,
		},
		{
			name:   "ipv6 tcp, no auth key, no call-id",
			enc:    Encoder{CaptureID: 7},
			p:      Packet{Time: at, Src: netip.MustParseAddrPort("[2001:db8::1]:5061"), Dst: netip.MustParseAddrPort("[::1]:40000"), IPProto: ProtoTCP, Payload: sip},
			family: 10, src: netip.MustParseAddr("2001:db8::1"), dst: netip.MustParseAddr("::1"), srcType: 5, dstType: 6,
		},
		{
			name:   "v4-mapped source is ipv4",
			p:      Packet{Time: at, Src: netip.MustParseAddrPort("[::ffff:10.0.0.1]:5060"), Dst: netip.MustParseAddrPort("10.0.0.2:5060"), IPProto: ProtoUDP, Payload: sip},
			family: 2, src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2"), srcType: 3, dstType: 4,
		},
		{
			name:   "mixed families are written as ipv6",
			p:      Packet{Time: at, Src: netip.MustParseAddrPort("10.0.0.1:5060"), Dst: netip.MustParseAddrPort("[2001:db8::2]:5060"), IPProto: ProtoUDP, Payload: sip},
			family: 10, src: netip.MustParseAddr("::ffff:10.0.0.1"), dst: netip.MustParseAddr("2001:db8::2"), srcType: 5, dstType: 6,
		},
		{
			name:   "unknown destination",
			p:      Packet{Time: at, Src: netip.MustParseAddrPort("10.0.0.1:5060"), IPProto: ProtoTCP, Payload: sip},
			family: 2, src: netip.MustParseAddr("10.0.0.1"), dst: netip.IPv4Unspecified(), srcType: 3, dstType: 4,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("kept")
			out := tc.enc.Append(bytes.Clone(prefix), &tc.p)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("Append overwrote dst's bytes")
			}
			b := out[len(prefix):]
			if len(b) != tc.enc.Len(&tc.p) {
				t.Errorf("frame is %d bytes, Len says %d", len(b), tc.enc.Len(&tc.p))
			}
			f, err := decode(b)
			if err != nil {
				t.Fatalf("decode: %v\n% x", err, b)
			}
			if got := f.u8(1); got != tc.family {
				t.Errorf("ip family = %d, want %d", got, tc.family)
			}
			if got := f.u8(2); got != int(tc.p.IPProto) {
				t.Errorf("ip proto = %d, want %d", got, tc.p.IPProto)
			}
			if got := f.addr(tc.srcType); got != tc.src {
				t.Errorf("source address (chunk %d) = %v, want %v", tc.srcType, got, tc.src)
			}
			if got := f.addr(tc.dstType); got != tc.dst {
				t.Errorf("destination address (chunk %d) = %v, want %v", tc.dstType, got, tc.dst)
			}
			other := map[uint16]uint16{3: 5, 4: 6, 5: 3, 6: 4}
			if _, ok := f.chunks[other[tc.srcType]]; ok {
				t.Errorf("frame has address chunks of both families: %v", f.order)
			}
			if got := f.u16(7); got != int(tc.p.Src.Port()) {
				t.Errorf("source port = %d, want %d", got, tc.p.Src.Port())
			}
			if got := f.u16(8); got != int(tc.p.Dst.Port()) {
				t.Errorf("destination port = %d, want %d", got, tc.p.Dst.Port())
			}
			if got := f.u32(9); got != 1764633600 {
				t.Errorf("seconds = %d, want 1764633600", got)
			}
			if got := f.u32(10); got != 123456 {
				t.Errorf("microseconds = %d, want 123456", got)
			}
			if got := f.u8(11); got != 1 {
				t.Errorf("protocol type = %d, want 1 (SIP)", got)
			}
			if got := f.u32(12); got != int64(tc.enc.CaptureID) {
				t.Errorf("capture id = %d, want %d", got, tc.enc.CaptureID)
			}
			if key, ok := f.chunks[14]; ok != (len(tc.enc.AuthKey) > 0) || !bytes.Equal(key, tc.enc.AuthKey) {
				t.Errorf("auth key = %q (present %v), want %q", key, ok, tc.enc.AuthKey)
			}
			if id, ok := f.chunks[17]; ok != (tc.p.CorrelationID != nil) || !bytes.Equal(id, tc.p.CorrelationID) {
				t.Errorf("correlation id = %q (present %v), want %q", id, ok, tc.p.CorrelationID)
			}
			if got := f.chunks[15]; !bytes.Equal(got, tc.p.Payload) {
				t.Errorf("payload = %q, want %q", got, tc.p.Payload)
			}
		})
	}
}

// A frame too long for the 16-bit length fields is not written at all.
func TestEncoderAppendTooLong(t *testing.T) {
	var e Encoder
	p := Packet{Src: netip.MustParseAddrPort("10.0.0.1:5060"), Dst: netip.MustParseAddrPort("10.0.0.2:5060"), Payload: make([]byte, 0xffff)}
	if got := e.Append([]byte("x"), &p); string(got) != "x" {
		t.Errorf("Append of a %d-byte frame wrote %d bytes", e.Len(&p), len(got)-1)
	}
}

func BenchmarkEncoderAppend(b *testing.B) {
	e := Encoder{CaptureID: 2001, AuthKey: []byte("s3cret")}
	p := Packet{Time: time.Now(), Src: netip.MustParseAddrPort("192.0.2.10:5070"), Dst: netip.MustParseAddrPort("127.0.0.1:5060"),
		IPProto: ProtoUDP, CorrelationID: []byte("abc@x"), Payload: bytes.Repeat([]byte("x"), 600)}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(p.Payload)))
	for b.Loop() {
		buf = e.Append(buf[:0], &p)
	}
}
