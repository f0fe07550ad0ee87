package engine

import "github.com/siplb/siplb/parser"

// appendRawReply builds a stateless response to a request that did not parse,
// from its raw header lines: the Via, From, To, Call-ID and CSeq lines are
// copied as they are (RFC 3261 §8.2.6.2), a To tag is added when the To line
// has none, and nothing else is trusted. It reports false when the request
// has no Via line: such an answer could not be matched by any client and
// would only serve a reflection attack.
func appendRawReply(dst, req []byte, status int, reason string, toTag []byte) ([]byte, bool) {
	start := len(dst)
	dst = append(dst, "SIP/2.0 "...)
	dst = appendUint(dst, uint64(status))
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	dst = append(dst, "\r\n"...)
	haveVia := false
	// Lines may end in CRLF, LF or a bare CR, mixed: a message the parser
	// refused for that still gets every Via, From, To, Call-ID and CSeq back.
	_, i := rawLine(req, 0) // the request line
	for i < len(req) {
		var line []byte
		line, i = rawLine(req, i)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a folded continuation: the lines we copy are taken whole only when unfolded
		}
		colon := 0
		for colon < len(line) && line[colon] != ':' {
			colon++
		}
		if colon == len(line) {
			continue
		}
		name := line[:colon]
		for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
			name = name[:len(name)-1]
		}
		switch parser.LookupHeader(name) {
		case parser.HdrVia:
			haveVia = true
		case parser.HdrCallID, parser.HdrFrom, parser.HdrCSeq:
		case parser.HdrTo:
			dst = append(dst, line...)
			if toTag != nil && !hasToTag(line[colon+1:]) {
				dst = append(dst, ";tag="...)
				dst = append(dst, toTag...)
			}
			dst = append(dst, "\r\n"...)
			continue
		default:
			continue
		}
		dst = append(dst, line...)
		dst = append(dst, "\r\n"...)
	}
	if !haveVia {
		return dst[:start], false
	}
	dst = append(dst, "Server: siplb\r\nContent-Length: 0\r\n\r\n"...)
	return dst, true
}

// rawLine returns the line of b starting at i, without its end (CRLF, LF
// or a bare CR), and where the next line starts.
func rawLine(b []byte, i int) ([]byte, int) {
	end := i
	for end < len(b) && b[end] != '\n' && b[end] != '\r' {
		end++
	}
	next := end + 1
	if end < len(b) && b[end] == '\r' && next < len(b) && b[next] == '\n' {
		next++
	}
	return b[i:end], min(next, len(b))
}

// hasToTag reports whether a To value carries a tag parameter outside its
// <...> part.
func hasToTag(v []byte) bool {
	depth := 0
	quoted := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted:
			if c == '\\' {
				i++
			} else if c == '"' {
				quoted = false
			}
		case c == '"':
			quoted = true
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ';' && depth == 0:
			if hasPrefixFold(v[i+1:], "tag=") {
				return true
			}
		}
	}
	return false
}
