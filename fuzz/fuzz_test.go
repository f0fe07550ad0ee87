package fuzz

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/siplb/siplb/parser"
)

// addSeeds adds every parser testdata message and every inline seed.
func addSeeds(f *testing.F) {
	f.Helper()
	for _, b := range seedMessages(f) {
		f.Add(b)
	}
}

// seedMessages returns every parser testdata message and every inline seed.
func seedMessages(f *testing.F) [][]byte {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "parser", "testdata", "*", "*.sip"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no parser testdata: %v", err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	for _, s := range seeds {
		out = append(out, []byte(s))
	}
	return out
}

// inside reports whether s is empty or a sub-slice of buf.
func inside(buf, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	if len(buf) == 0 {
		return false
	}
	// Compare addresses through the capacity trick: every accessor
	// returns buf[i:j:j] or buf[i:j], whose end lies inside buf.
	for i := 0; i+len(s) <= len(buf); i++ {
		if &buf[i] == &s[0] {
			return true
		}
	}
	return false
}

// checkMessage exercises every accessor of an accepted message and fails
// when one panics or returns bytes outside the input.
func checkMessage(t *testing.T, m *parser.Message, in []byte) {
	t.Helper()
	spans := [][]byte{m.MethodName(), m.RequestURI(), m.Reason(), m.CallID(), m.CSeqMethodName(),
		m.FromTag(), m.ToTag(), m.Body()}
	for i := range m.NumHeaders() {
		_, n, v := m.HeaderAt(i)
		spans = append(spans, n, v)
	}
	for id := parser.HdrVia; id.String() != ""; id++ {
		spans = append(spans, m.Header(id))
	}
	for i := range m.NumVia() {
		if v, err := m.Via(i); err == nil {
			spans = append(spans, v.Protocol, v.Transport, v.Host, v.Branch, v.Received, v.Maddr, v.Params)
		}
	}
	uris := func(n int, f func(int) (parser.URI, error)) {
		for i := range n {
			if u, err := f(i); err == nil {
				spans = append(spans, u.Scheme, u.User, u.Host, u.Params, u.Transport, u.Maddr, u.Raw)
			}
		}
	}
	uris(m.NumRoute(), m.Route)
	uris(m.NumRecordRoute(), m.RecordRoute)
	uris(m.NumContact(), m.Contact)
	uris(1, func(int) (parser.URI, error) { return m.FromURI() })
	uris(1, func(int) (parser.URI, error) { return m.ToURI() })
	uris(1, func(int) (parser.URI, error) { return m.RURI() })
	for i, s := range spans {
		if !inside(in, s) {
			t.Fatalf("span %d = %q lies outside the input", i, s)
		}
	}
	if m.CallID() == nil || m.NumVia() == 0 {
		t.Fatalf("accepted without Call-ID or Via")
	}
	checkViaIter(t, m)
}

// checkViaIter fails unless Message.Vias walks the values Via(i) returns,
// stopping with an error where Via(i) finds the list malformed.
func checkViaIter(t *testing.T, m *parser.Message) {
	t.Helper()
	it := m.Vias()
	for i := range m.NumVia() {
		want, werr := m.Via(i)
		var got parser.Via
		ok := it.Next(&got)
		if werr != nil {
			if ok || it.Err() == nil {
				t.Fatalf("Via(%d) = %v, but the iterator went on (ok %v, err %v)", i, werr, ok, it.Err())
			}
			return
		}
		if !ok {
			t.Fatalf("the iterator stopped at %d of %d (err %v)", i, m.NumVia(), it.Err())
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Via %d: iterator %+v, Via(i) %+v", i, got, want)
		}
	}
	var v parser.Via
	if it.Next(&v) || it.Err() != nil {
		t.Fatalf("the iterator went past %d values (err %v)", m.NumVia(), it.Err())
	}
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var m parser.Message
		err := parser.Parse(&m, in)
		if err != nil {
			if _, ok := err.(*parser.Error); !ok {
				t.Fatalf("Parse error %T %v is not a *parser.Error", err, err)
			}
			// A rejected message can still be answered.
			resp := parser.AppendResponse(nil, &m, 400, "Bad Request", []byte("t"), nil)
			if !bytes.HasPrefix(resp, []byte("SIP/2.0 400 ")) {
				t.Fatalf("AppendResponse = %q", resp)
			}
			return
		}
		checkMessage(t, &m, in)
		// Accepted input parses without allocating once m has grown.
		if n := testing.AllocsPerRun(1, func() { _ = parser.Parse(&m, in) }); n != 0 && !raceEnabled {
			t.Fatalf("Parse allocates %v times", n)
		}
		// The copy AppendForward makes with no edits parses to the same
		// message.
		out := m.AppendForward(nil, &parser.Edits{})
		var m2 parser.Message
		if err := parser.Parse(&m2, out); err != nil {
			t.Fatalf("Parse(AppendForward(%q)) = %v (out %q)", in, err, out)
		}
		if !bytes.Equal(m.CallID(), m2.CallID()) || !bytes.Equal(m.Body(), m2.Body()) || m.NumVia() != m2.NumVia() {
			t.Fatalf("round trip changed the message: %q -> %q", in, out)
		}
	})
}

// frameAll frames a whole stream, returning the items and whether it
// ended in an error.
func frameAll(stream []byte) (items []string, err error) {
	for len(stream) > 0 {
		n, kind, err := parser.Frame(stream, parser.Limits{})
		if err != nil {
			return items, err
		}
		if n == 0 {
			break
		}
		items = append(items, string(rune('0'+kind))+string(stream[:n]))
		stream = stream[n:]
	}
	return items, nil
}

func FuzzFrame(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		stream := append(append([]byte("\r\n\r\n"), in...), "\r\n"...)
		want, wantErr := frameAll(stream)
		// Feed the stream in reads cut at points derived from the input:
		// the items framed must not change.
		var (
			buf   []byte
			got   []string
			err   error
			step  = max(1+int(in[0])%97, len(in)/32) // bounded, so that framing stays linear-ish
			fed   = 0
			limit = len(stream)
		)
		for fed < limit && err == nil {
			next := min(fed+step, limit)
			buf = append(buf, stream[fed:next]...)
			fed = next
			for err == nil {
				n, kind, ferr := parser.Frame(buf, parser.Limits{})
				if ferr != nil {
					err = ferr
					break
				}
				if n == 0 {
					break
				}
				if n > len(buf) {
					t.Fatalf("Frame = %d beyond the %d bytes given", n, len(buf))
				}
				got = append(got, string(rune('0'+kind))+string(buf[:n]))
				buf = buf[n:]
			}
		}
		if err != wantErr {
			t.Fatalf("split framing error %v, whole %v", err, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("split framing gave %d items, whole %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("item %d differs: %q vs %q", i, got[i], want[i])
			}
		}
	})
}

// FuzzEdits applies a proxy's edits (parser.Edits) to every message that
// parses and checks the result parses to the same message, one Via more.
func FuzzEdits(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var m parser.Message
		if parser.Parse(&m, in) != nil {
			return
		}
		e := parser.Edits{
			PushVia:     []byte("SIP/2.0/UDP 192.0.2.100:5060;branch=z9hG4bK-fuzz-1"),
			MaxForwards: true,
		}
		if m.IsRequest() {
			e.RecordRoute = []byte("<sip:192.0.2.100;lr>")
		}
		out := m.AppendForward(nil, &e)
		var m2 parser.Message
		if err := parser.Parse(&m2, out); err != nil {
			t.Fatalf("Parse(forwarded) = %v\nin:  %q\nout: %q", err, in, out)
		}
		checkMessage(t, &m2, out)
		n1, meth1 := m.CSeq()
		n2, meth2 := m2.CSeq()
		if !bytes.Equal(m.CallID(), m2.CallID()) || n1 != n2 || meth1 != meth2 ||
			!bytes.Equal(m.CSeqMethodName(), m2.CSeqMethodName()) || !bytes.Equal(m.Body(), m2.Body()) {
			t.Fatalf("forwarding changed Call-ID, CSeq or body\nin:  %q\nout: %q", in, out)
		}
		if m2.NumVia() != m.NumVia()+1 {
			t.Fatalf("NumVia %d -> %d, want one more", m.NumVia(), m2.NumVia())
		}
		if v := m2.TopVia(); string(v.Branch) != "z9hG4bK-fuzz-1" {
			t.Fatalf("top Via branch = %q", v.Branch)
		}
		mf1, ok1 := m.MaxForwards()
		mf2, ok2 := m2.MaxForwards()
		want := max(mf1-1, 0)
		if !ok1 {
			want = parser.DefaultMaxForwards
		}
		if !ok2 || mf2 != want {
			t.Fatalf("Max-Forwards %d/%v -> %d/%v, want %d", mf1, ok1, mf2, ok2, want)
		}
		// Removing the Via again restores the Via count.
		out2 := m2.AppendForward(nil, &parser.Edits{RemoveTopVia: true})
		var m3 parser.Message
		if err := parser.Parse(&m3, out2); err != nil {
			t.Fatalf("Parse(unforwarded) = %v\nout: %q", err, out2)
		}
		if m3.NumVia() != m.NumVia() {
			t.Fatalf("NumVia after pop = %d, want %d", m3.NumVia(), m.NumVia())
		}
	})
}
