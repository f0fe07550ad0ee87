package guard

import (
	"errors"
	"testing"
)

func TestACLPermit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    ACLConfig
		permit []string
		refuse []string
	}{
		{name: "empty permits all", permit: []string{"192.0.2.1", "2001:db8::1"}},
		{name: "deny only", cfg: ACLConfig{Deny: []string{"192.0.2.0/24"}},
			permit: []string{"192.0.3.1", "2001:db8::1"}, refuse: []string{"192.0.2.1", "::ffff:192.0.2.1"}},
		{name: "allow only admits only those", cfg: ACLConfig{Allow: []string{"10.0.0.0/8"}},
			permit: []string{"10.1.1.1"}, refuse: []string{"192.0.2.1", "2001:db8::1"}},
		{name: "deny wins over allow", cfg: ACLConfig{Allow: []string{"10.0.0.0/8"}, Deny: []string{"10.6.6.0/24"}},
			permit: []string{"10.6.7.1"}, refuse: []string{"10.6.6.6", "11.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewACL("listen[0]", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.permit {
				if !a.Permit(addr(s)) {
					t.Errorf("Permit(%s) = false, want true", s)
				}
			}
			for _, s := range tc.refuse {
				if a.Permit(addr(s)) {
					t.Errorf("Permit(%s) = true, want false", s)
				}
			}
		})
	}
	var nilACL *ACL
	if !nilACL.Permit(addr("192.0.2.1")) {
		t.Error("nil ACL refused")
	}
}

func TestNewACLErrors(t *testing.T) {
	for _, tc := range []struct {
		path string
		cfg  ACLConfig
		want string
	}{
		{"", ACLConfig{Allow: []string{"10.0.0.0/8", "::1", "10.0.0.0/33"}}, `allow[2]: "10.0.0.0/33": bad prefix`},
		{"listen[1]", ACLConfig{Deny: []string{"nope"}}, `listen[1].deny[0]: "nope": bad prefix`},
	} {
		_, err := NewACL(tc.path, tc.cfg)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrBadPrefix) {
			t.Errorf("NewACL(%q, %+v) = %v, want %s", tc.path, tc.cfg, err, tc.want)
		}
	}
}
