package main

import (
	"strings"
	"testing"

	"github.com/siplb/siplb/balance"
)

// ws:// and wss:// listeners: parsed, with origins; refused as backends, a
// wss:// one without certificates, origins on another transport, a bad
// origin; each error names the key and its line.
func TestWSListenConfig(t *testing.T) {
	const pools = "pools:\n  - name: a\n    backends:\n      - address: udp://127.0.0.1:5070\n"
	tests := []struct {
		name string
		in   string
		want string // substring of the error; "" parses
	}{
		{name: "ws with origins", in: "listen:\n  - address: ws://127.0.0.1:8080\n    origins: [https://app.example.com, '*.example.org']\n  - address: udp://127.0.0.1:5060\n" + pools},
		{name: "ws backend", in: "listen:\n  - address: ws://127.0.0.1:8080\npools:\n  - name: a\n    backends:\n      - address: ws://127.0.0.1:5070\n",
			want: "line 6: pools[0].backends[0].address: siplb reaches backends over udp, tcp or tls, not ws"},
		{name: "wss backend", in: "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    backends:\n      - address: wss://127.0.0.1:5071\n",
			want: "pools[0].backends[0].address: siplb reaches backends over udp, tcp or tls, not wss"},
		{name: "ws discovery", in: "listen:\n  - address: udp://127.0.0.1:5060\npools:\n  - name: a\n    discovery:\n      - host: farm.example.com\n        transport: ws\n",
			want: "line 7: pools[0].discovery[0].transport: unknown transport"},
		{name: "wss without tls", in: "listen:\n  - address: wss://127.0.0.1:8443\n" + pools,
			want: "line 2: listen[0].tls: is required for a wss:// listener"},
		{name: "tls on ws", in: "listen:\n  - address: ws://127.0.0.1:8080\n    tls:\n      cert_file: /x.pem\n      key_file: /x.key\n" + pools,
			want: "line 3: listen[0].tls: is only for a tls:// or wss:// listener"},
		{name: "origins on udp", in: "listen:\n  - address: udp://127.0.0.1:5060\n    origins: [https://app.example.com]\n" + pools,
			want: "line 3: listen[0].origins: is only for a ws:// or wss:// listener"},
		{name: "bad origin", in: "listen:\n  - address: ws://127.0.0.1:8080\n    origins: [https://app.example.com, app.example.org]\n" + pools,
			want: `line 3: listen[0].origins[1]: "app.example.org": want scheme://host[:port]`},
		{name: "ws proxy", in: "listen:\n  - address: udp://127.0.0.1:5060\n" + pools + "routing:\n  outgoing_proxy: ws://127.0.0.1:80\n",
			want: "routing.outgoing_proxy: unknown transport"},
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
			l := ec.Legs[0]
			if l.Transport != balance.WS || l.Addr.String() != "127.0.0.1:8080" || len(l.Origins) != 2 {
				t.Errorf("leg %+v: want ws on 127.0.0.1:8080 with 2 origins", l)
			}
		})
	}
	for _, tc := range []struct{ in, want string }{
		{"ws://127.0.0.1", "127.0.0.1:80"},
		{"wss://[::1]", "[::1]:443"},
		{"WS://127.0.0.1:8080", "127.0.0.1:8080"},
	} {
		tr, ap, err := parseEndpoint(tc.in)
		if err != nil || !tr.WebSocket() || ap.String() != tc.want {
			t.Errorf("parseEndpoint(%q) = %s %s %v, want a WebSocket on %s", tc.in, tr, ap, err, tc.want)
		}
	}
}
