//go:build !linux

package engine

import (
	"context"
	"errors"
)

// batchSupported reports whether this system has recvmmsg/sendmmsg.
const batchSupported = false

type batchSock struct {
	scr  *Scratch
	done chan struct{}
}

func (s *Server) startBatchUDP(context.Context) error {
	return errors.New("batched UDP needs Linux")
}
