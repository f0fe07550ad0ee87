package engine

import (
	"bytes"
	"strings"

	"github.com/siplb/siplb/parser"
)

// RFC 3261 §16.3's request validation beyond what the parser checks: the
// Request-URI scheme (step 2) and Proxy-Require (step 5).

// DefaultURISchemes are the Request-URI schemes siplb routes (§16.3 step 2).
var DefaultURISchemes = []string{"sip", "sips", "tel"}

// lowerAll returns the lower-cased, trimmed, non-empty values of list.
func lowerAll(list []string) [][]byte {
	out := make([][]byte, 0, len(list))
	for _, v := range list {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			out = append(out, []byte(v))
		}
	}
	return out
}

// inFold reports whether v equals one of list, ignoring ASCII case.
func inFold(list [][]byte, v []byte) bool {
	for _, x := range list {
		if equalFold(v, x) {
			return true
		}
	}
	return false
}

// schemeRouted reports whether siplb routes the Request-URI scheme.
func (f *Forwarder) schemeRouted(scheme []byte) bool { return inFold(f.schemes, scheme) }

// unsupportedProxyRequire appends to dst the option tags of every
// Proxy-Require header of m that siplb does not support, comma-separated;
// empty when all are supported (§16.3 step 5).
func (f *Forwarder) unsupportedProxyRequire(dst []byte, m *parser.Message) []byte {
	if m.Header(parser.HdrProxyRequire) == nil {
		return dst
	}
	for i := range m.NumHeaders() {
		id, _, v := m.HeaderAt(i)
		if id != parser.HdrProxyRequire {
			continue
		}
		for len(v) > 0 {
			var tag []byte
			if tag, v = nextTag(v); len(tag) == 0 || inFold(f.proxyRequire, tag) {
				continue
			}
			if len(dst) > 0 {
				dst = append(dst, ", "...)
			}
			dst = append(dst, tag...)
		}
	}
	return dst
}

// hasOptionTag reports whether a header of m with the given id (Supported,
// Require) lists the option tag, ignoring case.
func hasOptionTag(m *parser.Message, id parser.HeaderID, tag string) bool {
	if m.Header(id) == nil {
		return false
	}
	for i := range m.NumHeaders() {
		hid, _, v := m.HeaderAt(i)
		if hid != id {
			continue
		}
		for len(v) > 0 {
			var t []byte
			if t, v = nextTag(v); len(t) == len(tag) && hasPrefixFold(t, tag) {
				return true
			}
		}
	}
	return false
}

// nextTag splits the first option tag off a comma-separated list value.
func nextTag(v []byte) (tag, rest []byte) {
	if j := bytes.IndexByte(v, ','); j >= 0 {
		return trimLWS(v[:j]), v[j+1:]
	}
	return trimLWS(v), nil
}

// trimLWS trims blanks and line folding around v.
func trimLWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t' || v[0] == '\r' || v[0] == '\n') {
		v = v[1:]
	}
	for len(v) > 0 {
		c := v[len(v)-1]
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			break
		}
		v = v[:len(v)-1]
	}
	return v
}

// looksLikeRequestLine reports whether b starts as a SIP request does: a
// method token, a space, then no space before the next one. Anything else
// that failed to parse (digits before "SIP/2.0 200 OK", binary junk) is
// neither a request nor a response and is dropped, never answered.
func looksLikeRequestLine(b []byte) bool {
	i := 0
	for i < len(b) && i < 32 && isTokenChar(b[i]) {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ' ' {
		return false
	}
	// The method is a token of letters (RFC 3261 §25.1 extension-method is
	// a token, but every method in use is alphabetic).
	for _, c := range b[:i] {
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '<' && c != '>' && c != '@' &&
		c != ',' && c != ';' && c != ':' && c != '\\' && c != '"' && c != '/' && c != '[' &&
		c != ']' && c != '?' && c != '=' && c != '{' && c != '}'
}
