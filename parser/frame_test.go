package parser_test

import (
	"strings"
	"testing"

	"github.com/siplb/siplb/parser"
)

func TestFrame(t *testing.T) {
	msg := "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK-1\r\nContent-Length: 5\r\n\r\nhello"
	tests := []struct {
		name     string
		in       string
		lim      parser.Limits
		wantN    int
		wantKind parser.FrameKind
		wantErr  error
	}{
		{name: "empty", in: ""},
		{name: "ping", in: "\r\n\r\n", wantN: 4, wantKind: parser.FramePing},
		{name: "ping then message", in: "\r\n\r\nOPTIONS", wantN: 4, wantKind: parser.FramePing},
		{name: "pong", in: "\r\nOPTIONS", wantN: 2, wantKind: parser.FramePong},
		{name: "lone CRLF waits", in: "\r\n"},
		{name: "CRLF CR waits", in: "\r\n\r"},
		{name: "lone CR waits", in: "\r"},
		{name: "bare LF pong", in: "\nINVITE", wantN: 1, wantKind: parser.FramePong},
		{name: "whole message", in: msg + "NEXT", wantN: len(msg), wantKind: parser.FrameMessage},
		{name: "body incomplete", in: msg[:len(msg)-1]},
		{name: "header incomplete", in: msg[:40]},
		{name: "compact and folded content-length", in: "BYE sip:a SIP/2.0\r\nl:\r\n 3\r\n\r\nabc", wantN: 32, wantKind: parser.FrameMessage},
		{name: "lf only", in: "BYE sip:a SIP/2.0\nContent-Length: 0\n\n", wantN: 37, wantKind: parser.FrameMessage},
		{name: "no content-length", in: "BYE sip:a SIP/2.0\r\nVia: x\r\n\r\n", wantErr: parser.ErrMissingContentLength},
		{name: "bad content-length", in: "BYE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n", wantErr: parser.ErrMalformedContentLength},
		{name: "conflicting content-length", in: "BYE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n", wantErr: parser.ErrMalformedContentLength},
		{name: "header too long", in: "BYE sip:a SIP/2.0\r\nX: " + strings.Repeat("x", 100), lim: parser.Limits{MaxHeader: 64}, wantErr: parser.ErrTooLarge},
		{name: "header over limit when complete", in: "BYE sip:a SIP/2.0\r\nX: " + strings.Repeat("x", 50) + "\r\nl: 0\r\n\r\n", lim: parser.Limits{MaxHeader: 64}, wantErr: parser.ErrTooLarge},
		{name: "body too long", in: "BYE sip:a SIP/2.0\r\nl: 100\r\n\r\n", lim: parser.Limits{MaxBody: 99}, wantErr: parser.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, kind, err := parser.Frame([]byte(tc.in), tc.lim)
			if n != tc.wantN || kind != tc.wantKind || err != tc.wantErr {
				t.Errorf("Frame(%q) = %d, %d, %v; want %d, %d, %v", tc.in, n, kind, err, tc.wantN, tc.wantKind, tc.wantErr)
			}
		})
	}
}

// TestFrameTestdata frames every valid testdata message that carries a
// Content-Length, alone and behind keep-alives, split at every point.
func TestFrameTestdata(t *testing.T) {
	for _, path := range testdataFiles(t, "valid") {
		name := path[len("testdata/"):]
		in := readTestdata(t, name)
		var m parser.Message
		if err := parser.Parse(&m, in); err != nil {
			t.Fatal(err)
		}
		if _, ok := m.ContentLength(); !ok {
			continue
		}
		stream := append([]byte("\r\n\r\n"), in...)
		n, kind, err := parser.Frame(stream, parser.Limits{})
		if err != nil || n != 4 || kind != parser.FramePing {
			t.Fatalf("%s: Frame(ping) = %d %d %v", name, n, kind, err)
		}
		stream = stream[4:]
		n, kind, err = parser.Frame(stream, parser.Limits{})
		if err != nil || kind != parser.FrameMessage {
			t.Fatalf("%s: Frame = %d %d %v", name, n, kind, err)
		}
		if err := parser.Parse(&m, stream[:n]); err != nil {
			t.Errorf("%s: Parse(framed) = %v", name, err)
		}
		for cut := range n {
			if pn, _, perr := parser.Frame(stream[:cut], parser.Limits{}); pn != 0 || perr != nil {
				t.Errorf("%s: Frame(prefix %d) = %d, %v; want need-more", name, cut, pn, perr)
				break
			}
		}
	}
}
