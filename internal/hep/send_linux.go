//go:build linux

package hep

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/siplb/siplb/internal/mmsg"
)

// Over UDP a batch leaves with one sendmmsg. Where the kernel has UDP
// segmentation offload (GSO, Linux 4.18), an entry of that call carries up
// to gsoMaxSegments frames back to back, which the kernel cuts into a
// datagram each after one pass through its stack for all of them (or the
// NIC cuts them, where it can). That is what a datagram costs the sender:
// on the 2-core VM about 320 ns a frame in entries of 64, where a datagram
// sent alone costs 1.5 µs (BenchmarkSend, both with loopback's receive
// path counted).
//
// The kernel cuts at one size, every datagram of an entry but the last
// having it, so an entry takes the frames of one class: sizes up to a
// multiple of padStep. Each but the last is padded to that size with a pad
// chunk, which HEP collectors skip: heplify-server skips chunk types it
// does not know, Kamailio's sipcapture and sngrep skip the chunks of any
// vendor but the generic 0. The batch is sorted by class first (stably),
// so frames leave out of order within a poll, which UDP never promised;
// each carries the time of its message.
const (
	gsoMaxSegments = 64    // UDP_MAX_SEGMENTS before Linux 6.x raised it to 128
	gsoMaxBytes    = 65487 // an entry's bytes at most: 65535 less the IPv6 and UDP headers
	gsoMaxSegment  = 8192  // larger frames (or larger than the path's MTU allows) go a datagram each, unpadded
	padStep        = 64    // a padded frame gains 6 to padStep+5 bytes, about 5 % of a 700-byte frame on average
	padMin         = chunkHeaderLen
)

// pads[p] is a pad chunk of p bytes, for p from padMin to padStep+padMin-1.
// Shared by every sender and only read.
var pads = func() (t [padStep + padMin][]byte) {
	for p := padMin; p < len(t); p++ {
		c := make([]byte, p)
		binary.BigEndian.PutUint16(c[0:], padVendor)
		binary.BigEndian.PutUint16(c[2:], padType)
		binary.BigEndian.PutUint16(c[4:], uint16(p))
		t[p] = c
	}
	return t
}()

// gsoClasses bounds a frame's class: its padded size over padStep, 0 for
// a frame that goes alone.
const gsoClasses = gsoMaxSegment/padStep + 1

var gsoCmsgSpace = unix.CmsgSpace(2)

// batchWriter sends up to 2*maxBatch frames on a connected UDP socket with
// one sendmmsg.
type batchWriter struct {
	rc     syscall.RawConn
	frames [2 * maxBatch][]byte // added, in order
	n      int

	// What write builds from frames: the iovecs (a frame, then its pad if
	// it has one), a slot per frame in sending order naming its iovecs,
	// and a header per datagram or per GSO entry.
	iov       [4 * maxBatch]unix.Iovec
	slots     [2 * maxBatch]slot
	hdrs      [2 * maxBatch]unix.Mmsghdr
	hdrSlot   [2 * maxBatch]uint16    // a header's first slot
	hdrFrames [2 * maxBatch]uint16    // a header's frames
	oob       [2 * maxBatch][4]uint64 // a GSO entry's cmsg (8-byte aligned)
	class     [2 * maxBatch]uint8
	order     [2 * maxBatch]uint16
	nh        int
	ns        int

	segMax int         // the largest GSO segment; 0: GSO off
	gso    atomic.Bool // segMax > 0, for Stats
	done   int         // headers the kernel took or refused
	failed int         // frames refused
	gsoErr syscall.Errno
	fn     func(fd uintptr) bool

	sendmmsg func(fd uintptr, hdrs []unix.Mmsghdr) (int, syscall.Errno) // mmsg.Send; a test's stand-in
}

type slot struct{ iov, n uint16 }

// init readies w for c; gso asks for segmentation offload, which w uses
// when the kernel has it.
func (w *batchWriter) init(c *net.UDPConn, gso bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	w.rc = rc
	w.sendmmsg = mmsg.Send
	if gso {
		v6 := false
		if a, ok := c.RemoteAddr().(*net.UDPAddr); ok {
			v6 = a.IP.To4() == nil
		}
		w.segMax = gsoSegmentMax(rc, v6)
		w.gso.Store(w.segMax > 0)
	}
	// Made once, so a write allocates no closure.
	w.fn = w.send
	return nil
}

// gsoSegmentMax is the largest frame that a GSO entry on rc can carry: what
// the path's MTU leaves after the IP and UDP headers, at most
// gsoMaxSegment; 0 when the kernel has no UDP GSO.
func gsoSegmentMax(rc syscall.RawConn, v6 bool) int {
	seg := 0
	rc.Control(func(fd uintptr) {
		if _, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT); err != nil {
			return // ENOPROTOOPT: no UDP GSO in this kernel
		}
		level, opt, hdr := unix.IPPROTO_IP, unix.IP_MTU, 20+8
		if v6 {
			level, opt, hdr = unix.IPPROTO_IPV6, unix.IPV6_MTU, 40+8
		}
		mtu, err := unix.GetsockoptInt(int(fd), level, opt)
		if err != nil {
			return
		}
		seg = min(mtu-hdr, gsoMaxSegment)
	})
	if seg < 2*padStep {
		return 0
	}
	return seg
}

func (w *batchWriter) segmenting() bool { return w.gso.Load() }

func (w *batchWriter) reset() { w.n, w.nh, w.ns, w.done, w.failed, w.gsoErr = 0, 0, 0, 0, 0, 0 }

func (w *batchWriter) add(frame []byte) {
	if w.n == len(w.frames) {
		return
	}
	w.frames[w.n] = frame
	w.n++
}

// write sends the frames added and returns how many went and how many the
// socket refused.
func (w *batchWriter) write() (sent, failed int) {
	if w.n == 0 {
		return 0, 0
	}
	if w.segMax > 0 {
		w.buildGSO()
	} else {
		w.buildPlain()
	}
	err := w.rc.Write(w.fn)
	if err == nil && w.gsoErr != 0 {
		// The kernel refused an entry for GSO's sake (EIO: the route's
		// device cannot checksum, or goes through IPsec; EINVAL or
		// EMSGSIZE: the path's MTU shrank). GSO stays off from here; what
		// was not sent goes a datagram a frame, padded or not.
		w.segMax = 0
		w.gso.Store(false)
		w.gsoErr = 0
		w.replain()
		err = w.rc.Write(w.fn)
	}
	failed = w.failed
	if err != nil {
		for i := w.done; i < w.nh; i++ { // the socket is closed: the rest is lost
			failed += int(w.hdrFrames[i])
		}
	}
	for i := range w.iov[:2*w.n] {
		w.iov[i].Base = nil
	}
	clear(w.frames[:w.n])
	return w.n - failed, failed
}

// send is the sendmmsg loop of write, on the socket's descriptor.
func (w *batchWriter) send(fd uintptr) bool {
	for w.done < w.nh {
		n, e := w.sendmmsg(fd, w.hdrs[w.done:w.nh])
		switch {
		case e == 0:
			w.done += n
		case e == unix.EAGAIN:
			return false
		case w.hdrs[w.done].Hdr.Controllen != 0 && (e == unix.EIO || e == unix.EINVAL || e == unix.EMSGSIZE || e == unix.ENOPROTOOPT || e == unix.EOPNOTSUPP):
			w.gsoErr = e
			return true
		default:
			// A connected UDP socket fails the next send with the ICMP
			// error an earlier frame earned (ECONNREFUSED: the collector
			// is down). The entry is dropped and counted, not sent again,
			// so that a collector that is down shows as send errors.
			w.failed += int(w.hdrFrames[w.done])
			w.done++
		}
	}
	return true
}

// buildPlain lays out a datagram a frame, in order.
func (w *batchWriter) buildPlain() {
	for i, f := range w.frames[:w.n] {
		w.iov[i].Base = &f[0]
		w.iov[i].SetLen(len(f))
		w.slots[i] = slot{uint16(i), 1}
		w.setHeader(i, i, i, 1, 1, 0)
	}
	w.ns, w.nh = w.n, w.n
}

// buildGSO sorts the frames by class and lays out an entry for each run of
// one class, up to gsoMaxSegments frames and gsoMaxBytes, padding all but
// its last frame to the class's size; a run of one frame, or a frame of
// class 0, is a datagram of its own, unpadded.
func (w *batchWriter) buildGSO() {
	var start [gsoClasses + 1]uint16
	for i, f := range w.frames[:w.n] {
		c := w.classOf(len(f))
		w.class[i] = c
		start[c+1]++
	}
	for c := 1; c < len(start); c++ {
		start[c] += start[c-1]
	}
	for i := range w.n {
		c := w.class[i]
		w.order[start[c]] = uint16(i)
		start[c]++
	}
	iv, ns, nh := 0, 0, 0
	for i := 0; i < w.n; {
		c := w.class[w.order[i]]
		size := int(c) * padStep
		j := i + 1
		if c != 0 {
			per := min(gsoMaxSegments, gsoMaxBytes/size)
			for j < w.n && j-i < per && w.class[w.order[j]] == c {
				j++
			}
		}
		first, firstIov := ns, iv
		for k := i; k < j; k++ {
			f := w.frames[w.order[k]]
			w.iov[iv].Base = &f[0]
			w.iov[iv].SetLen(len(f))
			n := 1
			if p := size - len(f); k < j-1 && p > 0 {
				binary.BigEndian.PutUint16(f[4:], uint16(size)) // the frame's total length, pad included
				w.iov[iv+1].Base = &pads[p][0]
				w.iov[iv+1].SetLen(p)
				n = 2
			}
			w.slots[ns] = slot{uint16(iv), uint16(n)}
			ns++
			iv += n
		}
		seg := 0
		if j-i > 1 {
			seg = size
		}
		w.setHeader(nh, first, firstIov, iv-firstIov, j-i, seg)
		nh++
		i = j
	}
	w.ns, w.nh = ns, nh
}

// classOf is the class of a frame of n bytes: the size it is padded to
// over padStep (a pad is 0 or at least padMin bytes), or 0 when that is
// more than an entry's segment can be.
func (w *batchWriter) classOf(n int) uint8 {
	size := (n + padStep - 1) / padStep * padStep
	if p := size - n; p > 0 && p < padMin {
		size += padStep
	}
	if size > w.segMax {
		return 0
	}
	return uint8(size / padStep)
}

// replain lays out the frames not yet sent a datagram each, from the slots
// of header w.done on.
func (w *batchWriter) replain() {
	first := int(w.hdrSlot[w.done])
	for j, s := range w.slots[first:w.ns] {
		w.setHeader(j, first+j, int(s.iov), int(s.n), 1, 0)
	}
	w.nh, w.done = w.ns-first, 0
}

// setHeader makes header i the datagram (seg 0) or GSO entry (segments of
// seg bytes) of frames frames from slot first, over iovecs n from iov.
func (w *batchWriter) setHeader(i, first, iov, n, frames, seg int) {
	h := &w.hdrs[i].Hdr
	h.Iov = &w.iov[iov]
	h.SetIovlen(n)
	w.hdrSlot[i], w.hdrFrames[i] = uint16(first), uint16(frames)
	if seg == 0 {
		h.Control = nil
		h.SetControllen(0)
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&w.oob[i][0])), gsoCmsgSpace)
	cm := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	cm.Level, cm.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	cm.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = uint16(seg)
	h.Control = &b[0]
	h.SetControllen(gsoCmsgSpace)
}
