package pool

import "net/netip"

// Dests indexes one event loop's outgoing connections by destination, so a
// message reuses a connection to its destination before one is opened
// (SocketPool sendto). Owned by one event loop: no locking.
type Dests[T any] struct {
	m    map[netip.AddrPort][]*T
	next map[netip.AddrPort]int
}

// NewDests returns an empty index.
func NewDests[T any]() *Dests[T] {
	return &Dests[T]{m: make(map[netip.AddrPort][]*T), next: make(map[netip.AddrPort]int)}
}

// Pick returns a connection to dst, spreading over up to n of them in turn,
// and whether a new one should be opened (fewer than n exist).
func (d *Dests[T]) Pick(dst netip.AddrPort, n int) (c *T, open bool) {
	cs := d.m[dst]
	if len(cs) == 0 {
		return nil, true
	}
	i := d.next[dst] % len(cs)
	d.next[dst] = i + 1
	return cs[i], len(cs) < n
}

// Add indexes c as a connection to dst.
func (d *Dests[T]) Add(dst netip.AddrPort, c *T) {
	d.m[dst] = append(d.m[dst], c)
}

// Remove drops c from dst's connections.
func (d *Dests[T]) Remove(dst netip.AddrPort, c *T) {
	cs := d.m[dst]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(d.m, dst)
		delete(d.next, dst)
		return
	}
	d.m[dst] = cs
}

// Len is the number of destinations with a connection.
func (d *Dests[T]) Len() int { return len(d.m) }
