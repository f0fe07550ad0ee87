package hep

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// The template writes what Append writes, for both families, with and
// without an auth key and a correlation id.
func TestTemplateMatchesAppend(t *testing.T) {
	at := time.Unix(1764633600, 987654321)
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.1:5060"), netip.MustParseAddrPort("[2001:db8::7]:5061"),
		netip.MustParseAddrPort("[::ffff:10.1.2.3]:40000"), {},
	}
	for _, enc := range []Encoder{{}, {CaptureID: 0xdeadbeef, AuthKey: []byte("key")}} {
		tpl := newTemplate(enc)
		for _, src := range addrs {
			for _, dst := range addrs {
				for _, id := range [][]byte{nil, []byte("call@x")} {
					p := Packet{Time: at, Src: src, Dst: dst, IPProto: ProtoTCP, CorrelationID: id, Payload: []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")}
					want := enc.Append([]byte("pre"), &p)
					got := tpl.appendFrame([]byte("pre"), &p, enc.Len(&p), 0)
					if !bytes.Equal(got, want) {
						t.Errorf("key %q, %v -> %v, id %q:\n got % x\nwant % x", enc.AuthKey, src, dst, id, got, want)
					}
				}
			}
		}
	}
}

func BenchmarkTemplate(b *testing.B) {
	e := Encoder{CaptureID: 2001, AuthKey: []byte("s3cret")}
	tpl := newTemplate(e)
	p := Packet{Time: time.Now(), Src: netip.MustParseAddrPort("192.0.2.10:5070"), Dst: netip.MustParseAddrPort("127.0.0.1:5060"),
		IPProto: ProtoUDP, CorrelationID: []byte("abc@x"), Payload: bytes.Repeat([]byte("x"), 600)}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = tpl.appendFrame(buf[:0], &p, e.Len(&p), 0)
	}
}
