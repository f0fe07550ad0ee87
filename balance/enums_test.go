package balance

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseAlgorithm(t *testing.T) {
	tests := []struct {
		in   string
		want Algorithm
		err  error
	}{
		{in: "", want: HashCallID},
		{in: "hash-callid", want: HashCallID},
		{in: "hash-from-user", want: HashFromUser},
		{in: "hash-to-user", want: HashToUser},
		{in: "hash-ruri", want: HashRequestURI},
		{in: "round-robin", want: RoundRobin},
		{in: "weighted-round-robin", want: WeightedRoundRobin},
		{in: "random", want: Random},
		{in: "Round-Robin", want: RoundRobin},
		{in: "least-conn", err: ErrUnknownAlgorithm},
		{in: "hash", err: ErrUnknownAlgorithm},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAlgorithm(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("ParseAlgorithm(%q): err = %v, want %v", tc.in, err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Errorf("ParseAlgorithm(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestAlgorithmRoundTrip(t *testing.T) {
	for a := range numAlgorithms {
		got, err := ParseAlgorithm(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
	}
	if got, want := Algorithm(200).String(), "algorithm(200)"; got != want {
		t.Errorf("Algorithm(200).String() = %q, want %q", got, want)
	}
}

func TestAlgorithmHashed(t *testing.T) {
	want := map[Algorithm]bool{HashCallID: true, HashFromUser: true, HashToUser: true, HashRequestURI: true,
		LeastLatency: true, LeastLatencyP2C: true}
	for a := range numAlgorithms {
		if got := a.Hashed(); got != want[a] {
			t.Errorf("%v.Hashed() = %v, want %v", a, got, want[a])
		}
	}
}

// fakeKeys is a KeySource that records which part was asked for.
type fakeKeys struct{ asked *[]string }

func (k fakeKeys) part(name string) []byte {
	*k.asked = append(*k.asked, name)
	return []byte(name)
}
func (k fakeKeys) CallID() []byte     { return k.part("call-id") }
func (k fakeKeys) FromUser() []byte   { return k.part("from-user") }
func (k fakeKeys) ToUser() []byte     { return k.part("to-user") }
func (k fakeKeys) RequestURI() []byte { return k.part("ruri") }

// Each hashed algorithm asks its KeySource for its own part and no other;
// the rest ask for nothing.
func TestAlgorithmKey(t *testing.T) {
	want := map[Algorithm]string{HashCallID: "call-id", HashFromUser: "from-user", HashToUser: "to-user", HashRequestURI: "ruri",
		LeastLatency: "call-id", LeastLatencyP2C: "call-id"}
	for a := range numAlgorithms {
		var asked []string
		got := a.Key(fakeKeys{&asked})
		w := want[a]
		if string(got) != w || (w == "" && got != nil) {
			t.Errorf("%v.Key = %q, want %q", a, got, w)
		}
		if (w == "" && len(asked) != 0) || (w != "" && (len(asked) != 1 || asked[0] != w)) {
			t.Errorf("%v.Key asked for %v, want only %q", a, asked, w)
		}
	}
	bal := onePool(t, HashToUser, members(2))
	var asked []string
	if got := bal.Table().Pool(0).Key(fakeKeys{&asked}); string(got) != "to-user" {
		t.Errorf("Pool.Key = %q, want the pool's algorithm's key", got)
	}
}

func TestTransportViaName(t *testing.T) {
	for tr, want := range map[Transport]string{UDP: "UDP", TCP: "TCP", TLS: "TLS", WS: "WS", WSS: "WSS", NumTransports: ""} {
		if got := tr.ViaName(); got != want {
			t.Errorf("%v.ViaName() = %q, want %q", tr, got, want)
		}
	}
}

func TestTransportAndState(t *testing.T) {
	tests := []struct {
		name  string
		str   string
		parse func(string) (string, error)
		err   error
	}{
		{name: "udp", str: "udp", parse: parseTransportString},
		{name: "tcp", str: "tcp", parse: parseTransportString},
		{name: "tls", str: "tls", parse: parseTransportString},
		{name: "sctp", str: "sctp", parse: parseTransportString, err: ErrUnknownTransport},
		// No backend is reached over WebSocket: the names are a leg's only.
		{name: "ws", str: "ws", parse: parseTransportString, err: ErrUnknownTransport},
		{name: "wss", str: "wss", parse: parseTransportString, err: ErrUnknownTransport},
		{name: "up", str: "up", parse: parseStateString},
		{name: "down", str: "down", parse: parseStateString},
		{name: "disabled", str: "disabled", parse: parseStateString},
		{name: "draining", str: "draining", parse: parseStateString},
		{name: "drained", str: "drained", parse: parseStateString, err: ErrUnknownState},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse(tc.str)
			if !errors.Is(err, tc.err) {
				t.Fatalf("parse(%q): err = %v, want %v", tc.str, err, tc.err)
			}
			if err == nil && got != tc.str {
				t.Errorf("parse(%q).String() = %q", tc.str, got)
			}
		})
	}
	if s, _ := ParseState(""); s != Up {
		t.Errorf(`ParseState("") = %v, want up`, s)
	}
	if tr, _ := ParseTransport(""); tr != UDP {
		t.Errorf(`ParseTransport("") = %v, want udp`, tr)
	}
}

func parseTransportString(s string) (string, error) {
	v, err := ParseTransport(s)
	return v.String(), err
}

func parseStateString(s string) (string, error) {
	v, err := ParseState(s)
	return v.String(), err
}

// The WebSocket transports: their names, default ports (RFC 6455's, which
// RFC 7118 servers are reached on) and kind; a backend of one is refused.
func TestWebSocketTransports(t *testing.T) {
	tests := []struct {
		tr        Transport
		name      string
		port      uint16
		ws, sec   bool
		isBackend bool
	}{
		{tr: UDP, name: "udp", port: 5060, isBackend: true},
		{tr: TCP, name: "tcp", port: 5060, isBackend: true},
		{tr: TLS, name: "tls", port: 5061, sec: true, isBackend: true},
		{tr: WS, name: "ws", port: 80, ws: true},
		{tr: WSS, name: "wss", port: 443, ws: true, sec: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.tr.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if got := tc.tr.DefaultPort(); got != tc.port {
				t.Errorf("DefaultPort() = %d, want %d", got, tc.port)
			}
			if tc.tr.WebSocket() != tc.ws || tc.tr.Secure() != tc.sec {
				t.Errorf("WebSocket() = %v, Secure() = %v, want %v, %v", tc.tr.WebSocket(), tc.tr.Secure(), tc.ws, tc.sec)
			}
			_, err := New([]PoolConfig{{Name: "p", Backends: []BackendConfig{{Addr: netip.MustParseAddrPort("192.0.2.1:5060"), Transport: tc.tr}}}})
			if (err == nil) != tc.isBackend {
				t.Errorf("a backend over %s: New err = %v, want a refusal: %v", tc.name, err, !tc.isBackend)
			}
		})
	}
	if got := Transport(9).String(); got != "transport(9)" {
		t.Errorf("Transport(9).String() = %q", got)
	}
}
