package main

import (
	"net/netip"
	"strings"
	"testing"
)

// listen[].proxy_protocol: IPs and CIDRs on stream listeners reach the
// leg; on udp, or with a bad entry, the error names the key and its line.
func TestProxyProtocolConfig(t *testing.T) {
	const pools = "pools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n"
	tests := []struct {
		name string
		in   string
		want string // substring of the error; "" parses
	}{
		{name: "tcp", in: "listen:\n  - address: tcp://127.0.0.1:5060\n    proxy_protocol: [127.0.0.1, 10.0.0.0/8]\n  - address: udp://127.0.0.1:5060\n" + pools},
		{name: "ws", in: "listen:\n  - address: ws://127.0.0.1:8080\n    proxy_protocol: [127.0.0.1, 10.0.0.0/8]\n  - address: udp://127.0.0.1:5060\n" + pools},
		{name: "udp", in: "listen:\n  - address: udp://127.0.0.1:5060\n    proxy_protocol: [127.0.0.1]\n" + pools,
			want: "line 3: listen[0].proxy_protocol: is only for a tcp://, tls://, ws:// or wss:// listener"},
		{name: "bad entry", in: "listen:\n  - address: udp://127.0.0.1:5060\n  - address: tcp://127.0.0.1:5060\n    proxy_protocol:\n      - 127.0.0.1\n      - lb.example.com\n" + pools,
			want: `line 6: listen[1].proxy_protocol[1]: want an IP or CIDR, got "lb.example.com"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(tc.in))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("parseConfig: error %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ec, _, err := cfg.engineConfig()
			if err != nil {
				t.Fatal(err)
			}
			want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
			if got := ec.Legs[0].ProxyFrom; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("leg ProxyFrom %v, want %v", got, want)
			}
		})
	}
}
