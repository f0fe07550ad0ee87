package parser_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/siplb/siplb/parser"
)

// TestViaIter walks Via lists of every shape (values in one header, in
// several, interleaved with other headers, quoted commas) and stops with
// ErrMalformedVia where the list breaks, as Via(i) does.
func TestViaIter(t *testing.T) {
	tests := []struct {
		name  string
		vias  []string // the Via header lines, in order
		hosts []string // the hosts the iterator yields
		bad   bool     // it stops at a malformed value
	}{
		{"one", []string{"Via: SIP/2.0/UDP a:5060;branch=z9hG4bK1"}, []string{"a"}, false},
		{"two lines", []string{"Via: SIP/2.0/UDP a;branch=z9hG4bK1", "v: SIP/2.0/TCP b:5070;branch=z9hG4bK2"}, []string{"a", "b"}, false},
		{"comma list", []string{"Via: SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/UDP b ;rport=7,SIP/2.0/UDP c"}, []string{"a", "b", "c"}, false},
		{"list then line", []string{"Via: SIP/2.0/UDP a, SIP/2.0/UDP b", "Via: SIP/2.0/UDP c"}, []string{"a", "b", "c"}, false},
		{"quoted comma", []string{`Via: SIP/2.0/UDP a;x="p,q", SIP/2.0/UDP b`}, []string{"a", "b"}, false},
		{"trailing comma", []string{"Via: SIP/2.0/UDP a,"}, []string{"a"}, true},
		{"bad second line", []string{"Via: SIP/2.0/UDP a", "Via: SIP/2.0/UDP ;branch=x"}, []string{"a"}, true},
		{"bad in list", []string{"Via: SIP/2.0/UDP a, SIP/2.0/UDP b;;x, SIP/2.0/UDP c"}, []string{"a"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines := append([]string{"OPTIONS sip:x@example.com SIP/2.0"}, tc.vias[0])
			lines = append(lines, "Max-Forwards: 70", "To: <sip:x@example.com>")
			lines = append(lines, tc.vias[1:]...)
			lines = append(lines, "From: <sip:y@example.com>;tag=1", "Call-ID: it@x", "CSeq: 1 OPTIONS", "Content-Length: 0", "", "")
			var m parser.Message
			if err := parser.Parse(&m, []byte(strings.Join(lines, "\r\n"))); err != nil {
				t.Fatal(err)
			}
			it := m.Vias()
			var got []string
			var v parser.Via
			for it.Next(&v) {
				got = append(got, string(v.Host))
			}
			if strings.Join(got, " ") != strings.Join(tc.hosts, " ") {
				t.Errorf("hosts %q, want %q", got, tc.hosts)
			}
			if bad := errors.Is(it.Err(), parser.ErrMalformedVia); bad != tc.bad {
				t.Errorf("Err() = %v, want malformed %v", it.Err(), tc.bad)
			}
			// Pass moves as Next does: passing the first k values and
			// reading on yields the rest.
			for k := 1; k <= len(tc.hosts); k++ {
				it := m.Vias()
				for range k {
					if !it.Pass() {
						t.Fatalf("Pass %d: false", k)
					}
				}
				var rest []string
				for it.Next(&v) {
					rest = append(rest, string(v.Host))
				}
				if strings.Join(rest, " ") != strings.Join(tc.hosts[k:], " ") || (it.Err() != nil) != tc.bad {
					t.Errorf("after %d Pass: hosts %q err %v, want %q", k, rest, it.Err(), tc.hosts[k:])
				}
			}
			// Via(i) agrees value for value.
			for i, h := range tc.hosts {
				if w, err := m.Via(i); err != nil || string(w.Host) != h {
					t.Errorf("Via(%d) = %q, %v; want %q", i, w.Host, err, h)
				}
			}
			if _, err := m.Via(len(tc.hosts)); tc.bad != (err != nil && !errors.Is(err, parser.ErrNoSuchValue)) {
				t.Errorf("Via(%d) error %v, want malformed %v", len(tc.hosts), err, tc.bad)
			}
		})
	}
}

// TestFirstOther finds the first header with no known name, and none
// left from a previous message parsed into the same Message.
func TestFirstOther(t *testing.T) {
	head := []string{"OPTIONS sip:x@example.com SIP/2.0", "Via: SIP/2.0/UDP a;branch=z9hG4bK1", "To: <sip:x@example.com>",
		"From: <sip:y@example.com>;tag=1", "Call-ID: fo@x", "CSeq: 1 OPTIONS"}
	var m parser.Message
	for _, tc := range []struct {
		extra []string
		want  int // index of the first unknown header; -1: NumHeaders()
	}{
		{[]string{"X-A: 1", "Content-Length: 0"}, 5},
		{[]string{"Content-Length: 0"}, -1},
		{[]string{"Allow: INVITE", "Replaces: a@b;to-tag=1;from-tag=2", "Join: c@d"}, 6},
		{nil, -1},
	} {
		lines := append(append(append([]string(nil), head...), tc.extra...), "", "")
		if err := parser.Parse(&m, []byte(strings.Join(lines, "\r\n"))); err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if want < 0 {
			want = m.NumHeaders()
		}
		if got := m.FirstOther(); got != want {
			t.Errorf("%q: FirstOther = %d, want %d", tc.extra, got, want)
		}
		if got := m.HeaderByName([]byte("join")); (got != nil) != (len(tc.extra) == 3) {
			t.Errorf("%q: HeaderByName(join) = %q", tc.extra, got)
		}
	}
}
