//go:build !linux

package pool

import "errors"

// RaiseFileLimit is implemented on Linux only; elsewhere it changes
// nothing and returns errors.ErrUnsupported.
func RaiseFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.ErrUnsupported
}
