package balance

import (
	"errors"
	"strconv"
	"strings"
)

// Algorithm selects how a Pool chooses among the available members of its
// highest-priority group. The zero value is HashCallID, the default.
type Algorithm uint8

const (
	// HashCallID is weighted rendezvous hashing over the Call-ID: every
	// message of a dialog reaches the same backend, on every instance that
	// has the same configuration, and the departure of one of N members moves
	// only the Call-IDs it held (about 1/N).
	HashCallID Algorithm = iota
	// HashFromUser is rendezvous hashing over the user part of the From URI.
	HashFromUser
	// HashToUser is rendezvous hashing over the user part of the To URI.
	HashToUser
	// HashRequestURI is rendezvous hashing over the Request-URI.
	HashRequestURI
	// RoundRobin takes the available members in turn, ignoring weights.
	RoundRobin
	// WeightedRoundRobin takes the available members in a smooth interleaved
	// sequence in which each appears Weight times per cycle.
	WeightedRoundRobin
	// Random picks an available member at random with probability
	// proportional to its Weight.
	Random
	// LeastLatency is rendezvous hashing over the Call-ID with each Weight
	// scaled down by the member's probe latency (latency.go): the round-trip
	// EWMA and recent unanswered probes, relative to the fastest member of
	// the group. A member twice as slow takes about half the share of new
	// dialogs. Without measurements it is HashCallID.
	LeastLatency
	// LeastLatencyP2C is the power of two choices over the Call-ID: of the
	// first two members of the key's rendezvous order, the one of lower
	// latency cost, the first on a tie. Without measurements it is
	// HashCallID.
	LeastLatencyP2C

	numAlgorithms
)

// CallIDKeyed reports whether a hashes the Call-ID (HashCallID and the
// latency-aware algorithms): those may follow a Replaces to the Call-ID it
// names.
func (a Algorithm) CallIDKeyed() bool {
	return a == HashCallID || a == LeastLatency || a == LeastLatencyP2C
}

var algorithmNames = [numAlgorithms]string{
	HashCallID:         "hash-callid",
	HashFromUser:       "hash-from-user",
	HashToUser:         "hash-to-user",
	HashRequestURI:     "hash-ruri",
	RoundRobin:         "round-robin",
	WeightedRoundRobin: "weighted-round-robin",
	Random:             "random",
	LeastLatency:       "least-latency",
	LeastLatencyP2C:    "least-latency-p2c",
}

// ParseAlgorithm returns the Algorithm named s, as written in the
// configuration ("hash-callid", "hash-from-user", "hash-to-user", "hash-ruri",
// "round-robin", "weighted-round-robin", "random", "least-latency",
// "least-latency-p2c"); case is ignored and the
// empty string means HashCallID. An unknown name yields ErrUnknownAlgorithm.
func ParseAlgorithm(s string) (Algorithm, error) {
	if s == "" {
		return HashCallID, nil
	}
	for a, name := range algorithmNames {
		if strings.EqualFold(s, name) {
			return Algorithm(a), nil
		}
	}
	return 0, ErrUnknownAlgorithm
}

// String returns the configuration name of a, or "algorithm(N)" for a value
// out of range.
func (a Algorithm) String() string {
	if a < numAlgorithms {
		return algorithmNames[a]
	}
	return "algorithm(" + strconv.Itoa(int(a)) + ")"
}

// Hashed reports whether a chooses by a hash of the key passed to Pick, so
// the same key always reaches the same member while the table is unchanged.
// The latency algorithms are hashed: their latency marks are part of the
// Table.
func (a Algorithm) Hashed() bool {
	return a <= HashRequestURI || a == LeastLatency || a == LeastLatencyP2C
}

// KeySource is the request a hashed algorithm takes its key from: the
// engine's view of a parsed message (package balance knows no parser).
// Each method returns a part of the request, nil when it has none; the
// slice is hashed at once and never retained.
type KeySource interface {
	CallID() []byte
	FromUser() []byte   // the user part of the From URI
	ToUser() []byte     // the user part of the To URI
	RequestURI() []byte // the whole Request-URI as written
}

// Key returns the part of src that a hashes, calling only the one method
// it needs: the Call-ID for HashCallID and the latency algorithms, the From
// or To user for
// HashFromUser and HashToUser, the Request-URI for HashRequestURI; nil for
// an algorithm that ignores keys. It does not allocate.
func (a Algorithm) Key(src KeySource) []byte {
	switch a {
	case HashCallID, LeastLatency, LeastLatencyP2C:
		return src.CallID()
	case HashFromUser:
		return src.FromUser()
	case HashToUser:
		return src.ToUser()
	case HashRequestURI:
		return src.RequestURI()
	}
	return nil
}

// Transport is a SIP transport: the one siplb uses to reach a backend (UDP,
// TCP, TLS), or one of a listening leg's, which may also be WebSocket (WS,
// WSS: RFC 7118, for browsers). siplb reaches no backend over WebSocket.
type Transport uint8

const (
	UDP Transport = iota // the zero value
	TCP
	TLS
	// WS is SIP over WebSocket (RFC 7118), a listening leg's only.
	WS
	// WSS is SIP over secure WebSocket (WebSocket over TLS), a listening
	// leg's only.
	WSS

	// NumTransports is the number of transports, for tables indexed by one.
	NumTransports
)

// The ports a WebSocket URI means when it names none (RFC 6455 §3): a SIP
// URI or Via of transport ws or wss that names no port means them too.
const (
	DefaultWSPort  = 80
	DefaultWSSPort = 443
)

// numTransports counts the transports a backend may use (UDP, TCP, TLS):
// a backend configured with another is refused.
const numTransports = WS

var transportNames = [NumTransports]string{UDP: "udp", TCP: "tcp", TLS: "tls", WS: "ws", WSS: "wss"}

// ParseTransport returns the backend Transport named s ("udp", "tcp",
// "tls"; case is ignored, "" means UDP). Any other name, "ws" and "wss"
// included (no backend is reached over WebSocket), yields
// ErrUnknownTransport.
func ParseTransport(s string) (Transport, error) {
	if s == "" {
		return UDP, nil
	}
	for t, name := range transportNames[:numTransports] {
		if strings.EqualFold(s, name) {
			return Transport(t), nil
		}
	}
	return 0, ErrUnknownTransport
}

// String returns "udp", "tcp", "tls", "ws" or "wss", or "transport(N)" out
// of range.
func (t Transport) String() string {
	if t < NumTransports {
		return transportNames[t]
	}
	return "transport(" + strconv.Itoa(int(t)) + ")"
}

// WebSocket reports whether t is WS or WSS.
func (t Transport) WebSocket() bool { return t == WS || t == WSS }

// Secure reports whether t runs over TLS (TLS, WSS).
func (t Transport) Secure() bool { return t == TLS || t == WSS }

// State is the state of a backend. The effective state of a Backend in a
// Table combines the operator's state (configuration, SetState) with the
// health mark (SetHealth): Disabled and Draining set by the operator win over
// a health mark, so that an operator's decision is never undone by a probe.
type State uint8

const (
	// Up: picked for new dialogs and a valid target for in-dialog requests.
	Up State = iota
	// Down: marked dead by health checking; never picked, not Usable.
	Down
	// Disabled: taken out by the operator; never picked, not Usable.
	Disabled
	// Draining: no new dialogs, but in-dialog requests addressed to it still
	// go there (Usable), so calls in progress can finish.
	Draining

	numStates
)

var stateNames = [numStates]string{Up: "up", Down: "down", Disabled: "disabled", Draining: "draining"}

// ParseState returns the State named s ("up", "down", "disabled",
// "draining"; case is ignored, "" means Up). An unknown name yields
// ErrUnknownState.
func ParseState(s string) (State, error) {
	if s == "" {
		return Up, nil
	}
	for st, name := range stateNames {
		if strings.EqualFold(s, name) {
			return State(st), nil
		}
	}
	return 0, ErrUnknownState
}

// String returns the configuration name of s, or "state(N)" out of range.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Errors returned by the parse functions and by configuration validation.
// Validation wraps them with the pool and member they concern; test with
// errors.Is.
var (
	ErrUnknownAlgorithm = errors.New("unknown balancing algorithm")
	ErrUnknownTransport = errors.New("unknown transport")
	ErrUnknownState     = errors.New("unknown backend state")
	ErrNoPools          = errors.New("no pools configured")
	ErrPoolName         = errors.New("pool name is empty")
	ErrDuplicatePool    = errors.New("duplicate pool name")
	ErrNoBackends       = errors.New("pool has no backends")
	ErrInvalidAddr      = errors.New("invalid backend address")
	ErrDuplicateBackend = errors.New("backend listed twice in one pool")
	ErrWeight           = errors.New("weight out of range")
	ErrPriority         = errors.New("priority out of range")
	ErrState            = errors.New("state not allowed here")
	ErrUnknownBackend   = errors.New("no such backend")
)

// viaNames are the transport names upper-cased, as a Via writes them.
var viaNames = func() (v [NumTransports]string) {
	for i, n := range transportNames {
		v[i] = strings.ToUpper(n)
	}
	return v
}()

// ViaName is t as the sent-protocol of a Via header writes it (RFC 3261
// §20.42, RFC 7118): "UDP", "TCP", "TLS"; "" out of range. It does not
// allocate.
func (t Transport) ViaName() string {
	if t < NumTransports {
		return viaNames[t]
	}
	return ""
}
