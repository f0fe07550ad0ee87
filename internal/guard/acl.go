package guard

import "net/netip"

// ACLConfig is a listener's access list: the `allow` and `deny` keys under
// it, each a list of IP or IP/len entries.
type ACLConfig struct {
	Allow []string `yaml:"allow"` // if not empty, only these sources may send (default: any)
	Deny  []string `yaml:"deny"`  // sources that may not send, even if allowed (default: none)
}

// ACL is a compiled ACLConfig: deny wins, and a non-empty allow list admits
// only its sources. The nil ACL permits everything. An ACL is immutable and
// safe for concurrent use.
type ACL struct {
	allow, deny *CIDRSet
}

// NewACL compiles c. path names the list's owner in errors: "listen[0]"
// gives `listen[0].allow[2]: "10.0.0.0/33": bad prefix`, and "" gives
// `allow[2]: …`.
func NewACL(path string, c ACLConfig) (*ACL, error) {
	allow, err := ParseCIDRSet(join(path, "allow"), c.Allow)
	if err != nil {
		return nil, err
	}
	deny, err := ParseCIDRSet(join(path, "deny"), c.Deny)
	if err != nil {
		return nil, err
	}
	return &ACL{allow: allow, deny: deny}, nil
}

// Permit reports whether a message from ip may be handled. It allocates
// nothing.
func (a *ACL) Permit(ip netip.Addr) bool {
	if a == nil {
		return true
	}
	if a.deny.Contains(ip) {
		return false
	}
	return a.allow.Empty() || a.allow.Contains(ip)
}
