package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"

	"github.com/siplb/siplb/benchmarks/internal/echo"
)

// kind is one sort of flood message.
type kind uint8

const (
	kInvite   kind = iota // INVITEs to random numbers, a new Call-ID each
	kRegister             // REGISTER enumeration: a random user each, no User-Agent
	kGarbage              // random bytes, or a SIP request cut short
	kScanner              // OPTIONS as a SIP scanner sends them, its User-Agent included
	numKinds
)

// kindNames name the kinds in -mix and in the results.
var kindNames = [numKinds]string{"invite", "register", "garbage", "scanner"}

// scannerAgents are User-Agent values SIP scanners send (sipvicious'
// svmap and svwar, sipcli, the VaxSIP SDK, pplsip); one is picked per
// scanner message.
var scannerAgents = [...]string{"friendly-scanner", "sipvicious", "sipcli/v1.8", "VaxSIPUserAgent/3.1", "pplsip"}

// maxMessage bounds what a generator writes: every slot of a batch has
// this much room.
const maxMessage = 2048

// errMix is a -mix that names no known kind or gives a bad weight.
var errMix = errors.New("bad -mix")

// mix is the weight of each kind; the kind of each message is drawn in
// proportion.
type mix [numKinds]uint32

// parseMix reads "invite,register" (weight 1 each) or "invite=3,garbage=1".
// Kinds left out get weight 0; at least one weight must be positive.
func parseMix(s string) (mix, error) {
	var m mix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, w, hasW := strings.Cut(item, "=")
		weight := uint64(1)
		if hasW {
			var err error
			if weight, err = strconv.ParseUint(w, 10, 16); err != nil {
				return m, fmt.Errorf("%w: weight of %q must be 0-65535", errMix, name)
			}
		}
		k := -1
		for i, n := range kindNames {
			if n == name {
				k = i
			}
		}
		if k < 0 {
			return m, fmt.Errorf("%w: unknown kind %q (want %s)", errMix, name, strings.Join(kindNames[:], ", "))
		}
		m[k] += uint32(weight)
	}
	var total uint32
	for _, w := range m {
		total += w
	}
	if total == 0 {
		return m, fmt.Errorf("%w: %q gives no kind a weight", errMix, s)
	}
	return m, nil
}

// named returns the weights by kind name, for the results.
func (m mix) named() map[string]uint32 {
	out := make(map[string]uint32, numKinds)
	for k, w := range m {
		if w > 0 {
			out[kindNames[k]] = w
		}
	}
	return out
}

// field is a run of a template that render fills with random characters,
// or with a copy of an earlier field (same >= 0).
type field struct {
	off, n int
	digits bool // 0-9, else lower-case hex
	same   int  // index of the field to copy, or -1
}

// template is a message with fixed-width random fields, so that rendering
// one is a copy and a fill, and its Content-Length is known in advance.
type template struct {
	b      []byte
	fields []field
}

// lit appends literal text.
func (t *template) lit(s string) *template { t.b = append(t.b, s...); return t }

// rnd appends a field of n random characters; it returns the field's
// index for ref.
func (t *template) rnd(n int, digits bool) int {
	t.fields = append(t.fields, field{off: len(t.b), n: n, digits: digits, same: -1})
	t.b = append(t.b, strings.Repeat("0", n)...)
	return len(t.fields) - 1
}

// ref appends a copy of field i as rendered.
func (t *template) ref(i int) *template {
	f := t.fields[i]
	t.fields = append(t.fields, field{off: len(t.b), n: f.n, same: i})
	t.b = append(t.b, strings.Repeat("0", f.n)...)
	return t
}

// add appends u (its text and fields).
func (t *template) add(u *template) *template {
	base, nf := len(t.b), len(t.fields)
	t.b = append(t.b, u.b...)
	for _, f := range u.fields {
		f.off += base
		if f.same >= 0 {
			f.same += nf
		}
		t.fields = append(t.fields, f)
	}
	return t
}

// render writes one message into dst (at least len(t.b) long) and returns
// its length.
func (t *template) render(dst []byte, r *rand.PCG) int {
	n := copy(dst, t.b)
	for _, f := range t.fields {
		out := dst[f.off : f.off+f.n]
		if f.same >= 0 {
			s := t.fields[f.same]
			copy(out, dst[s.off:s.off+s.n])
			continue
		}
		fill(out, r, f.digits)
	}
	return n
}

// fill writes random digits or hex characters into b.
func fill(b []byte, r *rand.PCG, digits bool) {
	const hex = "0123456789abcdef"
	var v uint64
	for i := range b {
		if i%8 == 0 {
			v = r.Uint64()
		}
		if digits {
			b[i] = '0' + byte(v&0xff)%10
		} else {
			b[i] = hex[v&0xf]
		}
		v >>= 8
	}
}

// gen writes the messages of one source. It is owned by that source's
// goroutine.
type gen struct {
	r        *rand.PCG
	weights  mix
	total    uint32
	invite   template
	register template
	trunc    template // an INVITE whose Request-URI carries the mark, for garbage
	scanners [len(scannerAgents)]template
}

// newGen prepares the templates for messages from src to target.
func newGen(src, target netip.AddrPort, weights mix, seed uint64) *gen {
	g := &gen{r: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15), weights: weights}
	for _, w := range weights {
		g.total += w
	}
	s, d := src.String(), target.String()
	sh := src.Addr().String()
	if src.Addr().Is6() {
		sh = "[" + sh + "]"
	}

	invite := func(t *template, uriUser string) {
		t.lit("INVITE sip:" + uriUser)
		to := t.rnd(11, true)
		t.lit("@" + d + " SIP/2.0\r\nVia: SIP/2.0/UDP " + s + ";branch=z9hG4bK")
		t.rnd(16, false)
		t.lit(";rport\r\nMax-Forwards: 70\r\nFrom: <sip:")
		from := t.rnd(6, true)
		t.lit("@" + sh + ">;tag=")
		t.rnd(8, false)
		t.lit("\r\nTo: <sip:" + uriUser).ref(to).lit("@" + d + ">\r\nCall-ID: " + echo.FloodMark)
		t.rnd(16, false)
		t.lit("@" + sh + "\r\nCSeq: 1 INVITE\r\nContact: <sip:").ref(from).lit("@" + s + ">\r\n")
		body := &template{}
		body.lit("v=0\r\no=- ")
		body.rnd(10, true)
		body.lit(" 1 IN IP4 " + src.Addr().String() + "\r\ns=-\r\nc=IN IP4 " + src.Addr().String() +
			"\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
		t.lit("Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(body.b)) + "\r\n\r\n").add(body)
	}
	invite(&g.invite, "")
	invite(&g.trunc, echo.FloodMark)

	t := &g.register
	t.lit("REGISTER sip:" + d + " SIP/2.0\r\nVia: SIP/2.0/UDP " + s + ";branch=z9hG4bK")
	t.rnd(16, false)
	t.lit(";rport\r\nMax-Forwards: 70\r\nFrom: <sip:")
	user := t.rnd(6, true)
	t.lit("@" + d + ">;tag=")
	t.rnd(8, false)
	t.lit("\r\nTo: <sip:").ref(user).lit("@" + d + ">\r\nCall-ID: " + echo.FloodMark)
	t.rnd(16, false)
	t.lit("\r\nCSeq: 1 REGISTER\r\nContact: <sip:").ref(user).lit("@" + s + ">\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n")

	for i, ua := range scannerAgents {
		t := &g.scanners[i]
		t.lit("OPTIONS sip:100@" + d + " SIP/2.0\r\nVia: SIP/2.0/UDP " + s + ";branch=z9hG4bK-")
		t.rnd(10, true)
		t.lit(";rport\r\nMax-Forwards: 70\r\nTo: \"scan\"<sip:100@" + d + ">\r\nFrom: \"scan\"<sip:100@" + d + ">;tag=")
		t.rnd(16, false)
		t.lit("\r\nUser-Agent: " + ua + "\r\nCall-ID: " + echo.FloodMark)
		t.rnd(12, true)
		t.lit("\r\nContact: <sip:100@" + s + ">\r\nCSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n")
	}
	return g
}

// pick draws a kind in proportion to the weights.
func (g *gen) pick() kind {
	x := uint32(g.r.Uint64() % uint64(g.total))
	for k, w := range g.weights {
		if x < w {
			return kind(k)
		}
		x -= w
	}
	return kInvite // not reached: the weights add up to total
}

// next writes one message of a drawn kind into dst (maxMessage long) and
// returns its kind and length.
func (g *gen) next(dst []byte) (kind, int) {
	k := g.pick()
	switch k {
	case kInvite:
		return k, g.invite.render(dst, g.r)
	case kRegister:
		return k, g.register.render(dst, g.r)
	case kScanner:
		t := &g.scanners[g.r.Uint64()%uint64(len(g.scanners))]
		return k, t.render(dst, g.r)
	}
	return k, g.garbage(dst)
}

// garbage writes either random bytes with the mark near the start, or a
// marked INVITE cut short somewhere after its Request-URI.
func (g *gen) garbage(dst []byte) int {
	v := g.r.Uint64()
	if v&1 == 0 {
		n := g.trunc.render(dst, g.r)
		// Keep "INVITE sip:flood-" and at least one more byte.
		keep := len("INVITE sip:") + len(echo.FloodMark) + 1
		return keep + int((v>>1)%uint64(n-keep))
	}
	n := 32 + int((v>>1)%(1024-32))
	at := int((v >> 12) % 16)
	for i := 0; i < n; i += 8 {
		w := g.r.Uint64()
		for j := i; j < i+8 && j < n; j++ {
			dst[j] = byte(w)
			w >>= 8
		}
	}
	copy(dst[at:], echo.FloodMark)
	return n
}
