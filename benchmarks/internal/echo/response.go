package echo

import (
	"errors"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/siplb/siplb/benchmarks/internal/sipwire"
)

// respOpt selects the optional parts of a response.
type respOpt uint8

const (
	withTag     respOpt = 1 << iota // add a To tag when the request has none
	withContact                     // Contact naming the receiving socket
	withRR                          // copy Record-Route (RFC 3261 §12.1.1: 18x/2xx to INVITE)
	withSDP                         // SDP answer body
	withBinding                     // REGISTER: echo Contact, add Expires
	cseqInvite                      // CSeq method INVITE (the 487 that follows a CANCEL)
)

// defaultExpires is the Expires a REGISTER answer carries when the request
// has none (RFC 3261 §10.2.1.1 suggests one hour).
const defaultExpires = "3600"

// appendResponse appends the response with status code and reason to dst.
func (k *answerer) appendResponse(dst []byte, m *sipwire.Msg, code int, reason string, o respOpt) []byte {
	dst = append(dst, "SIP/2.0 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	dst = append(dst, "\r\n"...)
	for _, v := range m.Vias {
		dst = appendHeader(dst, "Via: ", v)
	}
	dst = appendHeader(dst, "From: ", m.From)
	dst = append(dst, "To: "...)
	dst = append(dst, m.To...)
	if o&withTag != 0 && sipwire.Tag(m.To) == nil {
		dst = append(dst, ";tag=e"...)
		dst = appendHex32(dst, fnv32(m.CallID))
	}
	dst = append(dst, "\r\n"...)
	dst = appendHeader(dst, "Call-ID: ", m.CallID)
	dst = append(dst, "CSeq: "...)
	dst = strconv.AppendUint(dst, uint64(m.CSeqNum), 10)
	if o&cseqInvite != 0 {
		dst = append(dst, " INVITE\r\n"...)
	} else {
		dst = append(dst, ' ')
		dst = append(dst, m.CSeqMethod...)
		dst = append(dst, "\r\n"...)
	}
	if o&withRR != 0 {
		for _, v := range m.RecordRoutes {
			dst = appendHeader(dst, "Record-Route: ", v)
		}
	}
	if o&withContact != 0 {
		dst = append(dst, "Contact: <sip:echo@"...)
		dst = append(dst, k.contact...)
		dst = append(dst, ">\r\n"...)
	}
	if o&withBinding != 0 {
		if m.Contact != nil {
			dst = appendHeader(dst, "Contact: ", m.Contact)
		}
		dst = append(dst, "Expires: "...)
		if m.Expires != nil {
			dst = append(dst, m.Expires...)
		} else {
			dst = append(dst, defaultExpires...)
		}
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Server: sipecho ("...)
	dst = append(dst, k.localStr...)
	dst = append(dst, ")\r\n"...)
	if o&withSDP != 0 {
		dst = append(dst, "Content-Type: application/sdp\r\nContent-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(k.sdp)), 10)
		dst = append(dst, "\r\n\r\n"...)
		return append(dst, k.sdp...)
	}
	return append(dst, "Content-Length: 0\r\n\r\n"...)
}

func appendHeader(dst []byte, name string, v []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, v...)
	return append(dst, "\r\n"...)
}

// appendSDP appends the fixed SDP answer (RFC 4566) for a socket on addr.
func appendSDP(dst []byte, addr netip.Addr) []byte {
	ipv := " IP4 "
	if addr.Is6() {
		ipv = " IP6 "
	}
	ip := addr.String()
	dst = append(dst, "v=0\r\no=sipecho 1 1 IN"...)
	dst = append(dst, ipv...)
	dst = append(dst, ip...)
	dst = append(dst, "\r\ns=-\r\nc=IN"...)
	dst = append(dst, ipv...)
	dst = append(dst, ip...)
	dst = append(dst, "\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"...)
	return append(dst, "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"...)
}

const hexDigits = "0123456789abcdef"

func appendHex32(dst []byte, v uint32) []byte {
	for s := 28; s >= 0; s -= 4 {
		dst = append(dst, hexDigits[v>>uint(s)&0xf])
	}
	return dst
}

// fnv32 is FNV-1a over b: a fixed hash, so every sipecho derives the same
// To tag for the same Call-ID.
func fnv32(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// isTransient reports errors a UDP read may return because of an earlier
// send (ICMP errors queued on the socket), not because the socket broke.
func isTransient(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}
