// Package mmsg wraps recvmmsg(2) and sendmmsg(2), the batched UDP system
// calls siplb's data path and its benchmark tools use, and the socket
// addresses they carry: the one codec between netip.AddrPort and the
// kernel's sockaddr forms, raw (for mmsghdr) and unix.Sockaddr (for
// sendto). It is shared by the engine (the batched UDP legs, the sends of
// gnet's) and the benchmark relay and echo; it owns no sockets and no
// buffers.
//
// The system call wrappers (Linux only) are meant for
// syscall.RawConn.Read/Write callbacks: they never block (MSG_DONTWAIT) and
// retry EINTR themselves; EAGAIN tells the caller to let the netpoller
// wait.
package mmsg
