//go:build linux

package addrlock

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Set is the locks of one siplb instance's listeners. The zero Set holds
// nothing and is ready for use; do not copy it after first use.
type Set struct {
	mu   sync.Mutex
	held map[Key]*lock
}

// lock is one held name: its listening socket and the goroutine that
// accepts and closes the connections of processes asking who holds it.
type lock struct {
	ln       *net.UnixListener
	done     chan struct{} // closed when the accept goroutine has returned
	stopping atomic.Bool   // the goroutine is to stop accepting, the socket staying open
}

// dialTimeout bounds asking a holder who it is.
const dialTimeout = time.Second

// adoptBacklog is the backlog of a lock listened on again by Adopt.
const adoptBacklog = 64

// Acquire takes the lock of k, or reports the siplb holding it or a key
// conflicting with it as a *HeldError. Taking a key s already holds does
// nothing; keys of s never conflict with each other.
func (s *Set) Acquire(k Key) error {
	if k.Net == "" || !k.Addr.IsValid() {
		return fmt.Errorf("addrlock: invalid key %v", k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.held[k]; ok {
		return nil
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + k.name(), Net: "unix"})
	if err != nil {
		if !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("addrlock %s: %w", k, err)
		}
		he := ask(k, k)
		if he == nil { // bound but not listening yet: someone is taking it now
			he = &HeldError{Key: k, Holder: k, UID: -1}
		}
		return he
	}
	l := serve(ln)
	// Take our own name first, then look at the conflicting ones: of two
	// instances racing for conflicting keys, at least one sees the other.
	if he := s.conflict(k); he != nil {
		l.close()
		return he
	}
	if s.held == nil {
		s.held = make(map[Key]*lock)
	}
	s.held[k] = l
	return nil
}

// conflict returns the holder of a key conflicting with k that is neither
// k itself nor held by s nor foreign.
func (s *Set) conflict(k Key) *HeldError {
	var others []Key
	if k.Wildcard() {
		others = boundKeys(k)
	} else {
		others = []Key{k.wildcard()}
	}
	for _, o := range others {
		if _, mine := s.held[o]; mine || o == k || !o.Conflicts(k) {
			continue
		}
		if he := ask(k, o); he != nil && !he.Foreign {
			return he
		}
	}
	return nil
}

// ask connects to the lock of held and returns who listens on it, or nil
// if nobody does.
func ask(k, held Key) *HeldError {
	he := &HeldError{Key: k, Holder: held, UID: -1}
	c, err := net.DialTimeout("unix", "@"+held.name(), dialTimeout)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return he // bound and not answering (a full backlog): held, pid unknown
	}
	defer c.Close()
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return he
	}
	var cred *unix.Ucred
	rc.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return he
	}
	he.PID, he.UID = int(cred.Pid), int(cred.Uid)
	he.Foreign = he.UID != os.Geteuid()
	return he
}

// boundKeys lists the specific keys of w's class and port whose names are
// bound, from /proc/net/unix (abstract names appear there with '@' for the
// NUL). Without /proc it returns none.
func boundKeys(w Key) []Key {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Key
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		name, ok := strings.CutPrefix(fields[len(fields)-1], "@")
		if !ok {
			continue
		}
		k, ok := parseName(name)
		if ok && !k.Wildcard() && k.Conflicts(w) && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// serve starts accepting on ln: every connection is closed at once (the
// asker has read SO_PEERCRED by then), so none waits in the backlog.
func serve(ln *net.UnixListener) *lock {
	l := &lock{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) || (err != nil && l.stopping.Load()) {
				return
			}
			if err != nil { // out of descriptors, say: try again later
				time.Sleep(100 * time.Millisecond)
				continue
			}
			c.Close()
		}
	}()
	return l
}

// stopAccepting ends the accept goroutine, leaving the socket (and so the
// lock) open. Once a descriptor of the socket has been handed to another
// process, its file status is no longer ours: os/exec's use of File.Fd, or
// net.FileListener in the successor, switches it to blocking for a moment,
// and an accept caught in that moment would block for good. So only one
// process accepts at a time: the successor, from Adopt on.
func (l *lock) stopAccepting() {
	l.stopping.Store(true)
	l.ln.SetDeadline(time.Unix(1, 0))
	<-l.done
}

func (l *lock) close() error {
	err := l.ln.Close()
	<-l.done
	return err
}

// Release gives up every lock of s; a later Acquire may take them again.
func (s *Set) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, l := range s.held {
		errs = append(errs, l.close())
		delete(s.held, k)
	}
	return errors.Join(errs...)
}

// Keys returns the keys s holds, sorted.
func (s *Set) Keys() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Key, 0, len(s.held))
	for k := range s.held {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Files returns a duplicate descriptor of every lock of s, in the order of
// Keys, for a successor process to Adopt; the caller closes them. The locks
// stay held by s until Release, but s no longer answers who holds them:
// connections asking wait in the socket's backlog until the successor
// adopts it and answers them.
func (s *Set) Files() ([]*os.File, error) {
	keys := s.Keys()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*os.File, 0, len(keys))
	for _, k := range keys {
		l, ok := s.held[k]
		if !ok {
			continue
		}
		l.stopAccepting()
		f, err := l.ln.File()
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("addrlock %s: %w", k, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// Adopt takes over a lock a predecessor passed as f (one of its Files) and
// returns its key. It listens on the socket again, so that SO_PEERCRED
// names this process from then on. f is not retained: the caller closes it.
func (s *Set) Adopt(f *os.File) (Key, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return Key{}, fmt.Errorf("addrlock: adopt: %w", err)
	}
	ul, ok := ln.(*net.UnixListener)
	if !ok {
		ln.Close()
		return Key{}, errors.New("addrlock: adopt: not a unix socket")
	}
	k, ok := parseName(strings.TrimPrefix(ul.Addr().String(), "@"))
	if !ok {
		ul.Close()
		return Key{}, fmt.Errorf("addrlock: adopt: %q is not a lock", ul.Addr().String())
	}
	rc, err := ul.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { err = unix.Listen(int(fd), adoptBacklog) })
		err = errors.Join(err, cerr)
	}
	if err != nil {
		ul.Close()
		return Key{}, fmt.Errorf("addrlock %s: adopt: listen: %w", k, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.held[k]; held {
		ul.Close()
		return k, nil
	}
	if s.held == nil {
		s.held = make(map[Key]*lock)
	}
	s.held[k] = serve(ul)
	return k, nil
}

// Resume answers who holds the locks again after Files, when the successor
// they were handed to did not take over (it failed to start): each lock
// whose accept goroutine Files ended is accepted on again by s, so a third
// instance asking learns this process's pid. Locks still accepted are left
// alone.
func (s *Set) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, l := range s.held {
		if !l.stopping.Load() {
			continue
		}
		if err := l.ln.SetDeadline(time.Time{}); err != nil {
			errs = append(errs, fmt.Errorf("addrlock %s: resume: %w", k, err))
			continue
		}
		s.held[k] = serve(l.ln)
	}
	return errors.Join(errs...)
}
