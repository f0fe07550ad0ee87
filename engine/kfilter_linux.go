package engine

import (
	"context"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/balance"
)

// The kernel filter keeps the sources the flood detector blocked out of the
// batched UDP sockets with a classic BPF socket filter: a flood then costs
// the kernel's receive path and nothing after it (no room in the socket's
// buffer, no recvmmsg, no parse), so a flood larger than siplb can read no
// longer crowds legitimate datagrams out of the buffer. The detector still
// decides; the filter only carries out its blocks, each for the detector's
// block time, after which the detector looks at the source again.
//
// A source that shares its IP with a pool member (or a backend_sources
// prefix) is never filtered: the filter sees only addresses, and the
// member's traffic must pass. The user-space check keeps dropping that
// source's other ports.

// maxFiltered bounds the sources in the filter (a classic BPF program has
// at most 4096 instructions). Blocked sources past it are dropped in user
// space, as without a filter.
const maxFiltered = 600

// filterDebounce gathers the blocks of a burst into one filter update.
const filterDebounce = 20 * time.Millisecond

// skfNetOff is SKF_NET_OFF: a load relative to the network header.
const skfNetOff = 0xfff00000 // -0x100000 as a uint32

type kernelFilter struct {
	bal *balance.Balancer

	mu    sync.Mutex
	until map[netip.Addr]time.Time // IPv4 address, or IPv6 /64 (masked) → end of its block
	socks []syscall.RawConn
	wake  chan struct{}

	installed int // entries in the filter now; owned by run
}

func newKernelFilter(bal *balance.Balancer) *kernelFilter {
	return &kernelFilter{bal: bal, until: make(map[netip.Addr]time.Time), wake: make(chan struct{}, 1)}
}

// add puts a socket under the filter.
func (k *kernelFilter) add(rc syscall.RawConn) {
	k.mu.Lock()
	k.socks = append(k.socks, rc)
	k.mu.Unlock()
}

// block keeps ip out for d. Called from the event loops on a new block:
// it takes a lock and never waits for the update.
func (k *kernelFilter) block(ip netip.Addr, d time.Duration) {
	if d <= 0 {
		return
	}
	ip = ip.Unmap()
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	k.mu.Lock()
	if _, ok := k.until[ip]; ok || len(k.until) < maxFiltered {
		k.until[ip] = time.Now().Add(d)
	}
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// run rebuilds and attaches the filter after blocks and expiries until ctx
// is done.
func (k *kernelFilter) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.wake:
			time.Sleep(filterDebounce)
		case <-tick.C:
		}
		k.update(time.Now())
	}
}

// update drops expired entries and, if the set changed, attaches the new
// program to every socket.
func (k *kernelFilter) update(now time.Time) {
	k.mu.Lock()
	t := k.bal.Table()
	var v4 []uint32
	var v6 [][2]uint32
	for ip, end := range k.until {
		if !now.Before(end) || k.hostsMember(t, ip) {
			delete(k.until, ip)
			continue
		}
		if ip.Is4() {
			b := ip.As4()
			v4 = append(v4, uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))
		} else {
			b := ip.As16()
			v6 = append(v6, [2]uint32{be32(b[0:4]), be32(b[4:8])})
		}
	}
	socks := append([]syscall.RawConn(nil), k.socks...)
	k.mu.Unlock()
	n := len(v4) + len(v6)
	if n == 0 && k.installed == 0 {
		return
	}
	prog, err := filterProgram(v4, v6)
	if err != nil {
		return
	}
	for _, rc := range socks {
		rc.Control(func(fd uintptr) {
			if n == 0 {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
				return
			}
			fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
			unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
		})
	}
	k.installed = n
}

// hostsMember reports whether ip (an address or an IPv6 /64) holds a pool
// member or is in backend_sources.
func (k *kernelFilter) hostsMember(t *balance.Table, ip netip.Addr) bool {
	if t.BackendSource(ip) {
		return true
	}
	for i := range t.NumPools() {
		for _, b := range t.Pool(balance.PoolID(i)).Backends() {
			a := b.Addr.Addr().Unmap()
			if a == ip || (ip.Is6() && a.Is6() && netip.PrefixFrom(a, 64).Masked().Addr() == ip) {
				return true
			}
		}
	}
	return false
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// filterProgram assembles the socket filter: drop a datagram whose source
// is one of v4 or whose source /64 is one of v6 (high and low words), keep
// every other whole.
func filterProgram(v4 []uint32, v6 [][2]uint32) ([]unix.SockFilter, error) {
	ins := []bpf.Instruction{
		bpf.LoadAbsolute{Off: skfNetOff, Size: 1},                          // version and IHL
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},                 // the version
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 0, SkipFalse: 1}, // 4: the IPv4 list
		bpf.Jump{Skip: 1}, // to the IPv4 list's load
		bpf.Jump{},        // to the IPv6 list: set below, once its start is known
		bpf.LoadAbsolute{Off: skfNetOff + 12, Size: 4}, // the IPv4 source
	}
	for _, a := range v4 {
		ins = append(ins, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: a, SkipTrue: 1}, bpf.RetConstant{Val: 0})
	}
	ins = append(ins, bpf.RetConstant{Val: 0xffffffff})
	// The second jump lands here, on the IPv6 list.
	ins[4] = bpf.Jump{Skip: uint32(len(ins) - 5)}
	for _, p := range v6 {
		ins = append(ins,
			bpf.LoadAbsolute{Off: skfNetOff + 8, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: p[0], SkipTrue: 3},
			bpf.LoadAbsolute{Off: skfNetOff + 12, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: p[1], SkipTrue: 1},
			bpf.RetConstant{Val: 0})
	}
	ins = append(ins, bpf.RetConstant{Val: 0xffffffff})
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return nil, err
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}
