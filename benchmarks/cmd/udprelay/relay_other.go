//go:build !linux

package main

import (
	"context"
	"errors"
	"net/netip"
)

// Config is one relay (see relay_linux.go); recvmmsg/sendmmsg are Linux only.
type Config struct {
	Listen   netip.AddrPort
	Backends []netip.AddrPort
}

// Stats are the relay's counters, in datagrams.
type Stats struct{ Clients, Up, Down, Dropped uint64 }

// Relay is not available off Linux.
type Relay struct{}

// Listen always fails off Linux.
func Listen(Config) (*Relay, error) { return nil, errors.New("relay: needs Linux (recvmmsg/sendmmsg)") }

func (*Relay) Addr() netip.AddrPort        { return netip.AddrPort{} }
func (*Relay) Stats() Stats                { return Stats{} }
func (*Relay) Serve(context.Context) error { return nil }
