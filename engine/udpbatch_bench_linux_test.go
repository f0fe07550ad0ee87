package engine

import (
	"strconv"
	"testing"
	"unsafe"

	"github.com/siplb/siplb/internal/mmsg"
)

// BenchmarkBatch is one batch of the batched UDP path without its two
// system calls: batchSize INVITEs with distinct Call-IDs land in their
// receive slots (the copy recvmmsg makes), each is decided and its output
// queued where Process built it, and the outputs are read once as sendmmsg
// copies them. It shows what the buffers' layout costs the data path
// (cache sets, pages touched); ns/op is per datagram.
func BenchmarkBatch(b *testing.B) {
	f := newTestForwarder(b)
	startClock(f)
	bs := &batchSock{s: &Server{f: f}, leg: f.Legs()[0], scr: f.NewScratch()}
	bs.initBuffers()
	msgs := make([][]byte, batchSize)
	for i := range msgs {
		msgs[i] = fixture4.invite("batch"+strconv.Itoa(i)+"@x", "z9hG4bKbatch"+strconv.Itoa(i))
	}
	wire := make([]byte, slotSize)
	land := func() {
		for i, m := range msgs {
			copy(bs.rbuf[i*slotStride:], m)
			bs.rhdr[i].Len = uint32(len(m))
			mmsg.PutAddrPort(fixture4.client, &bs.raddr[i])
		}
		bs.rn = len(msgs)
	}
	land()
	bs.handle()
	if bs.on != batchSize {
		b.Fatalf("%d of %d datagrams queued", bs.on, batchSize)
	}
	bs.on, bs.ooff = 0, 0
	b.ReportAllocs()
	for b.Loop() {
		land()
		bs.handle()
		for i := range bs.on {
			p := bs.oiov[i]
			copy(wire, unsafe.Slice(p.Base, int(p.Len)))
		}
		bs.on, bs.ooff = 0, 0
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/datagram")
}
