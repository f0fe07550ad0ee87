// Package engine is siplb's data path: the sockets of the legs, the stateless
// forwarding rules of RFC 3261 §16 and §16.11 that decide what to do with
// each message, the stateless replies (400 with the defect's name, 416, 482,
// 483, 503, and 200 to an OPTIONS for the balancer itself), and the sends.
//
// The forwarding rules are pure functions of (message, source, leg, backend
// table): Forwarder.Process returns the bytes to send and where, or a named
// drop reason, and is tested without sockets: responses in forward.go, a
// request's steps in request.go. A Via branch siplb writes carries its leg,
// the inbound leg and connection, the transaction and loop hashes and a MAC,
// so responses are routed back with no state (branch.go); the Record-Route
// facing a client, and the Path a REGISTER gets, carry the client's flow
// (flow.go).
//
// Every token siplb mints and later trusts carries a SipHash-2-4 MAC from
// the branch secret's key ring (mac.go); the edge defences (admit.go, over
// package internal/guard) run before a message is parsed: the listener's
// ACL and the flood detector, whose blocks the batched UDP sockets also
// carry out in the kernel with a socket filter (kfilter_linux.go).
//
// The Server runs the rules on:
//   - UDP legs: by default one SO_REUSEPORT socket per leg and loop read with
//     recvmmsg and written with sendmmsg, 32 datagrams a syscall
//     (udpbatch_linux.go); or gnet's event loops (Options.GnetUDP);
//   - TCP legs: siplb accepts on listeners of its own, so an accept error
//     (EMFILE) backs off instead of ending a loop (accept.go), and hands
//     each connection to a gnet event loop; accepted and outgoing
//     connections belong to one loop, which alone reads and closes them;
//     other goroutines write a connection's socket themselves, under its
//     lock, when nothing waits on it (directwrite.go), else hand the write
//     to the loop's mailbox, one wake-up per batch (mailbox.go, stream.go);
//     partial messages are charged to one memory budget (budget.go);
//   - TLS legs: a reader goroutine per connection and a writer that runs
//     while there is something to write (tls.go), since gnet has no TLS;
//     while idle a connection holds no read buffer: the reader waits on a
//     1-byte peek and borrows a pooled buffer only while crypto/tls has
//     bytes to give (tlswire.go);
//   - WebSocket legs (RFC 7118, ws and wss): siplb's accept loop, a
//     net/http server for the upgrade and coder/websocket for the framing,
//     then a reader and a writer as for TLS (ws.go); one SIP message per
//     WebSocket message.
//
// Beside the rules: RFC 7339 overload reports from members shed new dialogs
// (overload.go); SetCapture mirrors every message to a HEP collector off the
// data path (capture.go, over internal/hep); a hitless upgrade hands every
// socket to the next process, and a relay carries a late message for a
// connection the other process holds (handover*.go).
//
// Engine must not know how a backend is chosen: it asks package balance for
// a pick and reads the table through balance.Balancer's atomic pointer.
//
// Concurrency: a Forwarder is immutable after NewForwarder and shared by all
// goroutines (SetProbes, SetObserver and SetCapture are called before the server
// runs; SetSecrets swaps the key ring atomically).
// Everything mutable on the hot path (the parsed message, the output buffer,
// the counters) lives in a Scratch owned by one goroutine at a time; a loop's
// connection maps live in its loopState and are touched only on that loop.
package engine
