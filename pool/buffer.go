package pool

import "github.com/valyala/bytebufferpool"

// maxPooled is the largest buffer put back: a 64 KiB body plus a 16 KiB
// header and room for the edits. Larger ones are left to the GC so one
// oversized message does not pin memory.
const maxPooled = 96 << 10

// Buffer is a pooled byte buffer for a write that outlives the event loop
// callback that made it (a write queued to another loop's connection).
type Buffer = bytebufferpool.ByteBuffer

// GetBuffer returns an empty buffer from the pool.
func GetBuffer() *Buffer { return bytebufferpool.Get() }

// PutBuffer returns b to the pool unless it grew past the limit.
func PutBuffer(b *Buffer) {
	if cap(b.B) > maxPooled {
		return
	}
	bytebufferpool.Put(b)
}

// Copy returns a pooled buffer holding a copy of p.
func Copy(p []byte) *Buffer {
	b := GetBuffer()
	b.B = append(b.B[:0], p...)
	return b
}
