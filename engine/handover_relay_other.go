//go:build !linux

package engine

import "os"

// NewRelayPair: no relay outside Linux (upgrades need tableflip, which
// siplb uses on Linux).
func NewRelayPair() (mine, theirs *os.File, err error) { return nil, nil, ErrRelayUnsupported }

func relayFile(f *os.File) (*os.File, int, error) {
	f.Close()
	return nil, -1, ErrRelayUnsupported
}

func writeRelayed(int, uint64, []byte) error { return ErrRelayUnsupported }
