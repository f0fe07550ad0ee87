package engine

import (
	"errors"
	"fmt"
	"strings"
)

// originList is a WebSocket leg's allow-list of web origins (RFC 6454), as
// browsers send them in a handshake's Origin header (RFC 6455 §4.1):
// "scheme://host" or "scheme://host:port". Immutable after parseOrigins.
type originList struct {
	exact    []string // whole origins, lower-cased
	suffixes []string // ".example.com" for an entry "*.example.com", lower-cased
}

// Errors of parseOrigins; the configuration names the entry.
var (
	errOriginEmpty   = errors.New("empty origin")
	errOriginForm    = errors.New(`want scheme://host[:port] (http or https, no path) or *.domain`)
	errOriginPattern = errors.New(`a pattern is "*." and a domain, nothing else`)
)

// parseOrigins checks and lower-cases the entries of listen[].origins.
func parseOrigins(list []string) (*originList, error) {
	o := &originList{}
	for i, e := range list {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
			return nil, fmt.Errorf("origins[%d] %q: %w", i, e, errOriginEmpty)
		case strings.HasPrefix(e, "*."):
			d := e[1:] // ".example.com"
			if len(d) < 2 || strings.ContainsAny(d[1:], "*/:@ []") || strings.Contains(d, "..") {
				return nil, fmt.Errorf("origins[%d] %q: %w", i, e, errOriginPattern)
			}
			o.suffixes = append(o.suffixes, d)
		default:
			scheme, rest, ok := strings.Cut(e, "://")
			if !ok || (scheme != "http" && scheme != "https") || rest == "" || strings.ContainsAny(rest, "/?#*@ ") {
				return nil, fmt.Errorf("origins[%d] %q: %w", i, e, errOriginForm)
			}
			o.exact = append(o.exact, e)
		}
	}
	return o, nil
}

// allow reports whether a handshake's Origin header value may open a
// WebSocket: any value when the list is nil; else a listed origin, or one
// whose host is below a listed "*." domain. A handshake without an Origin
// (a client that is not a browser) is allowed only when the list is nil.
func (o *originList) allow(origin string) bool {
	if o == nil {
		return true
	}
	if origin == "" {
		return false
	}
	for _, e := range o.exact {
		if strings.EqualFold(origin, e) {
			return true
		}
	}
	if len(o.suffixes) == 0 {
		return false
	}
	_, host, ok := strings.Cut(origin, "://")
	if !ok {
		return false // "null" (a sandboxed page, a file) and junk
	}
	if strings.HasPrefix(host, "[") {
		return false // an IPv6 literal is below no domain
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	for _, d := range o.suffixes {
		if len(host) > len(d) && strings.EqualFold(host[len(host)-len(d):], d) {
			return true
		}
	}
	return false
}

// CheckOrigins checks a WebSocket leg's origins as NewForwarder does; an
// error starts with the entry ("origins[1] ...").
func CheckOrigins(origins []string) error {
	_, err := parseOrigins(origins)
	return err
}
