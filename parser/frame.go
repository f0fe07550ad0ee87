package parser

// FrameKind says what Frame found at the start of a stream buffer.
type FrameKind uint8

// The items of a SIP stream.
const (
	FrameMessage FrameKind = iota + 1 // a SIP message, to be given to Parse
	FramePing                         // "\r\n\r\n" keep-alive ping (RFC 5626 §3.5.1)
	FramePong                         // "\r\n" keep-alive pong (RFC 5626 §3.5.1)
)

// Frame says how long the first complete item in b, bytes buffered from a
// TCP or TLS stream, is: n > 0 with its kind, or n == 0 && err == nil when
// more bytes are needed. A non-nil error means the stream is broken and
// should be closed (after answering, where the error's status allows):
// ErrMissingContentLength when a message has none (RFC 3261 §18.3 makes it
// mandatory on streams), ErrMalformedContentLength, or ErrTooLarge when the
// header section exceeds lim.MaxHeader or the body lim.MaxBody. Frame reads
// only the framing; Parse checks the message.
//
// "\r\n\r\n" is a ping and "\r\n" followed by anything else a pong; a lone
// "\r\n" or "\r\n\r" waits for the next byte so that a ping split across
// reads is never taken for two pongs. A bare "\n" between messages is taken
// as a one-byte pong. The answer depends only on the bytes, never on how
// they were split into reads.
func Frame(b []byte, lim Limits) (n int, kind FrameKind, err error) {
	maxHdr, maxBody := lim.values()
	if len(b) == 0 {
		return 0, 0, nil
	}
	switch b[0] {
	case '\n':
		return 1, FramePong, nil
	case '\r':
		if len(b) < 2 {
			return 0, 0, nil
		}
		if b[1] != '\n' {
			break
		}
		if len(b) < 3 {
			return 0, 0, nil
		}
		if b[2] != '\r' {
			return 2, FramePong, nil
		}
		if len(b) < 4 {
			return 0, 0, nil
		}
		if b[3] == '\n' {
			return 4, FramePing, nil
		}
		return 2, FramePong, nil
	}
	var (
		cl     span // value of Content-Length, folded lines included
		inCL   bool // the current header is Content-Length
		clSeen bool
		hdrEnd = -1
		clen   int
	)
	finishCL := func() error {
		if !inCL {
			return nil
		}
		inCL = false
		s, e := trimWS(b, cl.off, cl.end)
		v, ok := parseUint(b[s:e], 1<<31-1)
		if !ok {
			return ErrMalformedContentLength
		}
		if clSeen && int(v) != clen {
			return ErrMalformedContentLength
		}
		clSeen, clen = true, int(v)
		return nil
	}
	_, p := lineEnd(b, 0) // the start line
	for p < len(b) {
		if p > maxHdr {
			return 0, 0, ErrTooLarge
		}
		le, next := lineEnd(b, p)
		if next == len(b) && (next == 0 || b[next-1] != '\n') {
			break // incomplete line
		}
		if le == p {
			hdrEnd = next
			break
		}
		if b[p] == ' ' || b[p] == '\t' {
			if inCL {
				cl.end = le
			}
			p = next
			continue
		}
		if err := finishCL(); err != nil {
			return 0, 0, err
		}
		q := p
		for q < le && isToken[b[q]] {
			q++
		}
		name := b[p:q]
		for q < le && (b[q] == ' ' || b[q] == '\t') {
			q++
		}
		if q < le && b[q] == ':' && (equalFold(name, "content-length") || equalFold(name, "l")) {
			inCL = true
			cl = span{q + 1, le}
		}
		p = next
	}
	if hdrEnd < 0 {
		if len(b) > maxHdr {
			return 0, 0, ErrTooLarge
		}
		return 0, 0, nil
	}
	if hdrEnd > maxHdr {
		return 0, 0, ErrTooLarge
	}
	if err := finishCL(); err != nil {
		return 0, 0, err
	}
	if !clSeen {
		return 0, 0, ErrMissingContentLength
	}
	if clen > maxBody {
		return 0, 0, ErrTooLarge
	}
	if len(b)-hdrEnd < clen {
		return 0, 0, nil
	}
	return hdrEnd + clen, FrameMessage, nil
}
