package sipwire

import "bytes"

// Tag returns the tag parameter of a From or To value (RFC 3261 §19.3), or
// nil when it has none. The result is a sub-slice of v.
func Tag(v []byte) []byte {
	params := v
	if i := bytes.IndexByte(v, '>'); i >= 0 {
		params = v[i+1:]
	} else if i := bytes.IndexByte(v, ';'); i >= 0 {
		// addr-spec form: parameters after the URI belong to the header
		// (RFC 3261 §20.10), so the first ';' starts them.
		params = v[i:]
	} else {
		return nil
	}
	for len(params) > 0 {
		i := bytes.IndexByte(params, ';')
		if i < 0 {
			return nil
		}
		params = params[i+1:]
		p := trim(params)
		if len(p) >= 4 && EqualFold(p[:4], "tag=") {
			t := p[4:]
			if j := bytes.IndexAny(t, "; \t,"); j >= 0 {
				t = t[:j]
			}
			return t
		}
	}
	return nil
}

// URI returns the URI of a name-addr or addr-spec value (Contact, Route,
// Record-Route): what lies between '<' and '>', or, without brackets, the
// value up to its first ';' or ','. The result is a sub-slice of v.
func URI(v []byte) []byte {
	if i := bytes.IndexByte(v, '<'); i >= 0 {
		rest := v[i+1:]
		if j := bytes.IndexByte(rest, '>'); j >= 0 {
			return rest[:j]
		}
		return rest
	}
	if j := bytes.IndexAny(v, ";,"); j >= 0 {
		return trim(v[:j])
	}
	return trim(v)
}

// HostPort returns the hostport part of a sip or sips URI: after the scheme
// and userinfo, before parameters or headers. The result is a sub-slice of
// uri.
func HostPort(uri []byte) []byte {
	if i := bytes.IndexByte(uri, ':'); i >= 0 && i <= 4 {
		uri = uri[i+1:]
	}
	if i := bytes.IndexByte(uri, '@'); i >= 0 {
		uri = uri[i+1:]
	}
	if j := bytes.IndexAny(uri, ";?>"); j >= 0 {
		uri = uri[:j]
	}
	return uri
}

// SplitList appends to dst the comma-separated elements of a header value
// (RFC 3261 §7.3.1), ignoring commas inside quotes and angle brackets, and
// returns the extended slice. Elements are trimmed sub-slices of v.
func SplitList(dst [][]byte, v []byte) [][]byte {
	start, depth, quoted := 0, 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			if depth > 0 {
				depth--
			}
		case c == ',' && depth == 0:
			if e := trim(v[start:i]); len(e) > 0 {
				dst = append(dst, e)
			}
			start = i + 1
		}
	}
	if e := trim(v[start:]); len(e) > 0 {
		dst = append(dst, e)
	}
	return dst
}
