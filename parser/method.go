package parser

// Method is a SIP request method known to the parser. Extension methods are
// MethodUnknown; their name is in Message.MethodName.
type Method uint8

// The methods of RFC 3261 and its extensions that a proxy meets.
const (
	MethodUnknown Method = iota
	INVITE
	ACK
	BYE
	CANCEL
	OPTIONS
	REGISTER
	PRACK
	SUBSCRIBE
	NOTIFY
	PUBLISH
	INFO
	REFER
	MESSAGE
	UPDATE
)

var methodNames = [...]string{
	MethodUnknown: "UNKNOWN",
	INVITE:        "INVITE",
	ACK:           "ACK",
	BYE:           "BYE",
	CANCEL:        "CANCEL",
	OPTIONS:       "OPTIONS",
	REGISTER:      "REGISTER",
	PRACK:         "PRACK",
	SUBSCRIBE:     "SUBSCRIBE",
	NOTIFY:        "NOTIFY",
	PUBLISH:       "PUBLISH",
	INFO:          "INFO",
	REFER:         "REFER",
	MESSAGE:       "MESSAGE",
	UPDATE:        "UPDATE",
}

// String returns the method name as written on the wire, "UNKNOWN" for
// MethodUnknown and for values outside the list.
func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "UNKNOWN"
}

// lookupMethod maps a method token to its Method. RFC 3261 §7.1: the method
// is case-sensitive, so "invite" is an extension method.
func lookupMethod(b []byte) Method {
	switch string(b) {
	case "INVITE":
		return INVITE
	case "ACK":
		return ACK
	case "BYE":
		return BYE
	case "CANCEL":
		return CANCEL
	case "OPTIONS":
		return OPTIONS
	case "REGISTER":
		return REGISTER
	case "PRACK":
		return PRACK
	case "SUBSCRIBE":
		return SUBSCRIBE
	case "NOTIFY":
		return NOTIFY
	case "PUBLISH":
		return PUBLISH
	case "INFO":
		return INFO
	case "REFER":
		return REFER
	case "MESSAGE":
		return MESSAGE
	case "UPDATE":
		return UPDATE
	}
	return MethodUnknown
}
