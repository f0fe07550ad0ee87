package parser

import "strconv"

// Error is a defect in a received message and the stateless reply it earns:
// the engine answers a request with "SIP/2.0 {Status} {Reason}" and drops a
// response. Values are the package's preallocated sentinels; compare them
// with errors.Is and never modify them.
type Error struct {
	Status int    // SIP status to send: 400, 416, 420, 482, 483, 503, 505, 513
	Reason string // reason phrase naming the defect, e.g. "Missing Call-ID"
}

// Error returns the status and the reason, as in "400 Missing Call-ID".
func (e *Error) Error() string { return strconv.Itoa(e.Status) + " " + e.Reason }

// The sentinels returned by Parse, Frame, ParseURI and the accessors.
var (
	ErrMissingCallID          = &Error{Status: 400, Reason: "Missing Call-ID"}
	ErrMissingCSeq            = &Error{Status: 400, Reason: "Missing CSeq"}
	ErrMalformedCSeq          = &Error{Status: 400, Reason: "Malformed CSeq"}
	ErrMissingVia             = &Error{Status: 400, Reason: "Missing Via"}
	ErrMalformedVia           = &Error{Status: 400, Reason: "Malformed Via"}
	ErrMissingFrom            = &Error{Status: 400, Reason: "Missing From"}
	ErrMalformedFrom          = &Error{Status: 400, Reason: "Malformed From"}
	ErrMissingTo              = &Error{Status: 400, Reason: "Missing To"}
	ErrMalformedTo            = &Error{Status: 400, Reason: "Malformed To"}
	ErrMalformedMaxForwards   = &Error{Status: 400, Reason: "Malformed Max-Forwards"}
	ErrMalformedContentLength = &Error{Status: 400, Reason: "Malformed Content-Length"}
	ErrMalformedRequestLine   = &Error{Status: 400, Reason: "Malformed Request-Line"}
	ErrMalformedRequestURI    = &Error{Status: 400, Reason: "Malformed Request-URI"}
	ErrMalformedStatusLine    = &Error{Status: 400, Reason: "Malformed Status-Line"}
	ErrVersionNotSupported    = &Error{Status: 505, Reason: "Version Not Supported"}
	ErrTooLarge               = &Error{Status: 513, Reason: "Message Too Large"}
	ErrMissingContentLength   = &Error{Status: 400, Reason: "Missing Content-Length"}
	ErrBodyTruncated          = &Error{Status: 400, Reason: "Body Shorter Than Content-Length"}
	ErrMalformedHeader        = &Error{Status: 400, Reason: "Malformed Header"}
	ErrCSeqMethodMismatch     = &Error{Status: 400, Reason: "CSeq Method Mismatch"}
	ErrMalformedContact       = &Error{Status: 400, Reason: "Malformed Contact"}
	ErrMalformedRoute         = &Error{Status: 400, Reason: "Malformed Route"}
	ErrMalformedRecordRoute   = &Error{Status: 400, Reason: "Malformed Record-Route"}
	ErrMalformedCallID        = &Error{Status: 400, Reason: "Malformed Call-ID"}
	ErrMalformedDate          = &Error{Status: 400, Reason: "Malformed Date"}
	ErrDuplicateHeader        = &Error{Status: 400, Reason: "Duplicate Single-Value Header"}
	ErrMalformedURI           = &Error{Status: 400, Reason: "Malformed URI"}
	ErrWildcardContact        = &Error{Status: 400, Reason: "Wildcard Contact"}
	ErrNoSuchValue            = &Error{Status: 500, Reason: "No Such Header Value"}
	ErrUnsupportedURIScheme   = &Error{Status: 416, Reason: "Unsupported URI Scheme"}
	ErrBadExtension           = &Error{Status: 420, Reason: "Bad Extension"}
)

// The sentinels of the proxy's own decisions (RFC 3261 §16.3, §16.6, §26.2):
// no parser returns them, but a stateless proxy answers them the same way.
var (
	ErrBadRequest              = &Error{Status: 400, Reason: "Bad Request"}         // a defect no other sentinel names
	ErrSIPSRequiresTLS         = &Error{Status: 416, Reason: "SIPS Requires TLS"}   // a sips: Request-URI that did not arrive over TLS (§26.2)
	ErrLoopDetected            = &Error{Status: 482, Reason: "Loop Detected"}       // §16.3 step 4
	ErrTooManyHops             = &Error{Status: 483, Reason: "Too Many Hops"}       // Max-Forwards 0 (§16.3 step 3)
	ErrServiceUnavailable      = &Error{Status: 503, Reason: "Service Unavailable"} // no backend to take the request
	ErrDestinationUnresolvable = &Error{Status: 503, Reason: "Destination Unresolvable"}
)

// StatusOK is not a defect: it is the 200 a proxy answers an OPTIONS
// addressed to itself with (RFC 3261 §11), a value of the same type so that
// every stateless reply takes one path.
var StatusOK = &Error{Status: 200, Reason: "OK"}
