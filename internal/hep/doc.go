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
// Sender carries frames off the data path (sender.go): Capture encodes
// into a pooled slot, of fixed capacity, from a per-family template of the
// chunks every frame has (template.go), and queues it without ever
// blocking; when no slot is free the messages are dropped and counted. One
// goroutine (Run) sends the queued frames: over UDP one frame a datagram,
// up to 64 a system call where the platform has sendmmsg; over TCP
// (stream.go) a batch a writev on one connection, opened again after a
// backoff when it breaks.
//
// Concurrency: an Encoder is immutable; a Sender's Capture may be called
// from any number of goroutines at once, and Run from one.
package hep
