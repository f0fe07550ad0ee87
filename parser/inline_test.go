package parser

import (
	"os/exec"
	"regexp"
	"testing"
)

// TestInlining pins the accessors that the forwarding path calls per
// message as inlinable, in the manner of net/netip's inlining test: a
// change that pushes one over the inlining budget fails here instead of
// showing up as a slower engine.
func TestInlining(t *testing.T) {
	out, err := exec.Command(goTool(t), "build", "-gcflags=-m", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	got := map[string]bool{}
	for _, m := range regexp.MustCompile(`can inline (\S+)`).FindAllSubmatch(out, -1) {
		got[string(m[1])] = true
	}
	for _, fn := range []string{
		"(*Message).CallID",
		"(*Message).ToTag",
		"(*Message).FromTag",
		"(*Message).Method",
		"(*Message).IsRequest",
		"(*Message).StatusCode",
		"(*Message).CSeq",
		"(*Message).MaxForwards",
		"(*Message).ContentLength",
		"(*Message).Body",
		"(*Message).list",
		"span.bytes",
		"hasPrefix",
		"ctlMask",
		"equalFold",
		"skipWS",
	} {
		if !got[fn] {
			t.Errorf("%s is no longer inlinable", fn)
		}
	}
}

// TestInliningPGO pins what the shipped build's profile (cmd/siplb's
// default.pgo, which go build uses for siplb) makes inlinable beyond the
// normal budget and the response path depends on: ViaIter.next, under the
// hot-call budget since parseVia left the rare protocol spellings to
// parseProtocol, is inlined into Forwarder.response (about 50 ns of
// BenchmarkProcess/response). A change to parseVia or a refreshed profile
// that loses it fails here.
func TestInliningPGO(t *testing.T) {
	out, err := exec.Command(goTool(t), "build", "-pgo=../cmd/siplb/default.pgo", "-gcflags=-m", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -pgo -gcflags=-m: %v\n%s", err, out)
	}
	got := map[string]bool{}
	for _, m := range regexp.MustCompile(`can inline (\S+)`).FindAllSubmatch(out, -1) {
		got[string(m[1])] = true
	}
	for _, fn := range []string{"(*ViaIter).next", "(*ViaIter).Next"} {
		if !got[fn] {
			t.Errorf("%s is no longer inlinable in the profile-guided build", fn)
		}
	}
}
