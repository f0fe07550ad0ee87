package engine

import (
	"sync/atomic"

	"github.com/siplb/siplb/balance"
)

// Drop names why a message was not forwarded and not answered. Each has a
// counter, exported as drops{reason="..."}.
type Drop uint8

const (
	DropNone              Drop = iota
	DropMalformedResponse      // a response that does not parse
	DropMalformedRequest       // a request that does not parse and earns no answer (ACK, no Call-ID or Via)
	DropForeignVia             // a response whose top Via is not ours (Leg check_via)
	DropNoNextHop              // a response with no Via left after ours
	DropUnresolvable           // the next hop is a host name and no resolver is configured
	DropNoBackend              // an ACK with no backend to take it (no 503 for an ACK)
	DropSendError              // the socket refused the datagram
	DropOversize               // a datagram larger than the limits, not worth an answer; or a WebSocket message, closed 1009
	DropConnGone               // the connection a response belongs to has closed and no address is left
	DropConnectFailed          // a connection to the destination could not be opened in time
	DropPendingFull            // too many messages waiting for a connection being opened
	DropStreamBroken           // a stream lost its framing (no Content-Length, too large) and was closed
	DropDNSBusy                // too many next hops being resolved at once
	DropFlood                  // the source is blocked by the flood detector (dropped before parsing)
	DropDenied                 // the source is outside the listener's allow list or inside its deny list
	DropScanner                // a request whose User-Agent or From display name is a known scanner's
	DropReplyLimited           // a stateless reply over the per-source or total rate limit, not sent
	DropNotSIP                 // a datagram that is neither a request nor a response
	DropWSHandshake            // a WebSocket handshake refused: not an upgrade (426), no sip subprotocol (400)
	DropWSOrigin               // a WebSocket handshake whose Origin the listener does not allow (403)
	DropWSFraming              // a WebSocket message that is not exactly one SIP message, or a text one not UTF-8: closed 1002 or 1007
	DropProxyProtocol          // a connection closed for its PROXY header: none or a malformed one from a trusted proxy, or one from a source not trusted to send it
	DropLoop                   // an ACK that looped (§16.3 step 4; an ACK gets no 482)
	DropTooManyHops            // an ACK with Max-Forwards 0 (an ACK gets no 483)
	numDrops
)

var dropNames = [numDrops]string{
	DropNone:              "none",
	DropMalformedResponse: "malformed_response",
	DropMalformedRequest:  "malformed_request",
	DropForeignVia:        "foreign_via",
	DropNoNextHop:         "no_next_hop",
	DropUnresolvable:      "unresolvable",
	DropNoBackend:         "no_backend",
	DropSendError:         "send_error",
	DropOversize:          "oversize",
	DropConnGone:          "conn_gone",
	DropConnectFailed:     "connect_failed",
	DropPendingFull:       "pending_full",
	DropStreamBroken:      "stream_broken",
	DropDNSBusy:           "dns_busy",
	DropFlood:             "flood_blocked",
	DropDenied:            "acl_denied",
	DropScanner:           "scanner",
	DropReplyLimited:      "reply_limited",
	DropNotSIP:            "not_sip",
	DropWSHandshake:       "ws_handshake",
	DropWSOrigin:          "ws_origin",
	DropWSFraming:         "ws_framing",
	DropProxyProtocol:     "proxy_protocol",
	DropLoop:              "loop",
	DropTooManyHops:       "too_many_hops",
}

// String is the metric label of d.
func (d Drop) String() string {
	if d < numDrops {
		return dropNames[d]
	}
	return "unknown"
}

// Drops lists every drop reason but DropNone, for exporting counters.
func Drops() []Drop {
	ds := make([]Drop, 0, numDrops-1)
	for d := DropNone + 1; d < numDrops; d++ {
		ds = append(ds, d)
	}
	return ds
}

// replyStatuses are the statuses siplb answers with itself.
var replyStatuses = [...]int{200, 400, 413, 416, 420, 482, 483, 500, 503, 505, 513}

// Counters are one loop's counts. They are atomics so a scrape may read them
// while the loop runs; each has a single writer, so they never contend.
type Counters struct {
	RequestsIn           atomic.Uint64
	ResponsesIn          atomic.Uint64
	RequestsOut          atomic.Uint64
	ResponsesOut         atomic.Uint64
	Drops                [numDrops]atomic.Uint64
	Replies              [len(replyStatuses) + 1]atomic.Uint64 // the last slot counts other statuses
	ConnsRefused         atomic.Uint64                         // streams closed at once: a connection cap
	ConnsExpired         atomic.Uint64                         // streams closed for idleness
	SlowClients          atomic.Uint64                         // streams closed for sending a header too slowly
	SlowReaders          atomic.Uint64                         // TCP streams closed for leaving more than streams.max_write_queue unread
	WriteBudgetCloses    atomic.Uint64                         // TCP streams closed, the fullest first, while a loop's streams left more than its share of streams.write_budget unread
	ProbeReplies         atomic.Uint64                         // replies to health probes, consumed
	TLSHandshakeFailures atomic.Uint64                         // inbound TLS handshakes that failed or timed out
	DNSMisses            atomic.Uint64                         // next hops not in the DNS cache, resolved off the data path
	UDPToTCP             atomic.Uint64                         // requests over the UDP MTU bound sent over TCP instead (§18.1.1)
	LargeUDP             atomic.Uint64                         // requests over the UDP MTU bound sent over UDP all the same (no TCP to the member)
	BadTokens            atomic.Uint64                         // flow tokens whose MAC failed (forged, replayed into another dialog, or an expired secret's), treated as absent
	ICMPErrors           atomic.Uint64                         // ICMP errors (port unreachable) for datagrams sent
	ICMPIgnored          atomic.Uint64                         // of ICMPErrors: destination unreachable sent by another address than the destination (forged, or a router's)
	ICMPOther            atomic.Uint64                         // of ICMPErrors: not a destination unreachable that says the backend is not there
	KeepAlives           atomic.Uint64                         // CRLF keep-alive datagrams, ignored
	AcceptErrors         atomic.Uint64                         // failed accepts of TCP/TLS listeners (EMFILE, ENFILE, ENOBUFS, ...), each followed by a backoff
	BudgetCloses         atomic.Uint64                         // streams closed because their partial message or handshake did not fit streams.memory_budget
	DirectWrites         atomic.Uint64                         // writes to a TCP stream made straight to its socket by a goroutine other than its loop, whole (directwrite.go)
	DirectFallbacks      atomic.Uint64                         // such writes handed to the stream's loop instead: bytes waited on it, or the socket took only part

	// Admission (overload.go).
	ReplacesAffinity atomic.Uint64 // new requests hashed by the Call-ID their Replaces, Join or Refer-To names
	OverloadReports  atomic.Uint64 // members' RFC 7339 overload reports taken (a newer oc-seq)
	AdmitRefused     atomic.Uint64 // new dialogs answered 503 because every member tried shed them (overload, max_cps)
}

func (c *Counters) countReply(status int) {
	for i, s := range replyStatuses {
		if s == status {
			c.Replies[i].Add(1)
			return
		}
	}
	c.Replies[len(replyStatuses)].Add(1)
}

// Snapshot is a plain copy of counters, summed over loops.
type Snapshot struct {
	RequestsIn, ResponsesIn, RequestsOut, ResponsesOut uint64
	Drops                                              [numDrops]uint64
	Replies                                            map[int]uint64
	ConnsRefused, ConnsExpired, SlowClients            uint64
	SlowReaders, WriteBudgetCloses                     uint64
	ProbeReplies, TLSHandshakeFailures, DNSMisses      uint64
	BadTokens                                          uint64
	UDPToTCP, LargeUDP                                 uint64
	FloodBlocks                                        uint64 // sources blocked by the flood detector, one per block
	ICMPErrors, KeepAlives                             uint64
	ICMPIgnored, ICMPOther                             uint64
	AcceptErrors, BudgetCloses                         uint64
	DirectWrites, DirectFallbacks                      uint64
	ReplacesAffinity, OverloadReports, AdmitRefused    uint64           // Counters' admission block
	StreamBytes                                        int64            // bytes held now in partial stream messages and TLS handshakes (a gauge)
	Conns                                              int              // streams open now
	ConnsBy                                            map[ConnKind]int // streams open now, by transport and direction
}

// ConnKind is a kind of open connection: its transport and who opened it.
type ConnKind struct {
	Transport balance.Transport
	Inbound   bool // accepted from a peer; false: opened by siplb
}

// add sums c into s.
func (s *Snapshot) add(c *Counters) {
	s.RequestsIn += c.RequestsIn.Load()
	s.ResponsesIn += c.ResponsesIn.Load()
	s.RequestsOut += c.RequestsOut.Load()
	s.ResponsesOut += c.ResponsesOut.Load()
	for i := range s.Drops {
		s.Drops[i] += c.Drops[i].Load()
	}
	if s.Replies == nil {
		s.Replies = make(map[int]uint64)
	}
	for i, st := range replyStatuses {
		if v := c.Replies[i].Load(); v > 0 {
			s.Replies[st] += v
		}
	}
	if v := c.Replies[len(replyStatuses)].Load(); v > 0 {
		s.Replies[0] += v
	}
	s.ConnsRefused += c.ConnsRefused.Load()
	s.ConnsExpired += c.ConnsExpired.Load()
	s.SlowClients += c.SlowClients.Load()
	s.SlowReaders += c.SlowReaders.Load()
	s.WriteBudgetCloses += c.WriteBudgetCloses.Load()
	s.ProbeReplies += c.ProbeReplies.Load()
	s.TLSHandshakeFailures += c.TLSHandshakeFailures.Load()
	s.DNSMisses += c.DNSMisses.Load()
	s.BadTokens += c.BadTokens.Load()
	s.UDPToTCP += c.UDPToTCP.Load()
	s.LargeUDP += c.LargeUDP.Load()
	s.ICMPErrors += c.ICMPErrors.Load()
	s.ICMPIgnored += c.ICMPIgnored.Load()
	s.ICMPOther += c.ICMPOther.Load()
	s.KeepAlives += c.KeepAlives.Load()
	s.AcceptErrors += c.AcceptErrors.Load()
	s.BudgetCloses += c.BudgetCloses.Load()
	s.DirectWrites += c.DirectWrites.Load()
	s.DirectFallbacks += c.DirectFallbacks.Load()
	s.ReplacesAffinity += c.ReplacesAffinity.Load()
	s.OverloadReports += c.OverloadReports.Load()
	s.AdmitRefused += c.AdmitRefused.Load()
}

// Drop returns the count of one drop reason.
func (s Snapshot) Drop(d Drop) uint64 { return s.Drops[d] }
