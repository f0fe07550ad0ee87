package parser

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

var headerNames = [numHeaderIDs]string{
	HdrOther:              "",
	HdrVia:                "Via",
	HdrRoute:              "Route",
	HdrRecordRoute:        "Record-Route",
	HdrContact:            "Contact",
	HdrCallID:             "Call-ID",
	HdrCSeq:               "CSeq",
	HdrFrom:               "From",
	HdrTo:                 "To",
	HdrMaxForwards:        "Max-Forwards",
	HdrContentLength:      "Content-Length",
	HdrContentType:        "Content-Type",
	HdrContentEncoding:    "Content-Encoding",
	HdrSupported:          "Supported",
	HdrSubject:            "Subject",
	HdrReferTo:            "Refer-To",
	HdrReferredBy:         "Referred-By",
	HdrSessionExpires:     "Session-Expires",
	HdrEvent:              "Event",
	HdrAllowEvents:        "Allow-Events",
	HdrIdentity:           "Identity",
	HdrRequire:            "Require",
	HdrProxyRequire:       "Proxy-Require",
	HdrAuthorization:      "Authorization",
	HdrProxyAuthorization: "Proxy-Authorization",
	HdrWWWAuthenticate:    "WWW-Authenticate",
	HdrProxyAuthenticate:  "Proxy-Authenticate",
	HdrExpires:            "Expires",
	HdrMinExpires:         "Min-Expires",
	HdrAllow:              "Allow",
	HdrAccept:             "Accept",
	HdrUserAgent:          "User-Agent",
	HdrServer:             "Server",
	HdrDate:               "Date",
	HdrPath:               "Path",
	HdrUnsupported:        "Unsupported",
	HdrTimestamp:          "Timestamp",
	HdrRSeq:               "RSeq",
	HdrRAck:               "RAck",
	HdrPAssertedIdentity:  "P-Asserted-Identity",
	HdrPrivacy:            "Privacy",
	HdrReason:             "Reason",
	HdrAcceptContact:      "Accept-Contact",
	HdrRejectContact:      "Reject-Contact",
	HdrRequestDisposition: "Request-Disposition",
}

// String returns the canonical long name of the header, "" for HdrOther.
func (id HeaderID) String() string {
	if id < numHeaderIDs {
		return headerNames[id]
	}
	return ""
}

// compactHeaders maps the one-letter compact forms (RFC 3261 §7.3.3, RFC 3265,
// RFC 3515, RFC 3892, RFC 4028, RFC 4474, RFC 3841) to their IDs, both cases.
var compactHeaders = func() (t [256]HeaderID) {
	for c, id := range map[byte]HeaderID{
		'i': HdrCallID, 'm': HdrContact, 'e': HdrContentEncoding, 'l': HdrContentLength,
		'c': HdrContentType, 'f': HdrFrom, 's': HdrSubject, 'k': HdrSupported, 't': HdrTo,
		'v': HdrVia, 'o': HdrEvent, 'u': HdrAllowEvents, 'r': HdrReferTo, 'b': HdrReferredBy,
		'x': HdrSessionExpires, 'y': HdrIdentity, 'a': HdrAcceptContact, 'j': HdrRejectContact,
		'd': HdrRequestDisposition,
	} {
		t[c] = id
		t[c-'a'+'A'] = id
	}
	return t
}()

// headerHash spreads the known names over 256 slots without collision
// (TestLookupHeader checks every name): length, first, middle and last
// byte, case-folded.
func headerHash(name []byte) uint8 {
	n := len(name)
	return uint8(n*13 + int(lower[name[0]])<<3 + int(lower[name[n-1]]) + int(lower[name[n/2]]))
}

// headerSlots maps headerHash of a long name to its candidate ID.
var headerSlots = func() (t [256]HeaderID) {
	for id := HdrVia; id < numHeaderIDs; id++ {
		h := headerHash([]byte(headerNames[id]))
		if t[h] != HdrOther {
			panic("parser: header hash collision: " + headerNames[id])
		}
		t[h] = id
	}
	return t
}()

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
	id := headerSlots[headerHash(name)]
	if id != HdrOther && foldEq(name, headerNames[id]) {
		return id
	}
	return HdrOther
}
