// Package hep mirrors SIP messages to a capture server (Homer's
// heplify-server, sipcapture) in HEP version 3, the Homer Encapsulation
// Protocol: a frame of "HEP3", its total length and a list of chunks, each
// a vendor id, a type, its own length and a value, all big-endian.
//
// Encoder writes one frame per message (encode.go): the addresses (IPv4
// or IPv6 chunks), the ports, the time in seconds and microseconds, the IP
// protocol (UDP 17, TCP 6), protocol type SIP (1), the capture agent id,
// the auth key (the collector's password) when one is set, the payload and
// the Call-ID as correlation id. It appends to the caller's buffer and
// allocates nothing.
//
// Sender carries frames off the data path (sender.go): Capture reserves a
// record of the bytes it needs in a bounded byte ring (ring.go: one
// compare-and-swap to reserve, one store to hand over, never a wait; the
// records of a burst lie one after another), encodes into it from a
// per-family template of the chunks every frame has (template.go),
// stamping packets that come without a time from a clock that reads only
// the monotonic clock; when the ring has no room the messages are dropped
// and counted. One goroutine (Run) sends the queued frames
// every few milliseconds: over UDP one frame a datagram, up to 512 a
// system call where the platform has sendmmsg, and where Linux has UDP
// GSO up to 64 frames of one size class an entry of that call, padded to
// the class's size and cut into datagrams by the kernel (send_linux.go);
// over TCP (stream.go) up to 512 frames a writev on one connection,
// opened again after a backoff when it breaks. Over loopback a datagram
// sent alone costs the sender the kernel's whole path, the collector's
// receive included (1.5-2 µs on a small virtual machine); in GSO entries
// a third to a quarter of that; a frame on a TCP stream in large writes
// less again.
//
// Concurrency: an Encoder is immutable; a Sender's Capture may be called
// from any number of goroutines at once, and Run from one.
package hep
