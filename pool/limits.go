package pool

import (
	"fmt"
	"time"
)

// Net::SIP::SocketPool's defaults, and the caps siplb adds.
const (
	DefaultConnectTimeout = 10 * time.Second // Net::SIP CONNECT_TIMEOUT
	DefaultIdleMin        = 15 * time.Second // Net::SIP MIN_EXPIRE
	DefaultIdleMax        = 120 * time.Second
	DefaultReadSize       = 64 << 10 // Net::SIP MAX_READ
	DefaultMaxConns       = 20000    // inbound and outbound together
	DefaultMaxConnsPerIP  = 256
	DefaultHeaderDeadline = 10 * time.Second // a message's header must arrive within this (slow-loris)
	DefaultConnsPerDest   = 1                // outgoing connections per destination and event loop
	DefaultMaxPending     = 1024             // messages queued while an outgoing connection is being set up
	DefaultMemoryBudget   = 256 << 20        // bytes held in partial stream messages and TLS handshakes, all connections together
	DefaultMaxWriteQueue  = 1 << 20          // bytes one TCP connection may leave unread in siplb, beyond its socket buffer
	DefaultWriteBudget    = 256 << 20        // bytes all TCP connections together may leave unread in siplb
)

// The bounds Validate puts on max_write_queue: room for the largest message
// and a few more, at most 1 GiB.
const (
	MinMaxWriteQueue = 128 << 10
	MaxMaxWriteQueue = 1 << 30
)

// The bounds Validate puts on memory_budget: at least a few largest
// messages, at most 1 TiB.
const (
	MinMemoryBudget = 256 << 10
	MaxMemoryBudget = 1 << 40
)

// Limits bound connected sockets. The zero value of each field means its
// default; Defaults fills them.
type Limits struct {
	ConnectTimeout time.Duration `yaml:"connect_timeout"`   // TCP/TLS connect (and TLS handshake) timeout (default 10s)
	IdleMin        time.Duration `yaml:"idle_min"`          // idle expiry with many sockets open (default 15s)
	IdleMax        time.Duration `yaml:"idle_max"`          // idle expiry with few sockets open (default 120s)
	ReadSize       int           `yaml:"read_size"`         // bytes read per read call (default 65536)
	MaxConns       int           `yaml:"max_connections"`   // open connections, in and out (default 20000)
	MaxConnsPerIP  int           `yaml:"max_per_ip"`        // inbound connections from one source IP (default 256)
	HeaderDeadline time.Duration `yaml:"header_deadline"`   // time a client has to send a whole message header once it starts (default 10s)
	ConnsPerDest   int           `yaml:"conns_per_backend"` // outgoing connections per destination and event loop (default 1)
	MaxPending     int           `yaml:"max_pending"`       // messages held per destination while connecting (default 1024)
	// MemoryBudget bounds, in bytes, what all TCP and TLS connections
	// together hold in partly received messages and TLS handshakes in
	// progress (default 256 MiB). Over it, the connections holding the
	// oldest partial messages are closed first.
	MemoryBudget int64 `yaml:"memory_budget"`
	// MaxWriteQueue bounds, in bytes, what one plain TCP connection may
	// leave waiting in siplb because its peer does not read (what the
	// kernel's socket buffer did not take; default 1 MiB). A write that
	// leaves more closes the connection.
	MaxWriteQueue int `yaml:"max_write_queue"`
	// WriteBudget bounds, in bytes, what all plain TCP connections
	// together leave waiting in siplb because their peers do not read
	// (default 256 MiB, or max_write_queue if that is more), each event
	// loop an equal share of it. Over it,
	// the connections that leave the most are closed first.
	WriteBudget int64 `yaml:"write_budget"`
}

// Defaults returns l with every zero field set to its default.
func (l Limits) Defaults() Limits {
	set := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	seti := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	set(&l.ConnectTimeout, DefaultConnectTimeout)
	set(&l.IdleMin, DefaultIdleMin)
	set(&l.IdleMax, DefaultIdleMax)
	set(&l.HeaderDeadline, DefaultHeaderDeadline)
	seti(&l.ReadSize, DefaultReadSize)
	seti(&l.MaxConns, DefaultMaxConns)
	seti(&l.MaxConnsPerIP, DefaultMaxConnsPerIP)
	seti(&l.ConnsPerDest, DefaultConnsPerDest)
	seti(&l.MaxPending, DefaultMaxPending)
	seti(&l.MaxWriteQueue, DefaultMaxWriteQueue)
	if l.WriteBudget == 0 {
		l.WriteBudget = max(DefaultWriteBudget, int64(l.MaxWriteQueue))
	}
	if l.MemoryBudget == 0 {
		l.MemoryBudget = DefaultMemoryBudget
	}
	return l
}

// Validate checks l after Defaults; path prefixes the key in errors
// ("transport.idle_min").
func (l Limits) Validate(path string) error {
	switch {
	case l.ConnectTimeout < 0:
		return fmt.Errorf("%s.connect_timeout: must not be negative", path)
	case l.IdleMin <= 0 || l.IdleMax < l.IdleMin:
		return fmt.Errorf("%s.idle_min/idle_max: want 0 < idle_min <= idle_max, got %s and %s", path, l.IdleMin, l.IdleMax)
	case l.ReadSize < 1024 || l.ReadSize > 1<<20:
		return fmt.Errorf("%s.read_size: must be between 1024 and 1048576, got %d", path, l.ReadSize)
	case l.MaxConns < 1 || l.MaxConns > MaxSlots:
		return fmt.Errorf("%s.max_connections: must be between 1 and %d, got %d", path, MaxSlots, l.MaxConns)
	case l.MaxConnsPerIP < 1:
		return fmt.Errorf("%s.max_per_ip: must be at least 1, got %d", path, l.MaxConnsPerIP)
	case l.HeaderDeadline < 0:
		return fmt.Errorf("%s.header_deadline: must not be negative", path)
	case l.ConnsPerDest < 1 || l.ConnsPerDest > 64:
		return fmt.Errorf("%s.conns_per_backend: must be between 1 and 64, got %d", path, l.ConnsPerDest)
	case l.MaxPending < 0:
		return fmt.Errorf("%s.max_pending: must not be negative", path)
	case l.MemoryBudget < MinMemoryBudget || l.MemoryBudget > MaxMemoryBudget:
		return fmt.Errorf("%s.memory_budget: must be between %d and %d bytes, got %d", path, MinMemoryBudget, int64(MaxMemoryBudget), l.MemoryBudget)
	case l.MaxWriteQueue < MinMaxWriteQueue || l.MaxWriteQueue > MaxMaxWriteQueue:
		return fmt.Errorf("%s.max_write_queue: must be between %d and %d bytes, got %d", path, MinMaxWriteQueue, MaxMaxWriteQueue, l.MaxWriteQueue)
	case l.WriteBudget < int64(l.MaxWriteQueue) || l.WriteBudget > MaxMemoryBudget:
		return fmt.Errorf("%s.write_budget: must be between max_write_queue (%d) and %d bytes, got %d", path, l.MaxWriteQueue, int64(MaxMemoryBudget), l.WriteBudget)
	}
	return nil
}

// IdleTimeout is how long a connection may stay idle while open are open:
// IdleMax with few connections, falling linearly to IdleMin as open nears
// MaxConns (Net::SIP: "the more sockets the shorter the expiration").
func (l Limits) IdleTimeout(open int) time.Duration {
	l = l.Defaults()
	if open <= 0 {
		return l.IdleMax
	}
	if open >= l.MaxConns {
		return l.IdleMin
	}
	span := l.IdleMax - l.IdleMin
	return l.IdleMax - time.Duration(int64(span)*int64(open)/int64(l.MaxConns))
}
