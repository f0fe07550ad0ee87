//go:build !linux

package main

import (
	"errors"
	"net"
)

// batch is one source's messages in flight, sent one write each where the
// platform has no sendmmsg.
type batch struct {
	c     *net.UDPConn
	buf   []byte
	kinds []kind
	lens  []int
}

func newBatch(c *net.UDPConn, size int) *batch {
	return &batch{c: c, buf: make([]byte, size*maxMessage), kinds: make([]kind, size), lens: make([]int, size)}
}

func (b *batch) size() int { return len(b.kinds) }

func (b *batch) slot(i int) []byte { return b.buf[i*maxMessage : (i+1)*maxMessage] }

// send writes messages 0..n-1 (see the Linux version).
func (b *batch) send(n int, sent *[numKinds]uint64) (uint64, error) {
	var errs uint64
	for i := range n {
		if _, err := b.c.Write(b.slot(i)[:b.lens[i]]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return errs, err
			}
			if isClosed(err) {
				return errs, err
			}
			errs++
			continue
		}
		sent[b.kinds[i]]++
	}
	return errs, nil
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// read counts the datagrams that come back until the socket is closed.
func (s *source) read() {
	buf := make([]byte, 2048)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if isClosed(err) {
				return
			}
			continue
		}
		s.count(buf[:n])
	}
}
