package parser

import "encoding/binary"

// HeaderID names a header field the parser knows. HdrOther is every other
// header; its name is in Message.HeaderAt.
type HeaderID uint8

// The known headers. Compact forms (RFC 3261 §7.3.3 and the RFCs that define
// them) map to the same IDs as the long forms.
const (
	HdrOther HeaderID = iota
	HdrVia
	HdrRoute
	HdrRecordRoute
	HdrContact
	HdrCallID
	HdrCSeq
	HdrFrom
	HdrTo
	HdrMaxForwards
	HdrContentLength
	HdrContentType
	HdrContentEncoding
	HdrSupported
	HdrSubject
	HdrReferTo
	HdrReferredBy
	HdrSessionExpires
	HdrEvent
	HdrAllowEvents
	HdrIdentity
	HdrRequire
	HdrProxyRequire
	HdrAuthorization
	HdrProxyAuthorization
	HdrWWWAuthenticate
	HdrProxyAuthenticate
	HdrExpires
	HdrMinExpires
	HdrAllow
	HdrAccept
	HdrUserAgent
	HdrServer
	HdrDate
	HdrPath
	HdrUnsupported
	HdrTimestamp
	HdrRSeq
	HdrRAck
	HdrPAssertedIdentity
	HdrPrivacy
	HdrReason
	HdrAcceptContact
	HdrRejectContact
	HdrRequestDisposition

	numHeaderIDs
)

// String returns the canonical long name of the header, "" for HdrOther.
func (id HeaderID) String() string {
	if id < numHeaderIDs {
		return headerNames[id]
	}
	return ""
}

// headerHash spreads the known names over 256 slots without collision
// (TestLookupHeader checks every name): length, first, middle and last
// byte, case-folded.
func headerHash(name []byte) uint8 {
	n := len(name)
	return uint8(n*13 + int(lower[name[0]])<<3 + int(lower[name[n-1]]) + int(lower[name[n/2]]))
}

// LookupHeader returns the ID of the header named name, compared
// case-insensitively (RFC 3261 §7.3.1), compact forms included, or HdrOther.
// It does not allocate.
func LookupHeader(name []byte) HeaderID {
	switch len(name) {
	case 0:
		return HdrOther
	case 1:
		return compactHeaders[name[0]]
	}
	// The canonical spelling is by far the most common one on the wire: an
	// exact comparison settles it before the case-folded one.
	id := headerSlots[headerHash(name)]
	if string(name) == headerNames[id] || equalFold(name, lowerNames[id]) {
		return id
	}
	return HdrOther
}

// knownName matches the header name at b[p:] in its canonical spelling
// followed directly by ":", or a compact form followed by ":", for the
// headers a proxy meets most. It returns the ID and the end of the name, or
// nameEnd 0 when the caller must scan the name and use LookupHeader. A
// match on a case-sensitive exact spelling is always right: header names
// compare without regard to case (RFC 3261 §7.3.1) but are written as
// the RFCs spell them by nearly every implementation.
func knownName(b []byte, p int) (id HeaderID, nameEnd int) {
	r := b[p:]
	if len(r) < 16 {
		return HdrOther, 0
	}
	if r[1] == ':' {
		if id := compactHeaders[r[0]]; id != HdrOther {
			return id, p + 1
		}
		return HdrOther, 0
	}
	// One switch on the first four bytes, then the rest of the name.
	switch binary.LittleEndian.Uint32(r) {
	case w4Via:
		return HdrVia, p + 3
	case w4From:
		if r[4] == ':' {
			return HdrFrom, p + 4
		}
	case w4CSeq:
		if r[4] == ':' {
			return HdrCSeq, p + 4
		}
	case w4Call:
		if string(r[4:8]) == "-ID:" {
			return HdrCallID, p + 7
		}
	case w4Cont:
		switch {
		case string(r[4:8]) == "act:":
			return HdrContact, p + 7
		case string(r[4:8]) == "ent-":
			if string(r[8:15]) == "Length:" {
				return HdrContentLength, p + 14
			}
			if string(r[8:13]) == "Type:" {
				return HdrContentType, p + 12
			}
		}
	case w4Max:
		if string(r[4:13]) == "Forwards:" {
			return HdrMaxForwards, p + 12
		}
	case w4Rout:
		if string(r[4:6]) == "e:" {
			return HdrRoute, p + 5
		}
	case w4Reco:
		if string(r[4:13]) == "rd-Route:" {
			return HdrRecordRoute, p + 12
		}
	case w4Allo:
		if string(r[4:6]) == "w:" {
			return HdrAllow, p + 5
		}
	case w4Supp:
		if string(r[4:10]) == "orted:" {
			return HdrSupported, p + 9
		}
	case w4User:
		if string(r[4:11]) == "-Agent:" {
			return HdrUserAgent, p + 10
		}
	case w4Expi:
		if string(r[4:8]) == "res:" {
			return HdrExpires, p + 7
		}
	default:
		if string(r[:3]) == "To:" {
			return HdrTo, p + 2
		}
	}
	return HdrOther, 0
}

// The first four bytes of the names knownName matches, as little-endian words.
const (
	w4Via  = 'V' | 'i'<<8 | 'a'<<16 | ':'<<24
	w4From = 'F' | 'r'<<8 | 'o'<<16 | 'm'<<24
	w4CSeq = 'C' | 'S'<<8 | 'e'<<16 | 'q'<<24
	w4Call = 'C' | 'a'<<8 | 'l'<<16 | 'l'<<24
	w4Cont = 'C' | 'o'<<8 | 'n'<<16 | 't'<<24
	w4Max  = 'M' | 'a'<<8 | 'x'<<16 | '-'<<24
	w4Rout = 'R' | 'o'<<8 | 'u'<<16 | 't'<<24
	w4Reco = 'R' | 'e'<<8 | 'c'<<16 | 'o'<<24
	w4Allo = 'A' | 'l'<<8 | 'l'<<16 | 'o'<<24
	w4Supp = 'S' | 'u'<<8 | 'p'<<16 | 'p'<<24
	w4User = 'U' | 's'<<8 | 'e'<<16 | 'r'<<24
	w4Expi = 'E' | 'x'<<8 | 'p'<<16 | 'i'<<24
)

// hasPrefix is bytes.HasPrefix for a constant s, which the compiler turns
// into a length check and a few word compares once it is inlined.
func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}
