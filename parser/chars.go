package parser

// Byte classes of RFC 3261 §25.1, built once at package initialisation.

// isToken: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
var isToken = class("-.!%*_+`'~")

// isHostChar: hostname / IPv4address characters: alphanum / "-" / "." (and "_",
// which some deployments put in host names).
var isHostChar = class("-._")

// isDigit: DIGIT
var isDigit = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	return t
}()

// isWS: LWS characters once folded lines are joined: SP / HTAB / CR / LF.
var isWS = func() (t [256]bool) {
	t[' '], t['\t'], t['\r'], t['\n'] = true, true, true, true
	return t
}()

// lower maps ASCII upper case to lower case and every other byte to itself.
var lower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c) + 'a' - 'A'
	}
	return t
}()

// class returns the alphanumerics plus extra.
func class(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

// parseUint parses 1*DIGIT with no sign or space, rejecting values over max
// (max must stay below 1<<60 so that the running value cannot wrap).
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if !isDigit[c] {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > max {
			return 0, false
		}
	}
	return n, true
}

// trimWS removes LWS (SP, HTAB, CR, LF) from both ends of b[i:j].
func trimWS(b []byte, i, j int) (int, int) {
	for i < j && isWS[b[i]] {
		i++
	}
	for j > i && isWS[b[j-1]] {
		j--
	}
	return i, j
}

// skipWS returns the first index at or after i, before end, that is not LWS.
func skipWS(b []byte, i, end int) int {
	for i < end && isWS[b[i]] {
		i++
	}
	return i
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower[b[i]] != s[i] {
			return false
		}
	}
	return true
}

// skipQuoted returns the index just past the closing quote of the
// quoted-string whose opening quote is at b[i], or -1 when it is not closed
// before end. RFC 3261 §25.1: quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F).
func skipQuoted(b []byte, i, end int) int {
	for i++; i < end; i++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
	return -1
}

// isAlpha: ALPHA
var isAlpha = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	return t
}()

// isSchemeChar: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1)
var isSchemeChar = class("+-.")

// isParamValue: the characters of gen-value = token / host / quoted-string
// outside quotes (host adds ":" "[" "]" for IPv6 references).
var isParamValue = class("-.!%*_+`'~:[]")

// isHex: HEXDIG
var isHex = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefABCDEF") {
		t[c] = true
	}
	return t
}()
