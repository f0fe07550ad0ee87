package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/parser"
)

// updateGolden rewrites testdata/process_golden.txt from the code as it is.
var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/process_golden.txt")

// TestProcessGolden pins every byte Process writes, and where it sends it,
// for a corpus of messages and thousands of deterministic mutations of them,
// through one reused Scratch per Forwarder (so state left by one message
// that leaks into the next shows too). The digests were taken from the code
// before the hot-path work of issue 15: a speed-up that changes any output
// fails here. SIPLB_GOLDEN_DUMP=dir writes each case's result, to diff two
// versions.
func TestProcessGolden(t *testing.T) {
	got := goldenDigests(t)
	path := filepath.Join("testdata", "process_golden.txt")
	if *updateGolden {
		var b strings.Builder
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %s\n", k, got[k])
		}
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok {
			want[k] = v
		}
	}
	if len(want) != len(got) {
		t.Errorf("%d groups, golden file has %d", len(got), len(want))
	}
	for k, v := range got {
		if want[k] != v {
			t.Errorf("%s: digest %s, golden %s", k, v, want[k])
		}
	}
}

// goldenBases are the messages the mutations start from, each sent by the
// client or by a backend.
func goldenBases(t *testing.T, f *Forwarder, fx fixture) map[string][]byte {
	rr, top := "", ""
	inv := fx.invite("gold@x", "z9hG4bKgold")
	if r := f.Process(f.NewScratch(), inv, fx.client, f.Legs()[0]); r.Out != nil {
		var m parser.Message
		if err := parser.Parse(&m, bytes.Clone(r.Out)); err == nil {
			if v, err := m.RecordRoute(0); err == nil {
				rr = string(v.Raw)
			}
		}
		if i := bytes.Index(r.Out, []byte("branch=")); i >= 0 {
			j := i + 7
			for j < len(r.Out) && r.Out[j] != ';' && r.Out[j] != '\r' {
				j++
			}
			top = string(r.Out[i+7 : j])
		}
	}
	resp := sip("SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP "+fx.leg+";branch="+top+";rport=5060",
		"Via: SIP/2.0/UDP "+fx.client.String()+";branch=z9hG4bKgold;rport="+itoa(int(fx.client.Port()))+";received="+fx.client.Addr().String(),
		"Record-Route: <"+rr+">",
		"From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Contact: <sip:bob@"+fx.backends[0].String()+">",
		"Call-ID: gold@x", "CSeq: 1 INVITE", "Content-Length: 0")
	bye := sip("BYE sip:alice@"+fx.client.String()+" SIP/2.0",
		"Via: SIP/2.0/UDP "+fx.backends[0].String()+";branch=z9hG4bKbb1",
		"Route: <"+rr+">",
		"Max-Forwards: 70", "From: <sip:bob@example.com>;tag=b1", "To: <sip:alice@example.com>;tag=a1",
		"Call-ID: gold@x", "CSeq: 2 BYE", "Content-Length: 0")
	reg := sip("REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP "+fx.client.String()+";branch=z9hG4bKreg1;rport",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=r1", "To: <sip:alice@example.com>",
		"Call-ID: reg@x", "CSeq: 3 REGISTER", "Supported: path, outbound",
		"Contact: <sip:alice@"+fx.client.String()+">;expires=3600", "Content-Length: 0")
	opt := sip("OPTIONS sip:"+fx.leg+" SIP/2.0",
		"Via: SIP/2.0/UDP "+fx.client.String()+";branch=z9hG4bKopt1",
		"Max-Forwards: 70", "From: <sip:alice@example.com>;tag=o1", "To: <sip:"+fx.leg+">",
		"Call-ID: opt@x", "CSeq: 4 OPTIONS", "Content-Length: 0")
	inDialog := sip("INFO sip:bob@"+fx.backends[1].String()+" SIP/2.0",
		"Via: SIP/2.0/UDP "+fx.client.String()+";branch=z9hG4bKinfo;received=10.0.0.1;rport=9",
		"Via: SIP/2.0/TCP 192.0.2.4:5080;branch=z9hG4bKup",
		"Route: <sip:"+fx.leg+";lr>, <sip:bob@"+fx.backends[1].String()+">",
		"Max-Forwards: 7", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
		"Call-ID: gold@x", "CSeq: 5 INFO", "Proxy-Require: foo",
		"Content-Type: application/dtmf-relay", "Content-Length: 24", "", "Signal=1\r\nDuration=160")
	bases := map[string][]byte{"invite": inv, "response": resp, "bye": bye, "register": reg, "options": opt, "indialog": inDialog}
	for _, dir := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("..", "parser", "testdata", dir, "*.sip"))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			bases[dir+"/"+strings.TrimSuffix(filepath.Base(p), ".sip")] = b
		}
	}
	return bases
}

// goldenHeaders are lines the mutations insert.
var goldenHeaders = []string{
	"Route: <sip:127.0.0.1:5060;lr>", "Route: <sip:[::1]:5060;lr>", "Route: <sip:127.0.0.1:5070>",
	"Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.1:5071;lr>", "Record-Route: <sip:p.example.com;lr>",
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport", "v: SIP/2.0/TCP h;branch=z9hG4bKy, SIP/2.0/UDP g",
	"Max-Forwards: 0", "Max-Forwards: 1", "Supported: path", "Proxy-Require: foo", "Require: 100rel",
	"Contact: <sip:c@192.0.2.9:5999;transport=tcp>", "m: sip:x@y", "Contact: *",
	"Content-Length: 0", "l: 5", "Replaces: abc@h;to-tag=1;from-tag=2", "Join: j@h;to-tag=1;from-tag=2",
	"Refer-To: <sip:x@y?Replaces=r%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>", "To: <sip:z@z>;tag=zz",
	"Call-ID: other@x", "CSeq: 9 INVITE", "From: <sip:q@q>", "Date: Sat, 13 Nov 2010 23:29:00 GMT",
	"X-Pad: " + strings.Repeat("p", 300), " folded continuation", "Session-Expires: 90",
}

var goldenBytes = []byte(" ;,:<>\"\r\n\t=@A09z?%[]\x00\x80\xff")

// mutate returns a deterministic variant of b.
func mutate(r *rand.Rand, b []byte) []byte {
	out := bytes.Clone(b)
	for n := 1 + r.IntN(3); n > 0; n-- {
		if len(out) == 0 {
			return out
		}
		switch r.IntN(8) {
		case 0: // a byte replaced
			out[r.IntN(len(out))] = goldenBytes[r.IntN(len(goldenBytes))]
		case 1: // a byte removed
			i := r.IntN(len(out))
			out = append(out[:i:i], out[i+1:]...)
		case 2: // a byte inserted
			i := r.IntN(len(out) + 1)
			out = append(out[:i:i], append([]byte{goldenBytes[r.IntN(len(goldenBytes))]}, out[i:]...)...)
		case 3, 4: // a header line inserted after a random line
			lines := bytes.SplitAfter(out, []byte("\r\n"))
			i := 1 + r.IntN(max(1, len(lines)-2))
			if i > len(lines) {
				i = len(lines)
			}
			h := []byte(goldenHeaders[r.IntN(len(goldenHeaders))] + "\r\n")
			lines = append(lines[:i:i], append([][]byte{h}, lines[i:]...)...)
			out = bytes.Join(lines, nil)
		case 5: // a line removed or doubled
			lines := bytes.SplitAfter(out, []byte("\r\n"))
			if len(lines) < 3 {
				break
			}
			i := 1 + r.IntN(len(lines)-2)
			if r.IntN(2) == 0 {
				lines = append(lines[:i:i], lines[i+1:]...)
			} else {
				lines = append(lines[:i+1:i+1], lines[i:]...)
			}
			out = bytes.Join(lines, nil)
		case 6: // a header name's case changed
			lines := bytes.SplitAfter(out, []byte("\r\n"))
			i := r.IntN(len(lines))
			if c := bytes.IndexByte(lines[i], ':'); c > 0 {
				if r.IntN(2) == 0 {
					copy(lines[i], bytes.ToUpper(lines[i][:c]))
				} else {
					copy(lines[i], bytes.ToLower(lines[i][:c]))
				}
			}
			out = bytes.Join(lines, nil)
		case 7: // cut
			out = out[:r.IntN(len(out)+1)]
		}
	}
	return out
}

// goldenDigests runs the corpus through Forwarders of several configurations
// and returns a digest of the results per configuration and base message.
func goldenDigests(t *testing.T) map[string]string {
	type cfg struct {
		name string
		fx   fixture
		mk   func(t *testing.T) *Forwarder
	}
	pool4 := func(alg balance.Algorithm) balance.PoolConfig {
		pc := balance.PoolConfig{Name: "farm", Algorithm: alg}
		for _, a := range backends {
			pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a, Transport: balance.UDP, Weight: 1, Priority: 1})
		}
		return pc
	}
	const secret = "golden-secret-0123456789abcdef"
	cfgs := []cfg{
		{"v4", fixture4, func(t *testing.T) *Forwarder {
			return newPoolForwarder(t, pool4(balance.HashCallID), Config{BranchSecret: secret})
		}},
		{"v4-rewrite", fixture4, func(t *testing.T) *Forwarder {
			return newPoolForwarder(t, pool4(balance.HashCallID), Config{BranchSecret: secret, RewriteContact: true, ForceRewrite: true,
				Legs: []LegConfig{{Transport: balance.UDP, Addr: legAddr}, {Transport: balance.TCP, Addr: netip.MustParseAddrPort("127.0.0.1:5062")}}})
		}},
		{"v4-norr", fixture4, func(t *testing.T) *Forwarder {
			return newPoolForwarder(t, pool4(balance.HashCallID), Config{BranchSecret: secret, DisableRecordRoute: true, ProxyRequire: []string{"foo"}})
		}},
		{"v6", fixture6, func(t *testing.T) *Forwarder {
			pc := balance.PoolConfig{Name: "farm"}
			for _, a := range fixture6.backends {
				pc.Backends = append(pc.Backends, balance.BackendConfig{Addr: a})
			}
			return newPoolForwarder(t, pc, Config{BranchSecret: secret, Legs: []LegConfig{{Transport: balance.UDP, Addr: netip.MustParseAddrPort("[::1]:5060")}}})
		}},
	}
	dump := os.Getenv("SIPLB_GOLDEN_DUMP")
	res := map[string]string{}
	for _, c := range cfgs {
		f := c.mk(t)
		startClock(f)
		bases := goldenBases(t, f, c.fx)
		names := make([]string, 0, len(bases))
		for n := range bases {
			names = append(names, n)
		}
		sort.Strings(names)
		s := f.NewScratch()
		srcs := []netip.AddrPort{c.fx.client, c.fx.backends[0], c.fx.natted}
		var dw *bufio.Writer
		if dump != "" {
			df, err := os.Create(filepath.Join(dump, c.name+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			defer df.Close()
			dw = bufio.NewWriter(df)
			defer dw.Flush()
		}
		for _, n := range names {
			r := rand.New(rand.NewPCG(uint64(len(n)), binary.LittleEndian.Uint64([]byte(n + "\x00\x00\x00\x00\x00\x00\x00\x00")[:8])))
			h := sha256.New()
			count := 1500 // the data path's own messages
			if strings.Contains(n, "/") {
				count = 120 // the parser's corpus
			}
			for k := range count {
				in := bases[n]
				if k > 0 {
					in = mutate(r, in)
				}
				src := srcs[k%len(srcs)]
				res := f.Process(s, in, src, f.Legs()[0])
				leg := -1
				if res.Leg != nil {
					leg = res.Leg.Index
				}
				line := fmt.Sprintf("%s #%d drop=%d status=%d to=%v leg=%d conn=%d resolve=%v out=%q\n",
					n, k, res.Drop, res.Status, res.To, leg, res.Conn, res.Resolve != nil, res.Out)
				h.Write([]byte(line))
				if dw != nil {
					dw.WriteString(line)
				}
			}
			res[c.name+"/"+n] = hex.EncodeToString(h.Sum(nil)[:12])
		}
	}
	return res
}
