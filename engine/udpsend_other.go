//go:build !linux

package engine

import (
	"net/netip"

	"github.com/siplb/siplb/balance"
)

// udpQueue is udpsend_linux.go's queue of a loop's datagrams; without
// sendmmsg nothing is queued and each datagram is sent by itself (sendto).
type udpQueue struct{}

type hintFunc = func(netip.AddrPort, balance.Hint)

func (q *udpQueue) init(*Counters, hintFunc)             {}
func (q *udpQueue) add(int, []byte, netip.AddrPort) bool { return false }
func (q *udpQueue) flush()                               {}
