package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/siplb/siplb/balance"
	"github.com/siplb/siplb/engine"
	"github.com/siplb/siplb/parser"
)

const clusterBase = "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n"

func TestClusterConfigErrors(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(clusterKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		want string // substring of the error; "" for valid
	}{
		{name: "off by default", in: ""},
		{name: "off ignores the rest", in: "cluster:\n  bind: 10.0.0.1:7946\n"},
		{name: "loopback, no key, no shared secrets", in: "cluster:\n  enabled: true\n  bind: 127.0.0.1:7946\n  share_secrets: false\n"},
		{name: "keyed on any address", in: "cluster:\n  enabled: true\n  key: " + clusterKey + "\n  join: [siplb-peers.default.svc.cluster.local, 10.0.0.2:7946, 10.0.0.3]\n"},
		{name: "key file", in: "cluster:\n  enabled: true\n  key_file: " + keyFile + "\n"},
		{name: "default bind needs a key", in: "cluster:\n  enabled: true\n",
			want: "line 7: cluster.key: is required: cluster.bind 0.0.0.0:7946 is not a loopback address"},
		{name: "shared secrets need a key", in: "cluster:\n  enabled: true\n  bind: 127.0.0.1:7946\n",
			want: "cluster.share_secrets: needs cluster.key or cluster.key_file: the branch secrets only travel encrypted"},
		{name: "bad bind", in: "cluster:\n  enabled: true\n  bind: 127.0.0.1\n  key: " + clusterKey + "\n",
			want: "line 9: cluster.bind: want IP:PORT"},
		{name: "bad advertise", in: "cluster:\n  enabled: true\n  advertise: 0.0.0.0:7946\n  key: " + clusterKey + "\n",
			want: "line 9: cluster.advertise: want a specific IP"},
		{name: "bad join", in: "cluster:\n  enabled: true\n  key: " + clusterKey + "\n  join: [10.0.0.2:7946, \"peer:x\"]\n",
			want: `line 10: cluster.join[1]: want IP:PORT or host[:port], got "peer:x"`},
		{name: "key not base64", in: "cluster:\n  enabled: true\n  key: not*base64\n",
			want: "line 9: cluster.key: want the base64 of 16, 24 or 32 bytes"},
		{name: "key of the wrong size", in: "cluster:\n  enabled: true\n  key: MDEyMzQ1Njc4\n",
			want: "cluster.key: want the base64 of 16, 24 or 32 bytes, got 9 bytes"},
		{name: "key and key file", in: "cluster:\n  enabled: true\n  key: " + clusterKey + "\n  key_file: " + keyFile + "\n",
			want: "line 10: cluster.key_file: set cluster.key or cluster.key_file, not both"},
		{name: "previous key without a key", in: "cluster:\n  enabled: true\n  bind: 127.0.0.1:7946\n  share_secrets: false\n  previous_keys: [" + clusterKey + "]\n",
			want: "cluster.previous_keys: needs cluster.key"},
		{name: "name with a blank", in: "cluster:\n  enabled: true\n  name: lb 1\n  key: " + clusterKey + "\n",
			want: "line 9: cluster.name: want at most 128 characters and no blanks"},
		{name: "unknown key", in: "cluster:\n  enabled: true\n  joins: [x]\n", want: "line 9: field joins not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(clusterBase + tc.in))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("parseConfig: %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("parseConfig: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestClusterReloadNeedsRestart: the cluster block is read at the start
// only; a reload that changes it is refused naming the key.
func TestClusterReloadNeedsRestart(t *testing.T) {
	running, err := parseConfig([]byte(clusterBase + "cluster:\n  enabled: true\n  key: " + clusterKey + "\n  join: [10.0.0.2]\n"))
	if err != nil {
		t.Fatal(err)
	}
	next, doc, err := parseConfigDoc([]byte(clusterBase + "cluster:\n  enabled: true\n  key: " + clusterKey + "\n  join: [10.0.0.3]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := needsRestart(running, next, doc); err == nil || !strings.Contains(err.Error(), "cluster.join") {
		t.Errorf("needsRestart = %v, want cluster.join named", err)
	}
}

// TestRotationPeers: two instances with different branch secrets (behind
// one anycast address, so with the same leg): a response to a branch one
// minted is routed by the other once the cluster gave it the first's ring,
// and no longer when the ring is gone; each tells the cluster its own
// ring, never the peers'.
func TestRotationPeers(t *testing.T) {
	be := netip.MustParseAddrPort("127.0.0.1:5070")
	leg := netip.MustParseAddrPort("127.0.0.1:5060")
	newFwd := func() *engine.Forwarder {
		bal, err := balance.New([]balance.PoolConfig{{Name: "p", Backends: []balance.BackendConfig{{Addr: be}}}})
		if err != nil {
			t.Fatal(err)
		}
		fwd, err := engine.NewForwarder(engine.Config{Legs: []engine.LegConfig{{Transport: balance.UDP, Addr: leg}}}, bal)
		if err != nil {
			t.Fatal(err)
		}
		return fwd
	}
	fa, fb := newFwd(), newFwd()
	log := slog.New(slog.DiscardHandler)
	ra := newRotation(fa, "secret-of-A-0123456789", nil, log)
	defer ra.stop()
	rb := newRotation(fb, "secret-of-B-0123456789", []string{"old-of-B-0123456789"}, log)
	defer rb.stop()
	var told [][]string
	rb.share(func(ring []string) { told = append(told, slices.Clone(ring)) })

	client := netip.MustParseAddrPort("127.0.0.1:40000")
	inv := strings.Join([]string{"INVITE sip:b@example.com SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKpeer;rport",
		"Max-Forwards: 70", "From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>", "Call-ID: peer@x", "CSeq: 1 INVITE",
		"Content-Length: 0", "", ""}, "\r\n")
	out := fa.Process(fa.NewScratch(), []byte(inv), client, fa.Legs()[0])
	if out.Out == nil {
		t.Fatalf("INVITE dropped: %v", out.Drop)
	}
	resp := bytes.Replace(bytes.Clone(out.Out), []byte("INVITE sip:b@example.com SIP/2.0"), []byte("SIP/2.0 180 Ringing"), 1)
	var m parser.Message
	if err := parser.Parse(&m, resp); err != nil {
		t.Fatal(err)
	}
	routedByB := func() bool { return fb.Process(fb.NewScratch(), resp, be, fb.Legs()[0]).To == client }
	if routedByB() {
		t.Fatal("B routes a branch of A's secret without A's ring: the test proves nothing")
	}
	rb.setPeers([]string{"secret-of-A-0123456789"})
	if !routedByB() {
		t.Error("with A's ring from the cluster, B refuses A's branch")
	}
	rb.setPeers(nil)
	if routedByB() {
		t.Error("after A's ring left, B still routes A's branch")
	}
	want := []string{"secret-of-B-0123456789", "old-of-B-0123456789"}
	if len(told) == 0 {
		t.Fatal("B never told the cluster its ring")
	}
	for _, ring := range told {
		if !slices.Equal(ring, want) {
			t.Errorf("B told the cluster %q, want its own ring %q", ring, want)
		}
	}
}

func TestCtlClusterOff(t *testing.T) {
	var out, errb bytes.Buffer
	admin := startTestAdmin(t, farmPools(), "", nil)
	if code := run([]string{"ctl", "--admin", admin.url, "cluster"}, &out, &errb); code != ctlOK {
		t.Fatalf("ctl cluster: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "cluster: off") {
		t.Errorf("ctl cluster without a cluster printed %q", out.String())
	}
}

// The configuration in examples/kubernetes/siplb.yaml's ConfigMap is valid
// (with the Secrets' files replaced by values).
func TestKubernetesExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../../examples/kubernetes/siplb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "  siplb.yaml: |\n")
	if !ok {
		t.Fatal("no siplb.yaml in the ConfigMap")
	}
	var cfg []string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "    ") && line != "" {
			break
		}
		cfg = append(cfg, strings.TrimPrefix(line, "    "))
	}
	text := strings.Join(cfg, "\n")
	text = strings.Replace(text, "key_file: /etc/siplb/cluster/key", "key: "+clusterKey, 1)
	text = strings.Replace(text, "token_file: /etc/siplb/admin/token", "token: example-token", 1)
	c, err := parseConfig([]byte(text))
	if err != nil {
		t.Fatalf("the ConfigMap's configuration: %v\n%s", err, text)
	}
	if !c.Cluster.Enabled || len(c.Cluster.Join) != 1 {
		t.Errorf("cluster = %+v, want enabled, joining the headless Service", c.Cluster)
	}
}
