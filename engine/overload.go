package engine

import (
	"bytes"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
)

// Affinity beyond the Call-ID, and RFC 7339 overload control: the engine's
// side of balance's admission (balance/overload.go).

// ocOffer is what siplb adds to the Via of a request to a pool member whose
// pool has overload control on (RFC 7339 §5.1): it takes part, with the
// loss algorithm, the one every implementation supports (§6).
const ocOffer = `;oc;oc-algo="loss"`

// maxReplacesCallID bounds the Call-ID siplb takes from a Refer-To's
// escaped Replaces: a longer one leaves the REFER on its own Call-ID.
const maxReplacesCallID = 256

// replacedCallID returns the Call-ID of the dialog a new request names as
// the one it replaces or joins: an INVITE's Replaces (RFC 3891 §6.1) or
// Join (RFC 3911 §7.1) header, a REFER's Refer-To URI header Replaces
// (RFC 3891 §5, URL-escaped, decoded into s.repl); nil when it names none.
// The slice is valid until the next message processed with s.
func replacedCallID(s *Scratch, m *parser.Message) []byte {
	switch m.Method() {
	case parser.INVITE:
		// One walk over the headers for both names: the first Replaces
		// wins, else the first Join (neither has a compact form).
		var join []byte
		for i := m.FirstOther(); i < m.NumHeaders(); i++ {
			id, name, v := m.HeaderAt(i)
			if id != parser.HdrOther {
				continue
			}
			switch {
			case len(name) == len("Replaces") && hasPrefixFold(name, "replaces"):
				return headerCallID(v)
			case join == nil && len(name) == len("Join") && hasPrefixFold(name, "join"):
				join = v
			}
		}
		if join != nil {
			return headerCallID(join)
		}
	case parser.REFER:
		if v := m.Header(parser.HdrReferTo); v != nil {
			return referReplaces(s, v)
		}
	}
	return nil
}

// headerCallID is the callid of a Replaces or Join value: up to the first
// ';', blanks trimmed; nil when empty.
func headerCallID(v []byte) []byte {
	if i := bytes.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = bytes.Trim(v, " \t\r\n")
	if len(v) == 0 {
		return nil
	}
	return v
}

// referReplaces finds the Replaces header of the Refer-To URI v
// ("<sip:c@h?Replaces=id%40h%3Bto-tag%3D1&...>") and decodes its callid
// into s.repl.
func referReplaces(s *Scratch, v []byte) []byte {
	if i := bytes.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := bytes.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	q := bytes.IndexByte(v, '?')
	if q < 0 {
		return nil
	}
	for hs := v[q+1:]; len(hs) > 0; {
		h := hs
		if i := bytes.IndexByte(hs, '&'); i >= 0 {
			h, hs = hs[:i], hs[i+1:]
		} else {
			hs = nil
		}
		if len(h) > len("replaces=") && hasPrefixFold(h, "replaces=") {
			return unescapeCallID(s.repl[:0], h[len("replaces="):])
		}
	}
	return nil
}

// unescapeCallID decodes %XX escapes of v into dst up to the first
// (decoded) ';', blanks trimmed; nil for a bad escape, an empty callid or
// one over maxReplacesCallID.
func unescapeCallID(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '%' {
			if i+2 >= len(v) {
				return nil
			}
			x, y := hexValFold[v[i+1]], hexValFold[v[i+2]]
			if x|y > 15 {
				return nil
			}
			c = x<<4 | y
			i += 2
		}
		if c == ';' {
			break
		}
		if len(dst) == maxReplacesCallID {
			return nil
		}
		dst = append(dst, c)
	}
	dst = bytes.Trim(dst, " \t")
	if len(dst) == 0 {
		return nil
	}
	return dst
}

// ocReport is the overload report a member's response carried in siplb's
// Via (RFC 7339 §5.2), parsed by recordOverload.
type ocReport struct {
	r  balance.OverloadReport
	ok bool
}

// parseOCReport reads oc, oc-algo, oc-validity and oc-seq from the
// parameters of siplb's Via in a response. A report needs an oc value and
// an oc-seq (a bare oc is siplb's offer); oc-algo, when there, must be loss (the only one siplb
// offers); oc-validity defaults to balance.DefaultOverloadValidity.
func parseOCReport(params []byte) ocReport {
	var r ocReport
	var hasOC, hasSeq bool
	r.r.Validity = balance.DefaultOverloadValidity
	if !hasOCSeq(params) {
		// No oc-seq, so no report (a bare oc is siplb's own offer, which
		// most members echo unchanged): the walk below would find none.
		return r
	}
	for p := params; len(p) > 0; {
		var name, val []byte
		name, val, p = nextParam(p)
		switch {
		case equalFold(name, []byte("oc")) && val == nil:
			// siplb's own offer, left as it was by a member that appended
			// its report rather than filling it in.
		case equalFold(name, []byte("oc")):
			n, ok := parseDecimal(val, 100)
			if !ok {
				return ocReport{}
			}
			r.r.Reduction, hasOC = int(n), true
		case equalFold(name, []byte("oc-validity")):
			n, ok := parseDecimal(val, 1<<31-1)
			if !ok {
				return ocReport{}
			}
			r.r.Validity = int(n)
		case equalFold(name, []byte("oc-seq")):
			seq, ok := balance.ParseOCSeq(val)
			if !ok {
				return ocReport{}
			}
			r.r.Seq, hasSeq = seq, true
		case equalFold(name, []byte("oc-algo")):
			if !equalFold(bytes.Trim(val, `"`), []byte("loss")) {
				return ocReport{}
			}
		}
	}
	r.ok = hasOC && hasSeq
	return r
}

// hasOCSeq reports whether p holds "oc-seq", ignoring ASCII case: every
// report carries one, and siplb's offer (ocOffer) none. It looks for the
// '-', which no branch of siplb's holds (hex digits and the cookie), so the
// Via's longest parameter is skipped in one search.
func hasOCSeq(p []byte) bool {
	for {
		i := bytes.IndexByte(p, '-')
		if i < 0 {
			return false
		}
		if i >= 2 && i+4 <= len(p) && p[i-2]|0x20 == 'o' && p[i-1]|0x20 == 'c' &&
			p[i+1]|0x20 == 's' && p[i+2]|0x20 == 'e' && p[i+3]|0x20 == 'q' {
			return true
		}
		p = p[i+1:]
	}
}

// nextParam splits the first ";name[=value]" off a Via's parameter list,
// blanks trimmed; a quoted value may hold ';'.
func nextParam(p []byte) (name, val, rest []byte) {
	p = bytes.TrimLeft(p, " \t;")
	end := len(p)
	quoted := false
	eq := -1
	for i, c := range p {
		if c == '"' {
			quoted = !quoted
		} else if c == '=' && eq < 0 && !quoted {
			eq = i
		} else if c == ';' && !quoted {
			end = i
			break
		}
	}
	kv := p[:end]
	if eq >= 0 && eq < end {
		name, val = kv[:eq], bytes.Trim(kv[eq+1:], " \t")
	} else {
		name = kv
	}
	return bytes.Trim(name, " \t"), val, p[end:]
}

// parseDecimal parses 1*DIGIT up to max.
func parseDecimal(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, v <= max
}

// recordOverload records the overload report of a response from be that
// answers a request siplb sent to it (s.toMember: its Via passed the MAC,
// and response kept its parameters in s.ocVia), when be's pool has
// overload control on.
func (f *Forwarder) recordOverload(s *Scratch, t *balance.Table, be *balance.Backend) {
	if p := t.Pool(balance.PoolID(be.Pool)); p == nil || !p.OverloadControl() {
		return // the report is not even parsed
	}
	oc := parseOCReport(s.ocVia)
	if !oc.ok {
		return
	}
	if be.Overload().Report(oc.r, f.now()) {
		s.Counters.OverloadReports.Add(1)
	}
}
