package engine

import (
	"encoding/binary"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NewRelayPair returns a connected pair of unix SOCK_SEQPACKET sockets
// (close-on-exec) for a hand-over's relay: one end for this process's
// Server.Relay, the other to pass to the new process, which gives it to
// its own Server.Relay. Each message keeps its boundaries; when one
// process's end closes, the other's reads end.
func NewRelayPair() (mine, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "siplb-relay"), os.NewFile(uintptr(fds[1]), "siplb-relay"), nil
}

// relayFile returns a non-blocking copy of f, which the runtime's poller
// serves (a descriptor passed across exec was made blocking by the exec),
// and its descriptor, and closes f.
func relayFile(f *os.File) (*os.File, int, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(old uintptr) { fd, derr = unix.FcntlInt(old, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, -1, err
	}
	if derr != nil {
		return nil, -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return os.NewFile(uintptr(fd), "siplb-relay"), fd, nil
}

// writeRelayed sends the header naming conn and out as one message, with
// no copy and no allocation (writev of two buffers on the stack).
func writeRelayed(fd int, conn uint64, out []byte) error {
	var hdr [relayHeader]byte
	binary.BigEndian.PutUint64(hdr[:], conn)
	var iov [2]unix.Iovec
	iov[0].Base, iov[1].Base = &hdr[0], &out[0]
	iov[0].SetLen(relayHeader)
	iov[1].SetLen(len(out))
	_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 2)
	if e != 0 {
		return e
	}
	return nil
}
