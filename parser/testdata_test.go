package parser_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siplb/siplb/parser"
)

var update = flag.Bool("update", false, "rewrite the testdata/valid/*.golden files")

// lfTolerance lists the testdata files that end lines in a bare LF on
// purpose; every other file must use CRLF throughout its header section.
var lfTolerance = map[string]bool{
	"valid/lf_only.sip": true,
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func testdataFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", dir, "*.sip"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no testdata in %s: %v", dir, err)
	}
	return names
}

// TestTestdataCRLF fails when a testdata file has a bare LF in its start
// line or header section, which an editor may add by accident.
func TestTestdataCRLF(t *testing.T) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, path := range testdataFiles(t, dir) {
			rel := dir + "/" + filepath.Base(path)
			if lfTolerance[rel] {
				continue
			}
			b := readTestdata(t, rel)
			hdr := b
			if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
				hdr = b[:i+4]
			}
			for i, c := range hdr {
				if c == '\n' && (i == 0 || hdr[i-1] != '\r') {
					t.Errorf("%s: bare LF at offset %d", rel, i)
					break
				}
			}
		}
	}
}

func TestValidTestdata(t *testing.T) {
	for _, path := range testdataFiles(t, "valid") {
		name := strings.TrimSuffix(filepath.Base(path), ".sip")
		t.Run(name, func(t *testing.T) {
			in := readTestdata(t, "valid/"+name+".sip")
			var m parser.Message
			if err := parser.Parse(&m, in); err != nil {
				t.Fatalf("Parse(%s) = %v, want nil", name, err)
			}
			checkSpans(t, &m)
			got := summary(&m)
			golden := filepath.Join("testdata", "valid", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("Parse(%s) summary:\n%s\nwant:\n%s", name, got, want)
			}
		})
	}
}

// lazyAccessors are the accessors an invalid/*.want file may name on its
// second line ("Route(0)"): the message passes Parse, whose checks stop at
// what every forwarding decision reads, and that accessor rejects it.
var lazyAccessors = map[string]func(m *parser.Message) error{
	"Via(1)":         func(m *parser.Message) error { _, err := m.Via(1); return err },
	"Route(0)":       func(m *parser.Message) error { _, err := m.Route(0); return err },
	"RecordRoute(0)": func(m *parser.Message) error { _, err := m.RecordRoute(0); return err },
	"Contact(0)":     func(m *parser.Message) error { _, err := m.Contact(0); return err },
}

// readWant reads invalid/name.want: the error, then optionally the
// accessor that must return it.
func readWant(tb testing.TB, name string) (want, accessor string) {
	tb.Helper()
	lines := strings.Split(strings.TrimSpace(string(readTestdata(tb, "invalid/"+name+".want"))), "\n")
	if len(lines) > 1 {
		accessor = strings.TrimSpace(lines[1])
		if lazyAccessors[accessor] == nil {
			tb.Fatalf("invalid/%s.want: unknown accessor %q", name, accessor)
		}
	}
	return strings.TrimSpace(lines[0]), accessor
}

// verdict returns what the parser says of in: Parse's error, or the named
// accessor's when Parse accepts the message.
func verdict(m *parser.Message, in []byte, accessor string) error {
	err := parser.Parse(m, in)
	if err != nil || accessor == "" {
		return err
	}
	return lazyAccessors[accessor](m)
}

func TestInvalidTestdata(t *testing.T) {
	for _, path := range testdataFiles(t, "invalid") {
		name := strings.TrimSuffix(filepath.Base(path), ".sip")
		t.Run(name, func(t *testing.T) {
			in := readTestdata(t, "invalid/"+name+".sip")
			want, accessor := readWant(t, name)
			var m parser.Message
			err := verdict(&m, in, accessor)
			if err == nil {
				t.Fatalf("Parse(%s) = nil, want %s", name, want)
			}
			pe, ok := errors.AsType[*parser.Error](err)
			if !ok {
				t.Fatalf("Parse(%s) = %T %v, want *parser.Error", name, err, err)
			}
			if got := pe.Error(); got != want {
				t.Errorf("Parse(%s) = %q, want %q", name, got, want)
			}
		})
	}
}

// checkSpans fails when an accessor returns a slice that does not lie
// inside m.Buf.
func checkSpans(t testing.TB, m *parser.Message) {
	t.Helper()
	in := func(what string, s []byte) {
		if len(s) == 0 {
			return
		}
		if !inside(m.Buf, s) {
			t.Errorf("%s = %q lies outside Buf", what, s)
		}
	}
	in("MethodName", m.MethodName())
	in("RequestURI", m.RequestURI())
	in("Reason", m.Reason())
	in("CallID", m.CallID())
	in("CSeqMethodName", m.CSeqMethodName())
	in("FromTag", m.FromTag())
	in("ToTag", m.ToTag())
	in("Body", m.Body())
	for i := range m.NumHeaders() {
		_, n, v := m.HeaderAt(i)
		in("header name", n)
		in("header value", v)
	}
	for i := range m.NumVia() {
		if v, err := m.Via(i); err == nil {
			in("Via.Host", v.Host)
			in("Via.Branch", v.Branch)
			in("Via.Params", v.Params)
		}
	}
}

// inside reports whether s is a sub-slice of buf.
func inside(buf, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i+len(s) <= len(buf); i++ {
		if &buf[i] == &s[0] {
			return true
		}
	}
	return false
}

// summary renders what the accessors return, for the golden files.
func summary(m *parser.Message) string {
	var b strings.Builder
	if m.IsRequest() {
		fmt.Fprintf(&b, "request %q method=%v uri=%q\n", m.MethodName(), m.Method(), m.RequestURI())
		if u, err := m.RURI(); err == nil {
			fmt.Fprintf(&b, "  ruri %s\n", fmtURI(u))
		} else {
			fmt.Fprintf(&b, "  ruri error %v\n", err)
		}
	} else {
		fmt.Fprintf(&b, "response %d %q\n", m.StatusCode(), m.Reason())
	}
	n, meth := m.CSeq()
	fmt.Fprintf(&b, "call-id %q\ncseq %d %v %q\n", m.CallID(), n, meth, m.CSeqMethodName())
	fmt.Fprintf(&b, "from-tag %q to-tag %q\n", m.FromTag(), m.ToTag())
	if u, err := m.FromURI(); err == nil {
		fmt.Fprintf(&b, "from %s\n", fmtURI(u))
	} else {
		fmt.Fprintf(&b, "from error %v\n", err)
	}
	if u, err := m.ToURI(); err == nil {
		fmt.Fprintf(&b, "to %s\n", fmtURI(u))
	} else {
		fmt.Fprintf(&b, "to error %v\n", err)
	}
	mf, ok := m.MaxForwards()
	fmt.Fprintf(&b, "max-forwards %d %v\n", mf, ok)
	for i := range m.NumVia() {
		v, err := m.Via(i)
		if err != nil {
			fmt.Fprintf(&b, "via[%d] error %v\n", i, err)
			continue
		}
		fmt.Fprintf(&b, "via[%d] proto=%q transport=%q host=%q port=%d branch=%q received=%q rport=%d/%v params=%q\n",
			i, v.Protocol, v.Transport, v.Host, v.Port, v.Branch, v.Received, v.RPort, v.HasRPort, v.Params)
	}
	list := func(name string, n int, f func(int) (parser.URI, error)) {
		for i := range n {
			if u, err := f(i); err == nil {
				fmt.Fprintf(&b, "%s[%d] %s\n", name, i, fmtURI(u))
			} else {
				fmt.Fprintf(&b, "%s[%d] error %v\n", name, i, err)
			}
		}
	}
	list("route", m.NumRoute(), m.Route)
	list("record-route", m.NumRecordRoute(), m.RecordRoute)
	list("contact", m.NumContact(), m.Contact)
	for i := range m.NumHeaders() {
		id, name, value := m.HeaderAt(i)
		fmt.Fprintf(&b, "header %d %q %q\n", id, name, value)
	}
	fmt.Fprintf(&b, "body %d %q\n", len(m.Body()), trunc(m.Body()))
	return b.String()
}

func fmtURI(u parser.URI) string {
	return fmt.Sprintf("scheme=%q user=%q host=%q port=%d params=%q transport=%q maddr=%q lr=%v",
		u.Scheme, trunc(u.User), u.Host, u.Port, trunc(u.Params), u.Transport, u.Maddr, u.LR)
}

func trunc(b []byte) []byte {
	if len(b) > 60 {
		return b[:60]
	}
	return b
}
