// Package parser parses SIP messages (RFC 3261) into spans of the input buffer,
// frames SIP over streams by Content-Length, and writes the edits a stateless
// proxy makes (push and pop Via, decrement Max-Forwards, pop Route, add
// Record-Route, rewrite Contact and Request-URI) in one pass into an output
// buffer.
//
// The package does no I/O and allocates nothing per message on the hot path:
// a Message holds offsets into the bytes it was given, every accessor returns
// a sub-slice of those bytes or a small value, and every reject is one of the
// preallocated *Error sentinels, which carry the SIP status and reason phrase
// of the stateless answer the message earns.
//
// Parse checks what every forwarding decision reads (start line, Call-ID,
// CSeq, From and To with their tags, the top Via, Max-Forwards,
// Content-Length, the limits); the comma lists a proxy reads only on some
// paths (Via below the top, Route, Record-Route, Contact) are split and
// checked by their accessors on first use, which return the list's
// Malformed error.
//
// Concurrency: a Message is owned by one goroutine (one event loop), even
// for reading, since the accessors cache the lists they split. Parse,
// Frame, ParseURI, LookupHeader and AppendResponse keep no shared state and may
// be called from any number of goroutines at once.
package parser
