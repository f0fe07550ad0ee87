//go:build !linux

package addrlock

import "os"

// Set holds nothing on this system: abstract unix sockets and SO_PEERCRED
// are Linux's, so a second siplb on the same address is not detected here.
// Every method succeeds.
type Set struct{}

// Acquire does nothing on this system.
func (s *Set) Acquire(k Key) error { return nil }

// Release does nothing on this system.
func (s *Set) Release() error { return nil }

// Keys returns none on this system.
func (s *Set) Keys() []Key { return nil }

// Files returns none on this system.
func (s *Set) Files() ([]*os.File, error) { return nil, nil }

// Adopt closes nothing and adopts nothing on this system.
func (s *Set) Adopt(f *os.File) (Key, error) { return Key{}, nil }

// Resume does nothing: no lock was handed over.
func (s *Set) Resume() error { return nil }
