package cluster

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"sync"
)

// Kind is what a Fact is about.
type Kind uint8

const (
	// Health is a backend's health verdict (Fact.Up, Fact.Reason), keyed by
	// its address: set by the member that probes it, or by any member
	// whose passive detection marked it down.
	Health Kind = 1
	// State is the operator's runtime state of a backend (Fact.State: up,
	// draining or disabled), keyed by its address: set through the admin
	// API or `siplb ctl` on any member.
	State Kind = 2
	// Ring is a member's key ring of branch secrets (Fact.Secrets: the one
	// that signs first, then those that verify), keyed by the member's name.
	Ring Kind = 3
)

func (k Kind) String() string {
	switch k {
	case Health:
		return "health"
	case State:
		return "state"
	case Ring:
		return "ring"
	}
	return "unknown"
}

// Limits on what a member accepts from another: gossip is authenticated by
// the cluster key, but a bug or a bad peer must not grow memory without
// bound.
const (
	MaxFacts       = 8192 // facts held; a new key past it is dropped
	MaxRing        = 8    // secrets in one Ring fact
	maxSecretLen   = 256  // bytes of one secret
	maxNameLen     = 128  // bytes of a member name
	maxReasonLen   = 80   // bytes of a Health reason
	maxMessageSize = 1 << 20
)

// Fact is one shared value. Version and Origin order the facts about one
// thing (Kind and Key): the newest wins.
type Fact struct {
	Kind    Kind     `json:"k"`
	Key     string   `json:"key"` // a backend's IP:PORT (Health, State) or a member's name (Ring)
	Version uint64   `json:"v"`   // Lamport version
	Origin  string   `json:"o"`   // name of the member that set it
	Up      bool     `json:"up,omitempty"`
	Reason  string   `json:"r,omitempty"`
	State   string   `json:"s,omitempty"`
	Secrets []string `json:"ring,omitempty"`
}

// newer reports whether f wins over g (the same Kind and Key).
func (f *Fact) newer(g *Fact) bool {
	return f.Version > g.Version || f.Version == g.Version && f.Origin > g.Origin
}

// sameValue reports whether f and g say the same.
func (f *Fact) sameValue(g *Fact) bool {
	return f.Up == g.Up && f.Reason == g.Reason && f.State == g.State && slices.Equal(f.Secrets, g.Secrets)
}

// errBadFact is a fact that fails validation.
var errBadFact = errors.New("bad fact")

// valid checks a fact from the network.
func (f *Fact) valid() error {
	if f.Origin == "" || len(f.Origin) > maxNameLen || f.Version == 0 {
		return errBadFact
	}
	switch f.Kind {
	case Health, State:
		ap, err := netip.ParseAddrPort(f.Key)
		if err != nil || ap.String() != f.Key {
			return errBadFact
		}
		if f.Kind == State && f.State != "up" && f.State != "draining" && f.State != "disabled" {
			return errBadFact
		}
		if len(f.Reason) > maxReasonLen || f.Kind == Health && f.State != "" || len(f.Secrets) > 0 {
			return errBadFact
		}
	case Ring:
		if f.Key == "" || len(f.Key) > maxNameLen || len(f.Secrets) == 0 || len(f.Secrets) > MaxRing {
			return errBadFact
		}
		for _, s := range f.Secrets {
			if len(s) == 0 || len(s) > maxSecretLen {
				return errBadFact
			}
		}
	default:
		return errBadFact
	}
	return nil
}

type factKey struct {
	kind Kind
	key  string
}

// store holds the newest fact about each thing and the Lamport clock.
type store struct {
	mu      sync.Mutex
	clock   uint64
	facts   map[factKey]Fact
	dropped uint64 // facts refused: invalid, or past MaxFacts
}

func newStore() *store { return &store{facts: make(map[factKey]Fact)} }

// local sets a fact of this member (f.Origin set by the caller): its
// version is past every version seen. It returns the fact as stored, and
// false when the fact held already says the same (nothing to tell).
func (s *store) local(f Fact) (Fact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := factKey{f.Kind, f.Key}
	if cur, ok := s.facts[k]; ok && cur.sameValue(&f) {
		return cur, false
	}
	if _, ok := s.facts[k]; !ok && len(s.facts) >= MaxFacts {
		s.dropped++
		return f, false
	}
	s.clock++
	f.Version = s.clock
	s.facts[k] = f
	return f, true
}

// merge takes a fact from another member and reports whether it is newer
// than the one held (and is now held). The clock moves past its version.
func (s *store) merge(f Fact) bool {
	if f.valid() != nil {
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = max(s.clock, f.Version)
	k := factKey{f.Kind, f.Key}
	cur, ok := s.facts[k]
	if !ok && len(s.facts) >= MaxFacts {
		s.dropped++
		return false
	}
	if ok && !f.newer(&cur) {
		return false
	}
	s.facts[k] = f
	return true
}

// get returns the fact held about kind and key.
func (s *store) get(kind Kind, key string) (Fact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.facts[factKey{kind, key}]
	return f, ok
}

// all returns every fact held, sorted by kind and key, and the clock.
func (s *store) all() ([]Fact, uint64) {
	s.mu.Lock()
	out := make([]Fact, 0, len(s.facts))
	for _, f := range s.facts {
		out = append(out, f)
	}
	clock := s.clock
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Fact) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out, clock
}

// message is what travels: one fact in a broadcast, all of them in a
// push-pull.
type message struct {
	Facts []Fact `json:"f"`
}

func encode(facts []Fact) []byte {
	b, _ := json.Marshal(message{Facts: facts}) // a Fact always marshals
	return b
}

// decode parses a message from another member; a message over
// maxMessageSize or more than MaxFacts facts is refused whole.
func decode(b []byte) ([]Fact, error) {
	if len(b) > maxMessageSize {
		return nil, errBadFact
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(m.Facts) > MaxFacts {
		return nil, errBadFact
	}
	return m.Facts, nil
}
