package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// A hitless upgrade of a member: the successor finds the gossip port held
// (ErrBindInUse) until the predecessor leaves; then it binds the same
// address and joins under the same name, and the others take it as alive
// again (memberlist refutes the "left" it hears of itself) and take its
// facts.
func TestSameNameRejoinsAfterLeave(t *testing.T) {
	nodes, recs := startNodes(t, 2, nil)
	waitFor(t, 10*time.Second, "2 members", func() bool { return len(nodes[1].Members()) == 2 })
	old := nodes[0]
	old.Publish(Fact{Kind: State, Key: "127.0.0.1:5070", State: "draining"})
	waitFor(t, 5*time.Second, "the old fact at lb-2", func() bool { _, ok := recs[1].last(State, "127.0.0.1:5070"); return ok })
	bind := old.Addr()
	cfg := Config{Name: "lb-1", Bind: bind, Join: []string{nodes[1].Addr().String()}, tune: fast}

	if _, err := New(cfg); !errors.Is(err, ErrBindInUse) {
		t.Fatalf("New on the address lb-1 holds: %v, want ErrBindInUse", err)
	}
	if err := old.Leave(); err != nil {
		t.Fatalf("leave: %v", err)
	}
	old.Shutdown()
	waitFor(t, 5*time.Second, "lb-1 gone at lb-2", func() bool { return slices.Equal(nodes[1].Members(), []string{"lb-2"}) })

	again, err := New(cfg)
	if err != nil {
		t.Fatalf("New after the leave: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { again.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; again.Shutdown() }()
	waitFor(t, 10*time.Second, "lb-1 alive again at lb-2", func() bool {
		return slices.Equal(nodes[1].Members(), []string{"lb-1", "lb-2"}) && slices.Equal(again.Members(), []string{"lb-1", "lb-2"})
	})
	// The successor learnt the facts (its clock passed them), so what it
	// sets now wins over its predecessor's.
	waitFor(t, 5*time.Second, "the old fact at the successor", func() bool { _, ok := again.Fact(State, "127.0.0.1:5070"); return ok })
	again.Publish(Fact{Kind: State, Key: "127.0.0.1:5070", State: "up"})
	waitFor(t, 5*time.Second, "the successor's fact at lb-2", func() bool {
		f, ok := recs[1].last(State, "127.0.0.1:5070")
		return ok && f.State == "up" && f.Origin == "lb-1"
	})
}
