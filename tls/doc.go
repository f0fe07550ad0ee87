// Package tls is siplb's TLS layer (SIP over TLS, RFC 3261 §26.2.1; the sips:
// legs of RFC 5630): it loads certificates and keys from PEM files, a CA bundle,
// the client-certificate policy of a listener (none / optional / required, as
// Net::SIP's verify_client 0 / -1 / 1), several certificates chosen by SNI, and
// reloads all of them on demand (cmd/siplb calls Store.Reload on SIGHUP) without
// touching established connections. It hands the engine a net.Listener whose
// connections are *tls.Conn, and a Dial for TLS connections to backends that
// verifies them against a CA bundle and a server name.
//
// Owns: Config (the tls: block of a listener or a pool), its validation with
// key paths, the Store of loaded certificates published through an atomic
// pointer, the *tls.Config values built from it, Listen, Dial and Handshake.
//
// Must not: parse SIP, frame messages, keep connections, pick backends or read
// configuration files other than the PEM files it is told about. It uses only
// crypto/tls, crypto/x509 and the standard library; TLS 1.1 and older are never
// negotiated.
//
// Concurrency: a Store is safe for concurrent use. The loaded certificates are
// an immutable generation behind an atomic pointer: a handshake reads the
// current one without locking, and Reload builds a new generation and swaps it
// in (Reload calls are serialized by a mutex). A connection keeps the
// certificate and verified chain it handshook with; only new handshakes see a
// reload. Session tickets are keyed per generation, so a reload also ends the
// resumption of sessions verified against the old CA bundle. The *tls.Config
// values returned by ServerConfig and ClientConfig are new on every call and
// belong to the caller.
package tls
