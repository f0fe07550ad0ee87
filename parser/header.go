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

// maxHeaderName is the longest known header name; longer names are HdrOther.
const maxHeaderName = 20

// LookupHeader returns the ID of the header named name, compared
// case-insensitively (RFC 3261 §7.3.1), compact forms included, or HdrOther.
// It does not allocate.
func LookupHeader(name []byte) HeaderID {
	if len(name) == 1 {
		return compactHeaders[name[0]]
	}
	if len(name) > maxHeaderName || len(name) == 0 {
		return HdrOther
	}
	var low [maxHeaderName]byte
	for i, c := range name {
		low[i] = lower[c]
	}
	switch string(low[:len(name)]) {
	case "via":
		return HdrVia
	case "route":
		return HdrRoute
	case "record-route":
		return HdrRecordRoute
	case "contact":
		return HdrContact
	case "call-id":
		return HdrCallID
	case "cseq":
		return HdrCSeq
	case "from":
		return HdrFrom
	case "to":
		return HdrTo
	case "max-forwards":
		return HdrMaxForwards
	case "content-length":
		return HdrContentLength
	case "content-type":
		return HdrContentType
	case "content-encoding":
		return HdrContentEncoding
	case "supported":
		return HdrSupported
	case "subject":
		return HdrSubject
	case "refer-to":
		return HdrReferTo
	case "referred-by":
		return HdrReferredBy
	case "session-expires":
		return HdrSessionExpires
	case "event":
		return HdrEvent
	case "allow-events":
		return HdrAllowEvents
	case "identity":
		return HdrIdentity
	case "require":
		return HdrRequire
	case "proxy-require":
		return HdrProxyRequire
	case "authorization":
		return HdrAuthorization
	case "proxy-authorization":
		return HdrProxyAuthorization
	case "www-authenticate":
		return HdrWWWAuthenticate
	case "proxy-authenticate":
		return HdrProxyAuthenticate
	case "expires":
		return HdrExpires
	case "min-expires":
		return HdrMinExpires
	case "allow":
		return HdrAllow
	case "accept":
		return HdrAccept
	case "user-agent":
		return HdrUserAgent
	case "server":
		return HdrServer
	case "date":
		return HdrDate
	case "path":
		return HdrPath
	case "unsupported":
		return HdrUnsupported
	case "timestamp":
		return HdrTimestamp
	case "rseq":
		return HdrRSeq
	case "rack":
		return HdrRAck
	case "p-asserted-identity":
		return HdrPAssertedIdentity
	case "privacy":
		return HdrPrivacy
	case "reason":
		return HdrReason
	case "accept-contact":
		return HdrAcceptContact
	case "reject-contact":
		return HdrRejectContact
	case "request-disposition":
		return HdrRequestDisposition
	}
	return HdrOther
}
