package main

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/siplb/siplb/cluster"
)

// ClusterConfig makes this instance a member of a cluster of siplb
// instances that front one farm (docs/cluster.md): they share health
// verdicts, drains and the key rings of their branch secrets over
// hashicorp/memberlist, and split the probing of the backends. Off by
// default. A reload does not change it: every key needs a restart.
type ClusterConfig struct {
	Enabled bool   `yaml:"enabled"` // join a cluster (default false)
	Name    string `yaml:"name"`    // this member's name, unique in the cluster (default: the host name)
	// Bind is the IP:PORT gossip is served at, UDP and TCP (default
	// 0.0.0.0:7946).
	Bind string `yaml:"bind"`
	// Advertise is the IP:PORT the others reach this member at (default:
	// bind; for 0.0.0.0 a private address of the host).
	Advertise string `yaml:"advertise"`
	// Join are members to join: IP:PORT, or host[:port] whose A/AAAA
	// records are members (a Kubernetes headless Service); port 7946 by
	// default. Tried at the start and again every 30s (every 2s while
	// alone).
	Join []string `yaml:"join"`
	// Key is the base64 of a 16, 24 or 32 byte AES key that encrypts and
	// authenticates all gossip (memberlist's keyring); required unless bind
	// is a loopback address.
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"` // or a file whose first line is the key
	// PreviousKeys still decrypt what arrives, for a key rotation.
	PreviousKeys []string `yaml:"previous_keys"`
	// ShareSecrets shares the key ring of branch secrets, so a token one
	// instance minted verifies on all after any rotation (default true;
	// needs key: the secrets only travel encrypted).
	ShareSecrets *bool `yaml:"share_secrets"`
}

// Cluster defaults.
const defaultClusterBind = "0.0.0.0:7946"

func (c *ClusterConfig) setDefaults() {
	if c.Bind == "" {
		c.Bind = defaultClusterBind
	}
	if c.ShareSecrets == nil {
		t := true
		c.ShareSecrets = &t
	}
}

// validate checks the cluster section; nothing when it is off.
func (c *ClusterConfig) validate() error {
	if !c.Enabled {
		return nil
	}
	c.setDefaults()
	if len(c.Name) > 128 || strings.ContainsAny(c.Name, " \t\r\n") {
		return invalid("cluster.name", "want at most 128 characters and no blanks, got %q", c.Name)
	}
	bind, err := netip.ParseAddrPort(c.Bind)
	if err != nil {
		return invalid("cluster.bind", "want IP:PORT: %v", err)
	}
	if c.Advertise != "" {
		ap, err := netip.ParseAddrPort(c.Advertise)
		if err != nil {
			return invalid("cluster.advertise", "want IP:PORT: %v", err)
		}
		if ap.Addr().IsUnspecified() || ap.Port() == 0 {
			return invalid("cluster.advertise", "want a specific IP and a port other than 0, got %s", ap)
		}
	}
	for i, j := range c.Join {
		if _, _, err := splitJoin(j); err != nil {
			return invalid(fmt.Sprintf("cluster.join[%d]", i), "%v", err)
		}
	}
	keys, err := c.keys()
	if err != nil {
		return err
	}
	if len(keys) == 0 && !bind.Addr().Unmap().IsLoopback() {
		return invalid("cluster.key", "is required: cluster.bind %s is not a loopback address, and gossip in the clear would let anyone on the network drain backends or mark them down (set cluster.key or cluster.key_file)", bind)
	}
	if len(keys) == 0 && *c.ShareSecrets {
		return invalid("cluster.share_secrets", "needs cluster.key or cluster.key_file: the branch secrets only travel encrypted (set share_secrets: false to share health and drains without a key on loopback)")
	}
	return nil
}

// keys returns the gossip keys, the one that encrypts first.
func (c *ClusterConfig) keys() ([][]byte, error) {
	if c.Key != "" && c.KeyFile != "" {
		return nil, invalid("cluster.key_file", "set cluster.key or cluster.key_file, not both")
	}
	var keys [][]byte
	text, key := c.Key, "cluster.key"
	if c.KeyFile != "" {
		key = "cluster.key_file"
		b, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, invalid(key, "%v", err)
		}
		text, _, _ = strings.Cut(string(b), "\n")
		if text = strings.TrimSpace(text); text == "" {
			return nil, invalid(key, "%s: the first line holds no key", c.KeyFile)
		}
	}
	if text != "" {
		k, err := decodeClusterKey(text)
		if err != nil {
			return nil, invalid(key, "%v", err)
		}
		keys = append(keys, k)
	}
	for i, p := range c.PreviousKeys {
		k, err := decodeClusterKey(p)
		if err != nil {
			return nil, invalid(fmt.Sprintf("cluster.previous_keys[%d]", i), "%v", err)
		}
		if len(keys) == 0 {
			return nil, invalid("cluster.previous_keys", "needs cluster.key (the key that encrypts)")
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// decodeClusterKey decodes a base64 AES key (never echoing it).
func decodeClusterKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("want the base64 of 16, 24 or 32 bytes (e.g. `head -c 32 /dev/urandom | base64`): not base64")
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("want the base64 of 16, 24 or 32 bytes, got %d bytes", n)
	}
	return k, nil
}

// splitJoin checks a join entry: IP:PORT, IP, or host[:port].
func splitJoin(s string) (string, uint16, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String(), ap.Port(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.String(), cluster.DefaultPort, nil
	}
	host, port := s, uint64(cluster.DefaultPort)
	if h, p, ok := strings.Cut(s, ":"); ok {
		n, okp := parsePort(p)
		if !okp {
			return "", 0, fmt.Errorf("want IP:PORT or host[:port], got %q", s)
		}
		host, port = h, n
	}
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " /@[]") {
		return "", 0, fmt.Errorf("want IP:PORT or host[:port], got %q", s)
	}
	return host, uint16(port), nil
}

func parsePort(p string) (uint64, bool) {
	var n uint64
	if p == "" || len(p) > 5 {
		return 0, false
	}
	for _, c := range []byte(p) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n > 0 && n < 65536
}

// nodeConfig is the cluster package's configuration of this section.
func (c *ClusterConfig) nodeConfig() (cluster.Config, error) {
	c.setDefaults()
	keys, err := c.keys()
	if err != nil {
		return cluster.Config{}, err
	}
	name := c.Name
	if name == "" {
		if name, err = os.Hostname(); err != nil || name == "" {
			return cluster.Config{}, invalid("cluster.name", "the host has no name to default to: set one")
		}
	}
	bind, _ := netip.ParseAddrPort(c.Bind)
	cc := cluster.Config{Name: name, Bind: bind, Keys: keys}
	if c.Advertise != "" {
		cc.Advertise, _ = netip.ParseAddrPort(c.Advertise)
	}
	for _, j := range c.Join {
		host, port, _ := splitJoin(j)
		cc.Join = append(cc.Join, hostPort(host, port))
	}
	return cc, nil
}

func hostPort(host string, port uint16) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}
