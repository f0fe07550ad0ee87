//go:build !linux

package main

import "errors"

// raiseFileLimit is Linux's here; elsewhere the limit is left as it is and
// reported unknown (0), so the connection cap keeps its default.
func raiseFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.ErrUnsupported
}
