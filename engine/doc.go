// Package engine is siplb's data path: the reactor that reads SIP from the
// legs' sockets, the stateless forwarding rules of RFC 3261 §16.11 that decide
// what to do with each message, the stateless replies (400, 482, 483, 503, and
// 200 to OPTIONS aimed at the balancer itself), and the sends.
//
// The forwarding rules are pure functions of (message, source, leg, backend
// table): Forwarder.Process takes them and returns the bytes to send and where,
// or a named drop reason. They are tested without sockets. The Server wraps them
// in gnet event loops, one UDP socket per loop with SO_REUSEPORT.
//
// Engine must not know how a backend is chosen: it asks package balance for a
// pick and reads the table through balance.Balancer's atomic pointer.
//
// Concurrency: a Forwarder is immutable after NewForwarder and shared by all
// loops. Everything mutable on the hot path (the parsed message, the output
// buffer, counters) lives in a Scratch owned by exactly one event loop.
package engine
