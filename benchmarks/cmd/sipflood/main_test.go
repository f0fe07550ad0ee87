package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siplb/siplb/benchmarks/internal/echo"
	"github.com/siplb/siplb/benchmarks/internal/sipwire"
)

// startEcho serves one sipecho socket on 127.0.0.1:0 until the test ends.
func startEcho(t *testing.T) (*echo.Server, string) {
	t.Helper()
	srv, err := echo.Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, srv.Addrs()[0].String()
}

func TestFloodIsBoundedAndCounted(t *testing.T) {
	srv, addr := startEcho(t)
	out := filepath.Join(t.TempDir(), "flood.json")
	var stdout, stderr bytes.Buffer
	// Paced and in small batches, so that the echo's socket never overflows
	// and every message can be accounted for.
	args := []string{"-target", addr, "-sources", "4", "-max", "400", "-rate", "4000", "-batch", "4",
		"-duration", "10s", "-drain", "500ms", "-seed", "7", "-json", out}
	start := time.Now()
	if rc := run(args, &stdout, &stderr); rc != 0 {
		t.Fatalf("run: exit %d: %s", rc, stderr.String())
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("run took %v: -max 400 did not end it", d)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("json %s: %v", b, err)
	}
	if res.Sent != 400 || res.SendErrors != 0 {
		t.Fatalf("sent %d (errors %d), want 400 (0)", res.Sent, res.SendErrors)
	}
	if len(res.Sources) != 4 {
		t.Fatalf("%d sources, want 4", len(res.Sources))
	}
	var byKind uint64
	for i, s := range res.Sources {
		want := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
		if ap := netip.MustParseAddrPort(s.Addr); ap.Addr() != want {
			t.Errorf("source %d is %s, want %s", i, s.Addr, want)
		}
		if s.Sent != 100 {
			t.Errorf("source %s sent %d, want its share, 100", s.Addr, s.Sent)
		}
	}
	for _, k := range kindNames {
		if res.SentByKind[k] == 0 {
			t.Errorf("no %s sent in 400 (default mix): %v", k, res.SentByKind)
		}
		byKind += res.SentByKind[k]
	}
	if byKind != res.Sent {
		t.Errorf("sent by kind adds up to %d, sent %d", byKind, res.Sent)
	}

	// Every message reached the echo, and every one is marked.
	st := srv.Stats()[addr]
	if st["flood"] != 400 {
		t.Errorf("echo counted %d flood-marked messages, want 400: %v", st["flood"], st)
	}
	var total uint64
	for k, n := range st {
		if k != "flood" {
			total += n
		}
	}
	if total != 400 {
		t.Errorf("echo got %d messages, want 400: %v", total, st)
	}
	// What the echo answered came back to the sources.
	if want := 3*st["INVITE"] + st["REGISTER"] + st["OPTIONS"]; res.Replies != want {
		t.Errorf("replies %d, want %d (3 per INVITE, 1 per REGISTER and OPTIONS): %v", res.Replies, want, res.RepliesByClass)
	}
	if res.RepliesByClass["1xx"] == 0 || res.RepliesByClass["2xx"] == 0 {
		t.Errorf("replies by class %v, want 1xx and 2xx", res.RepliesByClass)
	}
	if !strings.Contains(stdout.String(), "total") || !strings.Contains(stdout.String(), "400 messages to "+addr) {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func TestFloodEndsAtDuration(t *testing.T) {
	_, addr := startEcho(t)
	c := config{target: netip.MustParseAddrPort(addr), src: netip.MustParseAddr("127.0.0.2"), sources: 2,
		mix: mix{1, 1, 1, 1}, duration: 200 * time.Millisecond, batch: 32}
	start := time.Now()
	res, err := flood(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a 200ms flood took %v", d)
	}
	if res.Sent == 0 {
		t.Error("nothing sent")
	}
}

func TestRefusesWhatIsNotLoopback(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "IPv4 target", args: []string{"-target", "192.0.2.1:5060"}},
		{name: "private target", args: []string{"-target", "10.0.0.1:5060"}},
		{name: "unspecified target", args: []string{"-target", "0.0.0.0:5060"}},
		{name: "IPv6 target", args: []string{"-target", "[2001:db8::1]:5060"}},
		{name: "mapped IPv4 target", args: []string{"-target", "[::ffff:192.0.2.1]:5060"}},
		{name: "source", args: []string{"-target", "127.0.0.1:5060", "-src", "192.0.2.1"}},
		{name: "sources run past 127/8", args: []string{"-target", "127.0.0.1:5060", "-src", "127.255.255.254", "-sources", "4"}},
		{name: "IPv6 sources past ::1", args: []string{"-target", "[::1]:5060", "-src", "::1", "-sources", "2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if rc := run(append(tc.args, "-duration", "100ms"), &stdout, &stderr); rc != 2 {
				t.Errorf("exit %d, want 2; stderr %q", rc, stderr.String())
			}
			if !strings.Contains(stderr.String(), "loopback") {
				t.Errorf("stderr %q does not say why", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q: something was sent", stdout.String())
			}
		})
	}
	// flood itself refuses too, whoever calls it.
	c := config{target: netip.MustParseAddrPort("192.0.2.1:5060"), src: netip.MustParseAddr("127.0.0.2"),
		sources: 1, mix: mix{1}, duration: time.Second, batch: 1}
	if _, err := flood(t.Context(), c); !errors.Is(err, errNotLoopback) {
		t.Errorf("flood to 192.0.2.1: %v, want errNotLoopback", err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-target", "localhost:5060"},
		{"-duration", "0s"},
		{"-sources", "0"},
		{"-batch", "0"},
		{"-batch", "5000"},
		{"-mix", "invite=x"},
		{"-mix", "bogus"},
		{"-mix", "invite=0"},
		{"-rate", "-1"},
		{"-target", "127.0.0.1:5060", "-src", "::1"},
	} {
		var stdout, stderr bytes.Buffer
		if rc := run(args, &stdout, &stderr); rc != 2 {
			t.Errorf("run(%q): exit %d, want 2", args, rc)
		}
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in      string
		want    mix
		wantErr bool
	}{
		{in: defaultMix, want: mix{1, 1, 1, 1}},
		{in: "invite=3, garbage=1", want: mix{3, 0, 1, 0}},
		{in: "scanner,scanner", want: mix{0, 0, 0, 2}},
		{in: "", wantErr: true},
		{in: "invite=0", wantErr: true},
		{in: "invite=70000", wantErr: true},
		{in: "options", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseMix(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("parseMix(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, errMix) {
			t.Errorf("parseMix(%q): %v is not errMix", tc.in, err)
		}
	}
}

func TestMessages(t *testing.T) {
	src := netip.MustParseAddrPort("127.0.0.2:40000")
	dst := netip.MustParseAddrPort("127.0.0.1:5060")
	tests := []struct {
		kind   kind
		method string
		check  func(t *testing.T, m *sipwire.Msg, raw string)
	}{
		{kind: kInvite, method: "INVITE", check: func(t *testing.T, m *sipwire.Msg, raw string) {
			if !strings.Contains(raw, "Content-Length: "+strconv.Itoa(len(m.Body))+"\r\n") || len(m.Body) == 0 {
				t.Errorf("body of %d bytes does not match its Content-Length:\n%s", len(m.Body), raw)
			}
			if strings.Contains(raw, "User-Agent") {
				t.Error("an INVITE with a User-Agent: the flood detector alone must stop these")
			}
		}},
		{kind: kRegister, method: "REGISTER", check: func(t *testing.T, m *sipwire.Msg, raw string) {
			if string(sipwire.URI(m.From)) != string(sipwire.URI(m.To)) {
				t.Errorf("From %q and To %q differ", m.From, m.To)
			}
		}},
		{kind: kScanner, method: "OPTIONS", check: func(t *testing.T, m *sipwire.Msg, raw string) {
			ua := raw[strings.Index(raw, "User-Agent: ")+len("User-Agent: "):]
			ua = ua[:strings.Index(ua, "\r\n")]
			found := false
			for _, a := range scannerAgents {
				found = found || a == ua
			}
			if !found {
				t.Errorf("User-Agent %q is not a scanner's", ua)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(kindNames[tc.kind], func(t *testing.T) {
			var w mix
			w[tc.kind] = 1
			g := newGen(src, dst, w, 1)
			seen := map[string]bool{}
			for i := range 20 {
				buf := make([]byte, maxMessage)
				k, n := g.next(buf)
				if k != tc.kind {
					t.Fatalf("kind %d, want %d", k, tc.kind)
				}
				raw := string(buf[:n])
				m := new(sipwire.Msg)
				if !sipwire.Scan(m, buf[:n]) || !m.Request || string(m.Method) != tc.method {
					t.Fatalf("message %d does not scan as %s:\n%s", i, tc.method, raw)
				}
				if !strings.HasPrefix(string(m.CallID), echo.FloodMark) {
					t.Errorf("Call-ID %q lacks the mark", m.CallID)
				}
				if len(m.Vias) != 1 || !strings.Contains(string(m.Vias[0]), src.String()) {
					t.Errorf("Via %q does not name the source", m.Vias)
				}
				seen[string(m.CallID)] = true
				tc.check(t, m, raw)
			}
			if len(seen) != 20 {
				t.Errorf("%d distinct Call-IDs in 20 messages", len(seen))
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		g := newGen(src, dst, mix{0, 0, 1, 0}, 1)
		var cut, random int
		for range 200 {
			buf := make([]byte, maxMessage)
			k, n := g.next(buf)
			if k != kGarbage || n < len("INVITE sip:")+len(echo.FloodMark) || n > maxMessage {
				t.Fatalf("kind %d, length %d", k, n)
			}
			if !bytes.Contains(buf[:n], []byte(echo.FloodMark)) {
				t.Fatalf("garbage without the mark: %q", buf[:n])
			}
			if bytes.HasPrefix(buf[:n], []byte("INVITE sip:"+echo.FloodMark)) {
				cut++
			} else {
				random++
			}
		}
		if cut == 0 || random == 0 {
			t.Errorf("garbage: %d cut INVITEs, %d random, want both", cut, random)
		}
	})
}
