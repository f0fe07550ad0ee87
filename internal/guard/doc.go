// Package guard holds siplb's edge defences: the checks that stop floods and
// scanners before they cost a parse, a backend or a reply (after Kamailio's
// pike and secfilter modules). It owns
//
//   - Flood, the flood detector: messages per source and sampling window in a
//     fixed-size set-associative table; a source over the density is blocked
//     for a while (flood.go);
//   - CIDRSet and ACL, prefix sets and the per-listener allow/deny lists
//     (cidr.go, acl.go);
//   - Scanners, the case-insensitive User-Agent (or From display name)
//     signatures of known SIP scanners (scanner.go);
//   - ReplyLimiter, the per-source and total token buckets that bound the
//     stateless replies sent to UDP senders, so the balancer never reflects
//     more than it receives from junk (reply.go);
//   - Config, its defaults and its validation (config.go), and Guard, which
//     ties them together behind the few calls the engine makes (guard.go).
//
// guard does no I/O, parses no SIP and reads no clock: the engine passes the
// source address, the bytes to match and a coarse time in Unix nanoseconds,
// so the hot path makes no time.Now call and tests are deterministic. It
// must not keep per-source state that grows with what the network sends:
// every table is allocated once by New, sized by Config, and entries are
// overwritten or evicted, never added. Spoofed random sources cost CPU, never
// memory.
//
// Concurrency: every exported type is safe for concurrent use by any number
// of goroutines (one per event loop) once built, and its methods are
// lock-free: each table slot is one or two atomic words updated by
// compare-and-swap, what else they read is immutable after construction, and
// the counters are atomic. Check, Match, Contains, Permit and Allow allocate
// nothing.
//
// The races accepted for that are documented where they happen and only make
// counts approximate, never memory unsafe: two goroutines inserting the same
// new source at once may give it two slots of its set (its count splits, so
// it is blocked later, not sooner); a goroutine that read a slot's key just
// before another evicted it may add its one message to the new owner's count
// (at most one message per concurrent caller); and a block may, rarely, be
// reported as new twice. A slot's key is always compared in full, so a
// different source, however hot, never adds to an innocent source's count
// through a hash collision.
package guard
