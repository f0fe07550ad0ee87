// Package balance owns siplb's backend pools: their members with weights,
// priorities and states, and the algorithms that choose a member for a new
// dialog; the health checks that mark members up and down (Checker: SIP
// OPTIONS probes, passive reports of unreachable backends and runs of 5xx,
// and responses to traffic that show a backend that ignores OPTIONS alive);
// DNS (Resolver: RFC 3263 NAPTR, SRV, A/AAAA with a TTL cache; Discovery:
// pool members kept in step with SRV or A/AAAA records); and domain2proxy
// (DomainMap). Checker and Discovery run in goroutines of their own and
// publish through Balancer.SetHealth and Balancer.SetMembers; they never
// touch sockets of the data path (the engine sends the probes).
//
// # Choosing
//
// A Pool groups its members by Priority; as in DNS SRV a lower number is a
// higher priority, and the default (Priority 0 in the configuration) is 1.
// Pick considers only the highest-priority group that has a member Up, and
// fails when no member of the pool is Up: the caller answers 503 rather than
// sending to a backend known to be dead (it never fails open).
//
// The default algorithm, HashCallID, is weighted rendezvous hashing: each Up
// member of the group scores -Weight/ln(u), with u in (0,1) drawn from a
// fixed hash of the key and a per-member seed, and the highest score wins.
// Each member thus gets a share of keys proportional to its weight; when a
// member leaves only the keys it held move (about 1/N of them), and when one
// joins only the keys it takes move. The hash (FNV-1a 64 and the splitmix64
// finalizer) and the seeds (derived from "addr:port/transport") are fixed, so
// every siplb instance with the same configuration and health sends the same
// Call-ID to the same backend, with no state per call and no coordination.
// HashFromUser, HashToUser and HashRequestURI work the same way over the key
// the caller extracts. The weighted scores are compared without a logarithm
// per member (hash.go), with the exact scores deciding near ties, so the
// choice is the definition's for every key. LeastLatency and LeastLatencyP2C
// hash the Call-ID too, over weights and candidates steered by the latency
// the health checks measure (latency.go: Balancer.SetLatency), part of the
// Table like health, so they stay pure functions of key and Table.
// RoundRobin, WeightedRoundRobin (smooth) and Random ignore the key.
//
// # States
//
// Up members take new dialogs. Draining members take no new dialogs but
// remain valid targets for in-dialog requests addressed to them (Usable);
// Down (health) and Disabled (operator) members take nothing. The operator's
// Disabled and Draining win over a health mark.
//
// # Admission
//
// PickAdmitted is Pick for a new dialog under admission control
// (overload.go): a member whose RFC 7339 overload report sheds the dialog
// (by a hash of its Call-ID, so retransmissions get the same decision) or
// that is past its MaxCPS (a GCRA bucket, one atomic word per member)
// gives it to the next member of its priority group in rendezvous order;
// with none left the caller answers 503. The state (Overload) belongs to
// the address, like BackendStats, and is read lock-free.
//
// # Must not
//
// balance touches no socket of the data path and keeps no per-call state.
//
// # Concurrency
//
// What the hot path reads is an immutable Table behind an atomic.Pointer:
// Balancer.Table, Table.Lookup and Pool.Pick are lock-free, safe for any
// number of goroutines and do not allocate. The only shared mutable values
// they touch are the round-robin counters (atomic). Reload, SetHealth and
// SetState serialize among themselves, build a new Table and publish it;
// readers holding an older Table keep a consistent view of it, and every
// *Backend stays valid as long as it is referenced.
package balance
