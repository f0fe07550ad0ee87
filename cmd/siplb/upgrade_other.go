//go:build !linux

package main

import "os"

// stateFile is an unlinked temporary file for the state handed over.
func stateFile() (*os.File, error) {
	f, err := os.CreateTemp("", stateFileName)
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// closeLeakedFDs closes nothing here: siplb's hand-overs are Linux's.
func closeLeakedFDs() int { return 0 }
