package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// An upgrade of a cluster member (cluster.enabled), with the real binary:
// the gossip port is the old process's until it goes, so the new process
// serves without gossip first (probing everything itself), the old one
// leaves the cluster when told to go, and the new one then binds the port
// and joins under the same name.

// clusterUpgradeConfig is the configuration of member name of a two-member
// test cluster over backends.
func clusterUpgradeConfig(name string, sip netip.AddrPort, admin string, gossip []string, self int, backends []*backend) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen:\n  - address: udp://%s\n", sip)
	b.WriteString("pools:\n  - name: farm\n    algorithm: hash-callid\n")
	b.WriteString("    health: {interval: 1s, timeout: 300ms, fall: 1, rise: 1, down_interval: 500ms}\n    backends:\n")
	for _, be := range backends {
		fmt.Fprintf(&b, "      - {address: %s}\n", be.url())
	}
	fmt.Fprintf(&b, "admin:\n  listen: %s\n", admin)
	fmt.Fprintf(&b, "engine:\n  branch_secret: secret-of-%s-0123456789\n", name)
	fmt.Fprintf(&b, "shutdown:\n  drain_timeout: 5s\n  idle: 300ms\n")
	fmt.Fprintf(&b, "cluster:\n  enabled: true\n  name: %s\n  bind: %s\n  key: %s\n  join: [%s]\n", name, gossip[self], clusterKey, strings.Join(gossip, ", "))
	return b.String()
}

// aliveMembers returns the names of the members admin sees alive, sorted.
func aliveMembers(admin string) []string {
	ci, err := clusterOf(admin)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range ci.Members {
		if m.State == "alive" {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out
}

// waitCluster polls until both admins see lb-1 and lb-2 alive and the
// same owners as want (nil: any, as long as both agree), up to limit.
func waitCluster(t *testing.T, admins []string, want map[string]string, limit time.Duration, what string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var got []map[string]string
		ok := true
		for _, a := range admins {
			if !slices.Equal(aliveMembers(a), []string{"lb-1", "lb-2"}) {
				ok = false
				break
			}
			ci, err := clusterOf(a)
			if err != nil {
				ok = false
				break
			}
			o := map[string]string{}
			for _, p := range ci.Probing {
				o[p.Backend] = p.Owner
			}
			got = append(got, o)
		}
		if ok && mapsEqual(got[0], got[1]) && (want == nil || mapsEqual(got[0], want)) {
			return got[0]
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			for _, a := range admins {
				ci, err := clusterOf(a)
				fmt.Fprintf(&sb, "%s: %+v %v\n", a, ci, err)
			}
			t.Fatalf("%s: not within %v:\n%s", what, limit, sb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUpgradeClusterMember: two members, lb-1 is upgraded. The upgrade
// succeeds, the old process exits cleanly, the cluster has both members
// again with the probing split as before, and a drain set on lb-2 holds on
// the upgraded lb-1.
func TestUpgradeClusterMember(t *testing.T) {
	var backends []*backend
	for i := range 6 {
		backends = append(backends, startBackend(t, fmt.Sprintf("b%d", i+1)))
	}
	gossip := []string{fmt.Sprintf("127.0.0.1:%d", freeGossipPort(t)), fmt.Sprintf("127.0.0.1:%d", freeGossipPort(t))}
	var us []*upgraded
	var admins []string
	bin := buildSiplb(t)
	for i := range 2 {
		name := fmt.Sprintf("lb-%d", i+1)
		sip := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)))
		admin := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
		us = append(us, startUpgradable(t, bin, clusterUpgradeConfig(name, sip, admin, gossip, i, backends), admin, "--loops", "1"))
		admins = append(admins, admin)
	}
	before := waitCluster(t, admins, nil, 15*time.Second, "both members alive, owners agreed")
	split := map[string]int{}
	for _, o := range before {
		split[o]++
	}
	t.Logf("owners before the upgrade: %v", split)

	oldPID := us[0].p.cmd.Process.Pid
	if code, msg := us[0].upgrade(t); code != 0 {
		t.Fatalf("siplb upgrade of lb-1: exit %d: %s\n%s", code, msg, us[0].logs())
	}
	if code, ok := us[0].p.exit(15 * time.Second); !ok || code != 0 {
		t.Fatalf("old lb-1: exited %v with %d, want 0:\n%s", ok, code, us[0].logs())
	}
	if pid, err := readPIDFile(us[0].pidFile); err != nil || pid == oldPID {
		t.Fatalf("pid file after the upgrade: %d, %v; want a new pid (old %d)", pid, err, oldPID)
	}
	waitCluster(t, admins, before, 20*time.Second, "after the upgrade: both members alive, owners as before")
	// The path taken: the successor waited for the port, then joined.
	all, _ := os.ReadFile(us[0].logPath)
	for line := range bytes.Lines(all) {
		if bytes.Contains(line, []byte("gossip port free")) {
			t.Logf("lb-1's new process: %s", bytes.TrimSpace(line))
		}
	}
	for _, want := range []string{"the predecessor holds the gossip port", "gossip port free, joining"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("lb-1's logs lack %q:\n%s", want, us[0].logs())
		}
	}
	drained := backends[0].addr
	postAction(t, admins[1], "farm", drained, "drain")
	waitBackends(t, admins[0], 3*time.Second, "lb-2's drain on the upgraded lb-1", stateIs(drained, "draining"))
	if t.Failed() {
		t.Logf("lb-1 logs:\n%s", us[0].logs())
	}
}
