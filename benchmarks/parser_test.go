package benchmarks

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/siplb/siplb/parser"
)

// inviteFile is the message both parsers are measured on: an INVITE of
// about 1 KB with an SDP offer, two Vias and fourteen headers.
const inviteFile = "invite.sip"

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestTestdataCRLF fails when a testdata file lost its CRLF line ends.
func TestTestdataCRLF(t *testing.T) {
	msg := readTestdata(t, inviteFile)
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			t.Fatalf("%s: bare LF at offset %d", inviteFile, i)
		}
	}
}

// TestParsersAgree checks that both parsers accept the message and read the
// same Call-ID, CSeq, method and body, so the benchmark compares like work.
func TestParsersAgree(t *testing.T) {
	msg := readTestdata(t, inviteFile)

	var m parser.Message
	if err := parser.Parse(&m, msg); err != nil {
		t.Fatalf("parser.Parse: %v", err)
	}
	sm, err := sip.ParseMessage(bytes.Clone(msg))
	if err != nil {
		t.Fatalf("sip.ParseMessage: %v", err)
	}
	req, ok := sm.(*sip.Request)
	if !ok {
		t.Fatalf("sip.ParseMessage: got %T, want *sip.Request", sm)
	}
	num, method := m.CSeq()
	tests := []struct {
		name       string
		siplb, sip string
	}{
		{name: "Call-ID", siplb: string(m.CallID()), sip: req.CallID().Value()},
		{name: "CSeq number", siplb: strconv.FormatUint(uint64(num), 10), sip: strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)},
		{name: "CSeq method", siplb: method.String(), sip: string(req.CSeq().MethodName)},
		{name: "method", siplb: m.Method().String(), sip: string(req.Method)},
		{name: "body", siplb: string(m.Body()), sip: string(req.Body())},
		{name: "Via count", siplb: strconv.FormatUint(uint64(m.NumVia()), 10), sip: strconv.FormatUint(uint64(len(req.GetHeaders("Via"))), 10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.siplb != tc.sip {
				t.Errorf("siplb %q, sipgo %q", tc.siplb, tc.sip)
			}
		})
	}
	if want := "a84b4c76e66710-3f2b9c1e@192.0.2.10"; string(m.CallID()) != want {
		t.Errorf("Call-ID = %q, want %q", m.CallID(), want)
	}
	if num != 314159 || method != parser.INVITE {
		t.Errorf("CSeq = %d %v, want 314159 INVITE", num, method)
	}
}

// BenchmarkParse measures both parsers on the same message, in one run so
// the ratio holds: go test -bench Parse -count 10 | benchstat.
func BenchmarkParse(b *testing.B) {
	msg := readTestdata(b, inviteFile)
	b.Run("siplb", func(b *testing.B) {
		var m parser.Message
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := parser.Parse(&m, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sipgo", func(b *testing.B) {
		p := sip.NewParser()
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if _, err := p.ParseSIP(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
