package parser

//go:generate go run gen_tables.go

// The byte classes of RFC 3261 §25.1 (isToken, isDigit, isWS, ...) and the
// header-name tables are generated into tables.go by gen_tables.go.

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

// The bits of charClass, in the order of gen_tables.go's classTables.
const (
	clsParamValue uint8 = 1 << iota // isParamValue: branch and received values run long
	clsHost                         // isHostChar: host names in URIs and Via sent-by
)

// scanClass returns the index of the first byte of b[i:e] outside class
// cls, or e. Eight bytes are tested per step with one branch, the AND of
// their classes; the step that holds the stop goes byte by byte.
func scanClass(b []byte, i, e int, cls uint8) int {
	for ; i+8 <= e; i += 8 {
		w := b[i : i+8 : i+8]
		if charClass[w[0]]&charClass[w[1]]&charClass[w[2]]&charClass[w[3]]&
			charClass[w[4]]&charClass[w[5]]&charClass[w[6]]&charClass[w[7]]&cls == 0 {
			break
		}
	}
	for i < e && charClass[b[i]]&cls != 0 {
		i++
	}
	return i
}
