// Package pool is siplb's SocketPool (after Net::SIP::SocketPool): the limits
// of connected sockets (connect timeout, idle expiry scaled by the number of
// open sockets, header and body sizes, read size, caps per source IP and in
// total, the slow-loris deadline), the registry that names every TCP/TLS
// connection by a ConnID small enough to travel in a Via branch or a
// Record-Route, the index of outgoing connections by destination so a message
// reuses a connection before opening one, and pooled byte buffers for writes
// that cross event loops.
//
// pool must not parse SIP beyond framing (package parser frames), and does no
// I/O itself: the engine owns the sockets and tells the pool what opened and
// closed.
//
// Concurrency: a Registry is safe for concurrent use; Get is lock-free and
// allocation-free (the hot path), Add and Remove take a mutex (connection
// setup and teardown only). A Dests index is owned by one event loop.
package pool
