package balance

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// maxDomainLen is the longest domain name DNS allows (RFC 1035 §2.3.4), in
// presentation form without the trailing dot.
const maxDomainLen = 253

// ErrDomainMap is wrapped by NewDomainMap's errors.
var ErrDomainMap = errors.New("invalid domain2proxy entry")

// DomainMap is the Dispatcher's domain2proxy: where to send a request for a
// domain that is not served here. Keys are exact domains ("example.com"),
// wildcards ("*.example.com": the domain itself and every subdomain) and "*"
// (every other domain). A DomainMap is immutable and safe for concurrent
// use; the zero value matches nothing.
type DomainMap struct {
	exact    map[string]string      // lower-case domain → proxy
	wild     map[string]string      // lower-case suffix of "*.suffix" → proxy
	wildLen  [maxDomainLen + 1]bool // wildLen[n]: some suffix in wild is n bytes long
	fallback string
	hasFall  bool
}

// NewDomainMap builds a DomainMap from configuration. Keys are matched
// without regard to case or a trailing dot. Each value is a proxy address,
// "host[:port]" or "scheme://host:port" with scheme udp, tcp or tls; the
// value is returned by Lookup as written. Two keys that differ only in case
// or trailing dot are an error, as are empty keys, "*" inside a key other
// than a leading "*.", and values that do not parse.
func NewDomainMap(m map[string]string) (*DomainMap, error) {
	d := &DomainMap{exact: make(map[string]string), wild: make(map[string]string)}
	for k, v := range m {
		if err := checkProxy(v); err != nil {
			return nil, fmt.Errorf("%w: %q: proxy %q: %v", ErrDomainMap, k, v, err)
		}
		if k == "*" {
			d.fallback, d.hasFall = v, true
			continue
		}
		target, name := d.exact, strings.ToLower(k)
		rest, wild := strings.CutPrefix(name, "*.")
		if wild {
			target, name = d.wild, rest
		}
		name = strings.TrimSuffix(name, ".")
		if name == "" || len(name) > maxDomainLen || strings.ContainsAny(name, "* \t/") ||
			strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
			return nil, fmt.Errorf("%w: %q: not a domain or *.domain", ErrDomainMap, k)
		}
		if _, dup := target[name]; dup {
			return nil, fmt.Errorf("%w: %q: listed twice", ErrDomainMap, k)
		}
		target[name] = v
		if wild {
			d.wildLen[len(name)] = true
		}
	}
	return d, nil
}

// Lookup returns the proxy for domain (a URI's host part, without port):
// the exact entry if there is one, else the "*.suffix" entry with the
// longest suffix that is domain itself or one of its parent domains, else
// the "*" entry. Case and a trailing dot are ignored. It does not allocate.
func (d *DomainMap) Lookup(domain []byte) (proxy string, ok bool) {
	if d == nil {
		return "", false
	}
	if n := len(domain); n > 0 && domain[n-1] == '.' {
		domain = domain[:n-1]
	}
	if len(domain) == 0 || len(domain) > maxDomainLen {
		return d.fallback, d.hasFall
	}
	var buf [maxDomainLen]byte
	name := buf[:len(domain)]
	for i, c := range domain {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		name[i] = c
	}
	if p, ok := d.exact[string(name)]; ok {
		return p, true
	}
	if len(d.wild) > 0 {
		// Suffixes from the longest (name itself) to the shortest label.
		for off := 0; off < len(name); {
			if d.wildLen[len(name)-off] {
				if p, ok := d.wild[string(name[off:])]; ok {
					return p, true
				}
			}
			dot := bytes.IndexByte(name[off:], '.')
			if dot < 0 {
				break
			}
			off += dot + 1
		}
	}
	return d.fallback, d.hasFall
}

// Len returns the number of entries, "*" included.
func (d *DomainMap) Len() int {
	if d == nil {
		return 0
	}
	n := len(d.exact) + len(d.wild)
	if d.hasFall {
		n++
	}
	return n
}

// checkProxy validates a domain2proxy value: "host[:port]" or
// "udp|tcp|tls://host:port", host being a name or an IP literal.
func checkProxy(v string) error {
	rest := v
	if scheme, after, ok := strings.Cut(v, "://"); ok {
		if _, err := ParseTransport(scheme); err != nil || scheme == "" {
			return fmt.Errorf("unknown scheme %q", scheme)
		}
		rest = after
	}
	if rest == "" {
		return errors.New("empty address")
	}
	host, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("bad port %q", port)
		}
	} else if strings.Count(rest, ":") > 1 {
		if _, err := netip.ParseAddr(strings.Trim(rest, "[]")); err != nil {
			return err
		}
		return nil
	} else if strings.Contains(rest, ":") {
		return err
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if _, err := canonicalName(host); err != nil {
		return err
	}
	return nil
}
