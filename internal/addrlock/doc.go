// Package addrlock makes a listen address exclusive to one siplb instance.
//
// siplb binds its listeners with SO_REUSEPORT (one socket per event loop),
// so the kernel lets a second siplb of the same user bind the same address
// and then splits the traffic between the two. Before binding anything,
// siplb takes a lock per listen address here; a second instance finds the
// lock taken and refuses to start, naming the holder's pid.
//
// # Mechanism (Linux)
//
// A lock is a listening unix socket bound to the abstract name
// "\x00siplb/<net>/<ip:port>". Abstract names live in the network namespace
// (as ports do), need no file and vanish when the last descriptor of the
// socket is closed, so a crashed siplb leaves nothing stale behind. Taking a
// lock whose name is bound fails with EADDRINUSE; the taker then connects to
// the name and reads SO_PEERCRED, which names the pid and uid of the process
// that last called listen on it. Each lock accepts and closes such
// connections in a goroutine, so connection attempts never pile up.
//
// # Which addresses conflict
//
// A Key is a transport class and an address: udp, or tcp for tcp://, tls://,
// ws:// and wss:// (they share TCP's port space); the IP is unmapped (::ffff:a.b.c.d
// is a.b.c.d) and an unspecified one (0.0.0.0 or ::) becomes the wildcard
// "*". Two keys conflict when their class and port are equal and their IPs
// are equal or either is the wildcard: the kernel delivers a port's traffic
// to a specific-address socket in preference to a wildcard one, so a
// wildcard and a specific listener on one port would split it as surely as
// two equal ones. 0.0.0.0 and :: are one wildcard (a dual-stack :: socket
// takes IPv4 too). A specific key checks the wildcard's name after taking
// its own; a wildcard key checks the specific names of its port listed in
// /proc/net/unix (where /proc is not mounted, only the first direction is
// checked). The keys of one Set never conflict with each other: one siplb
// may listen on 0.0.0.0:5060 and 127.0.0.1:5060 side by side.
//
// SO_REUSEPORT shares a port only between sockets of one effective uid, so a
// lock held by a process of another uid cannot mean shared traffic (the
// kernel's bind refuses the port instead); Acquire reports it as a HeldError
// with Foreign set, which the caller may log and pass over. That also keeps
// another local user from stopping siplb by squatting a lock name.
//
// # Handing the locks to a successor
//
// A lock must stay held across a hand-over of the listening sockets to a
// new siplb process (tableflip-style upgrades), or a third instance could
// slip in between. The old process passes the descriptors from Set.Files to
// the new one (exec.Cmd.ExtraFiles); the new one calls Set.Adopt on each,
// which listens again so SO_PEERCRED names the new pid, and then the old
// process exits or calls Release. The name stays bound as long as either
// holds a descriptor.
//
// On other systems a Set holds nothing and every Acquire succeeds.
//
// A Set is safe for concurrent use.
package addrlock
