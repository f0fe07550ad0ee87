// Package cluster lets several siplb instances that front one farm share
// what their choices depend on beyond the message and the configuration, so
// that they decide alike: backend health verdicts, the operator's runtime
// states (drain, disable) and the key rings of their branch secrets. It is
// built on hashicorp/memberlist (the gossip layer under Serf and Consul):
// membership and failure detection by SWIM, facts spread by piggybacked
// broadcasts (a TransmitLimitedQueue) and reconciled by periodic full-state
// push-pull.
//
// Every shared value is a Fact with a Lamport version and the name of the
// member that set it; of two facts about the same thing, the one with the
// higher version wins, and of equal versions the one whose origin name sorts
// last, so every member settles on the same value whatever order the
// messages came in.
//
// Probing is split: Owner picks, by rendezvous hashing over the live members'
// names, the one member that probes a backend; the others take its verdicts.
// When a member dies or leaves, memberlist's failure detection removes it
// and its backends get new owners; a member alone (cut off, or the only one)
// owns every backend.
//
// The package must not touch the data path: nothing here runs per SIP
// message. Callbacks (Config.OnFact, Config.OnMembers) run on memberlist's
// goroutines, one at a time, and must not block for long.
package cluster
