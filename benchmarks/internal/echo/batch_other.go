//go:build !linux

package echo

import "net"

// mmsg is batched I/O; only Linux has it here.
type mmsg struct{}

func newMmsg(*net.UDPConn) *mmsg { return nil }

func (k *socket) serveBatch() error { return k.servePlain() }
