//go:build !race

package parser_test

import (
	"strings"
	"testing"

	"github.com/siplb/siplb/parser"
)

// TestParseAllocs asserts that parsing, the accessors, the edits and the
// rejects allocate nothing once the Message has grown.
func TestParseAllocs(t *testing.T) {
	for _, path := range testdataFiles(t, "valid") {
		name := path[len("testdata/"):]
		in := readTestdata(t, name)
		var m parser.Message
		n := testing.AllocsPerRun(100, func() {
			if err := parser.Parse(&m, in); err != nil {
				t.Fatal(err)
			}
			_ = m.CallID()
			_, _ = m.CSeq()
			_, _ = m.Via(0)
			_, _ = m.RURI()
			_, _ = m.FromURI()
			_, _ = m.Route(0)
			_, _ = m.Contact(0)
		})
		if n != 0 {
			t.Errorf("Parse(%s) allocates %v times", name, n)
		}
	}
}

func TestRejectAllocs(t *testing.T) {
	for _, path := range testdataFiles(t, "invalid") {
		name := strings.TrimSuffix(path[len("testdata/invalid/"):], ".sip")
		in := readTestdata(t, "invalid/"+name+".sip")
		_, accessor := readWant(t, name)
		var m parser.Message
		n := testing.AllocsPerRun(100, func() {
			if err := verdict(&m, in, accessor); err == nil {
				t.Fatal("Parse accepted invalid input")
			}
		})
		if n != 0 {
			t.Errorf("Parse(%s) allocates %v times", name, n)
		}
	}
}

func TestForwardAllocs(t *testing.T) {
	in := readTestdata(t, "valid/invite_sdp.sip")
	var m parser.Message
	if err := parser.Parse(&m, in); err != nil {
		t.Fatal(err)
	}
	e := parser.Edits{
		PushVia:     []byte("SIP/2.0/UDP 192.0.2.100:5060;branch=z9hG4bK-lb-1"),
		MaxForwards: true,
		RecordRoute: []byte("<sip:192.0.2.100:5060;lr>"),
		Received:    []byte("203.0.113.5"),
		RPort:       5070,
	}
	dst := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { dst = m.AppendForward(dst[:0], &e) }); n != 0 {
		t.Errorf("AppendForward allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { dst = parser.AppendResponse(dst[:0], &m, 503, "Service Unavailable", []byte("lb"), nil) }); n != 0 {
		t.Errorf("AppendResponse allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = parser.Frame(in, parser.Limits{}) }); n != 0 {
		t.Errorf("Frame allocates %v times", n)
	}
}
