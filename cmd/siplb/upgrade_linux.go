package main

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// stateFile is an anonymous memory file (memfd) for the state handed over:
// nothing on disk to clean up or to go stale.
func stateFile() (*os.File, error) {
	fd, err := unix.MemfdCreate(stateFileName, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), stateFileName), nil
}

// closeLeakedFDs closes the descriptors a successor inherited by accident
// and returns how many. gnet v2.9.1 duplicates each connection it takes
// over (Engine.Register, its dialer) with dup(2), which does not set
// close-on-exec, so every TCP connection open in the predecessor when it
// started this process lives on here too: the predecessor's close of it
// would then send no FIN, and its clients would wait on a connection
// nobody serves. Everything this process has opened by now (Go's own
// descriptors) is close-on-exec, and what tableflip passed is 3 and 4 (its
// pipes) and, from 5 on, the files it has marked close-on-exec: a
// descriptor above 4 without the flag is one of the leaks. Called right
// after tableflip.New, before the engine opens anything.
func closeLeakedFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 4 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		if unix.Close(fd) == nil {
			n++
		}
	}
	return n
}
