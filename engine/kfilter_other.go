//go:build !linux

package engine

import (
	"context"
	"net/netip"
	"time"

	"github.com/siplb/siplb/balance"
)

// kernelFilter is Linux's socket filter for blocked sources (kfilter_linux.go);
// elsewhere blocked sources are dropped in user space only.
type kernelFilter struct{}

func newKernelFilter(*balance.Balancer) *kernelFilter   { return &kernelFilter{} }
func (k *kernelFilter) block(netip.Addr, time.Duration) {}
func (k *kernelFilter) run(ctx context.Context)         { <-ctx.Done() }
