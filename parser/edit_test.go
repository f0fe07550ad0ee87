package parser_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/siplb/siplb/parser"
)

// crlf turns the "\n" of a Go literal into CRLF.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const editIn = `INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK-1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-2
Via: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bK-3
Route: <sip:lb.example.com;lr>, <sip:core.example.com;lr>
Max-Forwards: 10
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>
Call-ID: edit-1@10.0.0.1
CSeq: 1 INVITE
Record-Route: <sip:edge.example.com;lr>
Contact: "Alice" <sip:alice@10.0.0.1:5060>;expires=60
Content-Length: 4

body`

const registerIn = `REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1
From: <sip:a@example.com>;tag=a
To: <sip:a@example.com>
Call-ID: r@d
CSeq: 2 REGISTER
Supported: path

`

func TestAppendForward(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		edits parser.Edits
		want  string
	}{
		{
			name: "no edits",
			in:   editIn,
			want: editIn,
		},
		{
			name:  "push via and decrement max-forwards",
			in:    editIn,
			edits: parser.Edits{PushVia: []byte("SIP/2.0/UDP lb:5060;branch=z9hG4bK-lb"), MaxForwards: true},
			want: strings.Replace(strings.Replace(editIn, "Max-Forwards: 10", "Max-Forwards: 9", 1),
				"SIP/2.0\nVia:", "SIP/2.0\nVia: SIP/2.0/UDP lb:5060;branch=z9hG4bK-lb\nVia:", 1),
		},
		{
			name:  "remove top via of a list",
			in:    editIn,
			edits: parser.Edits{RemoveTopVia: true},
			want:  strings.Replace(editIn, "SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK-1, ", "", 1),
		},
		{
			name: "remove top via line",
			in: `SIP/2.0 200 OK
Via: SIP/2.0/UDP lb:5060;branch=z9hG4bK-lb
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: x@y
CSeq: 1 INVITE
Content-Length: 0

`,
			edits: parser.Edits{RemoveTopVia: true},
			want: `SIP/2.0 200 OK
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: x@y
CSeq: 1 INVITE
Content-Length: 0

`,
		},
		{
			name:  "pop two routes of one line",
			in:    editIn,
			edits: parser.Edits{PopRoutes: 2},
			want:  strings.Replace(editIn, "Route: <sip:lb.example.com;lr>, <sip:core.example.com;lr>\n", "", 1),
		},
		{
			name:  "pop two routes over two lines",
			in:    strings.Replace(editIn, "<sip:lb.example.com;lr>, ", "<sip:lb.example.com;lr>\nRoute: <sip:lb2.example.com;lr>, ", 1),
			edits: parser.Edits{PopRoutes: 2},
			want:  strings.Replace(editIn, "<sip:lb.example.com;lr>, ", "", 1),
		},
		{
			name:  "drop the last route (strict routing)",
			in:    editIn,
			edits: parser.Edits{DropLastRoute: true, RequestURI: []byte("sip:core.example.com")},
			want: strings.Replace(strings.Replace(editIn, ", <sip:core.example.com;lr>", "", 1),
				"INVITE sip:bob@example.com", "INVITE sip:core.example.com", 1),
		},
		{
			name:  "pop the first and drop the last",
			in:    editIn,
			edits: parser.Edits{PopRoute: true, DropLastRoute: true},
			want:  strings.Replace(editIn, "Route: <sip:lb.example.com;lr>, <sip:core.example.com;lr>\n", "", 1),
		},
		{
			name:  "received and rport",
			in:    editIn,
			edits: parser.Edits{Received: []byte("192.0.2.1"), RPort: 40000},
			want:  strings.Replace(editIn, "10.0.0.1:5060;rport;branch=z9hG4bK-1,", "10.0.0.1:5060;rport=40000;branch=z9hG4bK-1;received=192.0.2.1,", 1),
		},
		{
			name: "received replaced, rport without rport param",
			in: strings.Replace(editIn, "10.0.0.1:5060;rport;branch=z9hG4bK-1",
				"10.0.0.1:5060;received=10.9.9.9;branch=z9hG4bK-1", 1),
			edits: parser.Edits{Received: []byte("192.0.2.1"), RPort: 40000},
			want: strings.Replace(editIn, "10.0.0.1:5060;rport;branch=z9hG4bK-1",
				"10.0.0.1:5060;received=192.0.2.1;branch=z9hG4bK-1", 1),
		},
		{
			name:  "pop route value and record-route twice",
			in:    editIn,
			edits: parser.Edits{PopRoute: true, RecordRoute: []byte("<sip:lb-out;lr>"), RecordRoute2: []byte("<sip:lb-in;lr>")},
			want: strings.Replace(strings.Replace(editIn, "<sip:lb.example.com;lr>, ", "", 1),
				"Record-Route: <sip:edge", "Record-Route: <sip:lb-out;lr>\nRecord-Route: <sip:lb-in;lr>\nRecord-Route: <sip:edge", 1),
		},
		{
			name:  "request-uri, contact and appended route",
			in:    editIn,
			edits: parser.Edits{RequestURI: []byte("sip:bob@10.1.1.1:5080"), Contact: []byte("sip:alice@203.0.113.9:6000"), AppendRoute: []byte("<sip:bob@10.1.1.1>")},
			want: strings.NewReplacer("INVITE sip:bob@example.com SIP", "INVITE sip:bob@10.1.1.1:5080 SIP",
				"<sip:alice@10.0.0.1:5060>;expires", "<sip:alice@203.0.113.9:6000>;expires",
				"<sip:core.example.com;lr>\n", "<sip:core.example.com;lr>\nRoute: <sip:bob@10.1.1.1>\n").Replace(editIn),
		},
		{
			name: "insert max-forwards, record-route, route and content-length",
			in: `OPTIONS sip:x@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1
From: <sip:a@example.com>;tag=a
To: sip:x@example.com
Call-ID: c@d
CSeq: 2 OPTIONS
Contact: sip:a@10.0.0.1;expires=5

hi`,
			edits: parser.Edits{MaxForwards: true, RecordRoute: []byte("<sip:lb;lr>"), AppendRoute: []byte("<sip:next;lr>"),
				ContentLength: true, Contact: []byte("sip:a@192.0.2.7:7;transport=tcp")},
			want: `OPTIONS sip:x@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1
From: <sip:a@example.com>;tag=a
To: sip:x@example.com
Call-ID: c@d
CSeq: 2 OPTIONS
Contact: <sip:a@192.0.2.7:7;transport=tcp>;expires=5
Max-Forwards: 70
Record-Route: <sip:lb;lr>
Route: <sip:next;lr>
Content-Length: 2

hi`,
		},
		{
			name: "path inserted above the existing ones (RFC 3327)",
			in: `REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1
From: <sip:a@example.com>;tag=a
To: <sip:a@example.com>
Call-ID: r@d
CSeq: 2 REGISTER
Supported: path
Path: <sip:edge.example.com;lr>
Contact: <sip:a@10.0.0.1>
Content-Length: 0

`,
			edits: parser.Edits{Path: []byte("<sip:lb-out;lr>"), Path2: []byte("<sip:lb-in;lr;lbp=u1>")},
			want: `REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1
From: <sip:a@example.com>;tag=a
To: <sip:a@example.com>
Call-ID: r@d
CSeq: 2 REGISTER
Supported: path
Path: <sip:lb-out;lr>
Path: <sip:lb-in;lr;lbp=u1>
Path: <sip:edge.example.com;lr>
Contact: <sip:a@10.0.0.1>
Content-Length: 0

`,
		},
		{
			name:  "path appended when there is none",
			in:    registerIn,
			edits: parser.Edits{Path: []byte("<sip:lb;lr;lbp=u1>"), ContentLength: true},
			want:  registerIn[:len(registerIn)-1] + "Path: <sip:lb;lr;lbp=u1>\nContent-Length: 0\n\n",
		},
		{
			name:  "pop only route line",
			in:    strings.Replace(editIn, "<sip:lb.example.com;lr>, <sip:core.example.com;lr>", "<sip:lb.example.com;lr>", 1),
			edits: parser.Edits{PopRoute: true},
			want:  strings.Replace(editIn, "Route: <sip:lb.example.com;lr>, <sip:core.example.com;lr>\n", "", 1),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m parser.Message
			in := crlf(tc.in)
			if err := parser.Parse(&m, in); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := m.AppendForward(nil, &tc.edits)
			if want := crlf(tc.want); !bytes.Equal(got, want) {
				t.Errorf("AppendForward(%+v):\n%q\nwant:\n%q", tc.edits, got, want)
			}
			var m2 parser.Message
			if err := parser.Parse(&m2, got); err != nil {
				t.Errorf("Parse(AppendForward()) = %v", err)
			}
		})
	}
}

func TestAppendResponse(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		toTag string
		extra string
		want  string
	}{
		{
			name:  "adds to-tag",
			in:    editIn,
			toTag: "lb1",
			want: `SIP/2.0 483 Too Many Hops
Via: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK-1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-2
Via: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bK-3
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=lb1
Call-ID: edit-1@10.0.0.1
CSeq: 1 INVITE
Content-Length: 0

`,
		},
		{
			name:  "keeps existing to-tag, adds extra",
			in:    strings.Replace(editIn, "To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=b", 1),
			toTag: "lb1",
			extra: "Retry-After: 5\n",
			want: `SIP/2.0 483 Too Many Hops
Via: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK-1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-2
Via: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bK-3
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: edit-1@10.0.0.1
CSeq: 1 INVITE
Retry-After: 5
Content-Length: 0

`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m parser.Message
			if err := parser.Parse(&m, crlf(tc.in)); err != nil {
				t.Fatal(err)
			}
			got := parser.AppendResponse(nil, &m, 483, "Too Many Hops", []byte(tc.toTag), crlf(tc.extra))
			if want := crlf(tc.want); !bytes.Equal(got, want) {
				t.Errorf("AppendResponse:\n%q\nwant:\n%q", got, want)
			}
		})
	}
}

// TestAppendResponseAfterReject checks that a message Parse rejected can
// still be answered with the headers found before the defect.
func TestAppendResponseAfterReject(t *testing.T) {
	in := crlf(strings.Replace(editIn, "CSeq: 1 INVITE", "CSeq: 1 BYE", 1))
	var m parser.Message
	err := parser.Parse(&m, in)
	if err != parser.ErrCSeqMethodMismatch {
		t.Fatalf("Parse = %v, want %v", err, parser.ErrCSeqMethodMismatch)
	}
	pe := err.(*parser.Error)
	got := parser.AppendResponse(nil, &m, pe.Status, pe.Reason, []byte("t"), nil)
	var r parser.Message
	if err := parser.Parse(&r, got); err != nil {
		t.Fatalf("Parse(response %q) = %v", got, err)
	}
	if r.StatusCode() != 400 || string(r.Reason()) != "CSeq Method Mismatch" || string(r.CallID()) != "edit-1@10.0.0.1" || r.NumVia() != 3 {
		t.Errorf("response = %q", got)
	}
}
