package balance

import "strconv"

// probeIDDigits is the number of hex digits of a probe id in its branch, and
// probeBranchTail what follows them; together they give a probe's branch the
// length of a forwarded request's, so the engine tells them apart only by
// the prefix.
const (
	probeIDDigits   = 16
	probeBranchTail = "00000000"
)

// ProbeMaxForwards is the Max-Forwards of a probe: RFC 3261 §8.1.1.6's
// recommended 70, so a backend that is itself a proxy answers as it would a
// client rather than with 483.
const ProbeMaxForwards = 70

// appendProbe appends the OPTIONS request probing t with the given id
// (RFC 3261 §11):
//
//	OPTIONS sip:10.0.0.1:5060 SIP/2.0
//	Via: SIP/2.0/UDP 127.0.0.1:5060;branch=<prefix><16 hex id>00000000;rport
//	Max-Forwards: 70
//	From: <sip:siplb@127.0.0.1:5060>;tag=<8 hex>
//	To: <sip:10.0.0.1:5060>
//	Call-ID: <16 hex id>@siplb
//	CSeq: <n> OPTIONS
//	Content-Length: 0
func (c *Checker) appendProbe(dst []byte, t *healthTarget, id uint64) []byte {
	dst = append(dst, "OPTIONS "...)
	dst = appendTargetURI(dst, t)
	dst = append(dst, " SIP/2.0\r\nVia: SIP/2.0/"...)
	dst = append(dst, c.id.Transport...)
	dst = append(dst, ' ')
	dst = append(dst, c.id.SentBy...)
	dst = append(dst, ";branch="...)
	dst = append(dst, c.id.BranchPrefix...)
	dst = appendProbeHex(dst, id, probeIDDigits)
	dst = append(dst, probeBranchTail...)
	dst = append(dst, ";rport\r\nMax-Forwards: "...)
	dst = strconv.AppendUint(dst, ProbeMaxForwards, 10)
	dst = append(dst, "\r\nFrom: <sip:siplb@"...)
	dst = append(dst, c.id.SentBy...)
	dst = append(dst, ">;tag="...)
	dst = appendProbeHex(dst, uint64(c.fromTag), 8)
	dst = append(dst, "\r\nTo: <"...)
	dst = appendTargetURI(dst, t)
	dst = append(dst, ">\r\nCall-ID: "...)
	dst = appendProbeHex(dst, id, probeIDDigits)
	dst = append(dst, "@siplb\r\nCSeq: "...)
	dst = strconv.AppendUint(dst, uint64(t.cseq), 10)
	dst = append(dst, " OPTIONS\r\nContent-Length: 0\r\n\r\n"...)
	return dst
}

// appendTargetURI appends "sip:host:port" for t, with ";transport=" for a
// backend not reached over UDP.
func appendTargetURI(dst []byte, t *healthTarget) []byte {
	dst = append(dst, "sip:"...)
	dst = t.addr.AppendTo(dst) // IPv6 bracketed
	if t.transport != UDP {
		dst = append(dst, ";transport="...)
		dst = append(dst, t.transport.String()...)
	}
	return dst
}

// parseBranch returns the probe id in a branch this checker writes:
// BranchPrefix, 16 lower-case hex digits, "00000000".
func (c *Checker) parseBranch(b []byte) (uint64, bool) {
	p := c.id.BranchPrefix
	if len(b) != len(p)+probeIDDigits+len(probeBranchTail) || string(b[:len(p)]) != p ||
		string(b[len(p)+probeIDDigits:]) != probeBranchTail {
		return 0, false
	}
	var id uint64
	for _, ch := range b[len(p) : len(p)+probeIDDigits] {
		var d byte
		switch {
		case '0' <= ch && ch <= '9':
			d = ch - '0'
		case 'a' <= ch && ch <= 'f':
			d = ch - 'a' + 10
		default:
			return 0, false
		}
		id = id<<4 | uint64(d)
	}
	return id, true
}

// appendProbeHex appends the n low hex digits of x, lower case, zero-padded.
func appendProbeHex(dst []byte, x uint64, n int) []byte {
	const digits = "0123456789abcdef"
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, digits[x>>(4*uint(i))&15])
	}
	return dst
}
