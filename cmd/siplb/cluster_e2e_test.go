package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// clusterKey is the gossip key of the tests' clusters (base64 of 32 bytes).
const clusterKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// freeGossipPort returns a loopback port free for both UDP and TCP, as
// memberlist binds both.
func freeGossipPort(t *testing.T) int {
	t.Helper()
	return freePort(t, func(addr string) (io.Closer, error) {
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return nil, err
		}
		pc, err := net.ListenPacket("udp4", addr)
		ln.Close()
		return pc, err
	})
}

// member is one siplb of a test cluster, run in-process.
type member struct {
	name   string
	sip    netip.AddrPort
	admin  string
	logs   *syncBuffer
	cancel context.CancelFunc
	errc   chan error
}

// stop cancels the member's serve (it leaves the cluster) and waits.
func (m *member) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.errc:
		if err != nil {
			t.Errorf("%s: serve: %v", m.name, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: serve did not stop within 10s", m.name)
	}
}

// startMembers starts n siplb members on 127.0.0.1, each joining all
// of them, over the given backends, with probing at interval 1s, timeout
// 300ms, fall 1.
func startMembers(t *testing.T, n int, backends []*backend) []*member {
	t.Helper()
	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = fmt.Sprintf("127.0.0.1:%d", freeGossipPort(t))
	}
	var ms []*member
	for i := range n {
		m := &member{name: fmt.Sprintf("lb-%d", i+1), sip: netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))),
			admin: fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)), logs: &syncBuffer{}, errc: make(chan error, 1)}
		var b strings.Builder
		fmt.Fprintf(&b, "listen:\n  - address: udp://%s\n", m.sip)
		b.WriteString("pools:\n  - name: farm\n    algorithm: hash-callid\n")
		b.WriteString("    health: {interval: 1s, timeout: 300ms, fall: 1, rise: 1, down_interval: 500ms}\n    backends:\n")
		for _, be := range backends {
			fmt.Fprintf(&b, "      - {address: %s}\n", be.url())
		}
		fmt.Fprintf(&b, "admin:\n  listen: %s\n", m.admin)
		fmt.Fprintf(&b, "engine:\n  branch_secret: secret-of-%s-0123456789\n", m.name)
		fmt.Fprintf(&b, "cluster:\n  enabled: true\n  name: %s\n  bind: %s\n  key: %s\n  join: [%s]\n", m.name, gossip[i], clusterKey, strings.Join(gossip, ", "))
		path := filepath.Join(t.TempDir(), "siplb.yaml")
		writeFileAtomic(t, path, []byte(b.String()))
		cfg, err := loadConfig(path)
		if err != nil {
			t.Fatalf("configuration: %v\n%s", err, b.String())
		}
		log := slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		ctx, cancel := context.WithCancel(context.Background())
		m.cancel = cancel
		go func() { m.errc <- serve(ctx, cfg, path, path, log) }()
		t.Cleanup(func() { m.stop(t) })
		ms = append(ms, m)
	}
	return ms
}

// clusterOf fetches /api/v1/cluster.
func clusterOf(admin string) (clusterInfo, error) {
	var ci clusterInfo
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + admin + "/api/v1/cluster")
	if err != nil {
		return ci, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ci, fmt.Errorf("/api/v1/cluster: %s", resp.Status)
	}
	return ci, json.NewDecoder(resp.Body).Decode(&ci)
}

// owners maps backend → member that probes it, as admin sees it.
func owners(t *testing.T, admin string) map[string]string {
	t.Helper()
	ci, err := clusterOf(admin)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range ci.Probing {
		out[p.Backend] = p.Owner
	}
	return out
}

// waitAll polls until ok holds for every member's /backends, for up to
// limit, and returns how long that took.
func waitAll(t *testing.T, ms []*member, limit time.Duration, what string, ok func([]backendsJSON) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for _, m := range ms {
		waitBackends(t, m.admin, limit-time.Since(start), what+" on "+m.name, ok)
	}
	return time.Since(start)
}

func stateIs(addr netip.AddrPort, state string) func([]backendsJSON) bool {
	return func(bs []backendsJSON) bool {
		e, ok := entry(bs, addr)
		return ok && e.State == state
	}
}

func postAction(t *testing.T, admin, pool string, addr netip.AddrPort, action string) {
	t.Helper()
	resp, err := http.Post("http://"+admin+"/api/v1/backends/"+pool+"/"+addr.String()+"/"+action, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", action, addr, resp.Status)
	}
}

// TestClusterSameDecisionEverywhere: three siplb members sharing health and
// drains over memberlist, three UDP backends. The messages of one dialog
// sent through different members reach one backend; every Call-ID maps to
// the same backend through every member; a drain set on one member holds
// on all within a second; a backend that dies is out of rotation on every
// member within one probe interval plus a second; each backend is probed by
// one member; and the probing of a member that stops moves to the others.
func TestClusterSameDecisionEverywhere(t *testing.T) {
	bes := []*backend{startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")}
	byAddr := map[string]*backend{}
	for _, b := range bes {
		byAddr[b.addr.String()] = b
	}
	ms := startMembers(t, 3, bes)
	clients := make([]*client, len(ms))
	for i, m := range ms {
		clients[i] = newClient(t, m.sip)
		waitServing(t, clients[i])
	}
	// All three see each other, and agree on who probes what.
	deadline := time.Now().Add(15 * time.Second)
	for _, m := range ms {
		for {
			ci, err := clusterOf(m.admin)
			alive := 0
			for _, mem := range ci.Members {
				if mem.State == "alive" {
					alive++
				}
			}
			if err == nil && alive == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: cluster not formed within 15s: %+v (err %v)", m.name, ci, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	own := owners(t, ms[0].admin)
	for _, m := range ms[1:] {
		if got := owners(t, m.admin); !mapsEqual(got, own) {
			t.Fatalf("owners differ: lb-1 %v, %s %v", own, m.name, got)
		}
	}
	t.Logf("probing: %v", own)
	var out, errb bytes.Buffer
	if code := run([]string{"ctl", "--admin", ms[0].admin, "cluster"}, &out, &errb); code != ctlOK {
		t.Fatalf("ctl cluster: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"cluster member lb-1", "lb-1 (self)", "lb-3", "alive", "PROBED BY", "ring", "lb-2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ctl cluster does not show %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "secret-of-") {
		t.Errorf("ctl cluster shows branch secrets:\n%s", out.String())
	}
	resp, err := http.Get("http://" + ms[0].admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`siplb_cluster_members{state="alive"} 3`, "siplb_cluster_facts_refused_total 0", "siplb_cluster_backends_probed "} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Each member verifies the others' secrets (their rings came over
	// gossip): three ring facts everywhere.
	for _, m := range ms {
		deadline := time.Now().Add(3 * time.Second)
		for {
			ci, err := clusterOf(m.admin)
			rings := 0
			for _, f := range ci.Facts {
				if f.Kind == "ring" {
					rings++
				}
			}
			if err == nil && rings == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d ring facts after 3s, want 3 (err %v)", m.name, rings, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Probing is split: each backend hears about one probe a second, not
	// one from each member.
	before := make([]int, len(bes))
	for i, b := range bes {
		before[i] = b.answered()
	}
	time.Sleep(4 * time.Second)
	for i, b := range bes {
		if n := b.answered() - before[i]; n > 6 {
			t.Errorf("backend %s answered %d probes in 4s at interval 1s: probed by more than one member", b.addr, n)
		}
	}

	r := retry{tries: 3, wait: 500 * time.Millisecond}
	// One dialog through three members: INVITE via lb-1 (and its
	// retransmissions via lb-2 and lb-3), ACK via lb-2, re-INVITE via
	// lb-3, BYE via lb-1.
	d, err := clients[0].invite("cluster-dialog", r)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients[1:] {
		d2, err := c.invite("cluster-dialog", r)
		if err != nil {
			t.Fatal(err)
		}
		if d2.target != d.target {
			t.Fatalf("the INVITE of one Call-ID reached %s through lb-1 and %s through another", d.target, d2.target)
		}
	}
	via := func(i int) *dialog { d2 := *d; d2.c = clients[i]; return &d2 }
	if err := clients[1].send(via(1).request("ACK", 1)); err != nil {
		t.Fatal(err)
	}
	// The ACK has no answer: wait for it to arrive before the re-INVITE,
	// which another member may well forward first.
	acked := time.Now().Add(2 * time.Second)
	for !slices.Contains(byAddr[d.target].methods(d.callID), "ACK") && time.Now().Before(acked) {
		time.Sleep(10 * time.Millisecond)
	}
	if resp, _, err := clients[2].transact(via(2).request("INVITE", 2), d.callID, "INVITE", r.tries, r.wait); err != nil || !strings.HasPrefix(string(resp), "SIP/2.0 200 ") {
		t.Fatalf("re-INVITE via lb-3: %v %q", err, firstLine(resp))
	}
	if resp, _, err := clients[0].transact(via(0).request("BYE", 3), d.callID, "BYE", r.tries, r.wait); err != nil || !strings.HasPrefix(string(resp), "SIP/2.0 200 ") {
		t.Fatalf("BYE via lb-1: %v %q", err, firstLine(resp))
	}
	want := []string{"INVITE", "INVITE", "INVITE", "ACK", "INVITE", "BYE"}
	for _, b := range bes {
		got := b.methods("cluster-dialog")
		if b.addr.String() == d.target {
			if !slices.Equal(got, want) {
				t.Errorf("the dialog's backend %s saw %v, want %v", b.addr, got, want)
			}
		} else if len(got) > 0 {
			t.Errorf("backend %s saw %v of a dialog that belongs to %s", b.addr, got, d.target)
		}
	}

	// Every Call-ID reaches the same backend through every member.
	targets := map[string]string{} // Call-ID → backend
	for i := range 24 {
		id := fmt.Sprintf("cluster-call-%d", i)
		for j, c := range clients {
			d, err := c.invite(id, r)
			if err != nil {
				t.Fatal(err)
			}
			if j == 0 {
				targets[id] = d.target
			} else if d.target != targets[id] {
				t.Errorf("%s: %s through lb-1, %s through lb-%d", id, targets[id], d.target, j+1)
			}
		}
	}

	// A drain through lb-2 holds on every member within a second; an
	// undrain through lb-3 too.
	x := bes[0].addr
	postAction(t, ms[1].admin, "farm", x, "drain")
	took := waitAll(t, ms, time.Second, "drained", stateIs(x, "draining"))
	t.Logf("drain on lb-2 held on all three after %v", took)
	postAction(t, ms[2].admin, "farm", x, "undrain")
	took = waitAll(t, ms, time.Second, "undrained", stateIs(x, "up"))
	t.Logf("undrain on lb-3 held on all three after %v", took)

	// A backend dies: out of rotation on every member within interval + 1s.
	y := bes[1]
	killed := time.Now()
	y.stop()
	waitAll(t, ms, 5*time.Second, "down", stateIs(y.addr, "down"))
	took = time.Since(killed)
	t.Logf("backend %s killed: down on all three after %v (its owner %s)", y.addr, took, own[y.addr.String()])
	if took > 2*time.Second {
		t.Errorf("backend down on every member after %v, want within interval 1s + 1s", took)
	}
	for id, was := range targets {
		if was != y.addr.String() {
			continue
		}
		var first string
		for j, c := range clients {
			d, err := c.invite(id+"-again", r)
			if err != nil {
				t.Fatal(err)
			}
			if d.target == y.addr.String() {
				t.Errorf("lb-%d sent a new call to dead %s", j+1, y.addr)
			}
			if j == 0 {
				first = d.target
			} else if d.target != first {
				t.Errorf("%s after the death: %s through lb-1, %s through lb-%d", id, first, d.target, j+1)
			}
		}
	}
	if err := y.restart(); err != nil {
		t.Fatal(err)
	}
	waitAll(t, ms, 5*time.Second, "back up", stateIs(y.addr, "up"))

	// A member stops: the others take over its probing, and a backend it
	// probed that dies is still found.
	victim := -1
	for i, m := range ms {
		for _, o := range own {
			if o == m.name {
				victim = i
			}
		}
	}
	gone := ms[victim]
	var orphan *backend
	for a, o := range own {
		if o == gone.name {
			orphan = byAddr[a]
		}
	}
	gone.stop(t)
	rest := slices.Delete(slices.Clone(ms), victim, victim+1)
	moveStart := time.Now()
	for {
		o := owners(t, rest[0].admin)
		o2 := owners(t, rest[1].admin)
		if o[orphan.addr.String()] != gone.name && mapsEqual(o, o2) {
			t.Logf("%s stopped: its backend %s is probed by %s after %v", gone.name, orphan.addr, o[orphan.addr.String()], time.Since(moveStart))
			break
		}
		if time.Since(moveStart) > 10*time.Second {
			t.Fatalf("probing of %s did not move within 10s: %v / %v", gone.name, o, o2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	killed = time.Now()
	orphan.stop()
	waitAll(t, rest, 5*time.Second, "down after its prober left", stateIs(orphan.addr, "down"))
	t.Logf("backend %s of the member that left: down on the others after %v", orphan.addr, time.Since(killed))
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
