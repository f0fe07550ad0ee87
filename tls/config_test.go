package tls

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseClientAuth(t *testing.T) {
	tests := []struct {
		in      string
		want    ClientAuth
		wantErr error
	}{
		{in: "none", want: ClientAuthNone},
		{in: "0", want: ClientAuthNone},
		{in: "", want: ClientAuthNone},
		{in: "optional", want: ClientAuthOptional},
		{in: "-1", want: ClientAuthOptional},
		{in: "required", want: ClientAuthRequired},
		{in: "1", want: ClientAuthRequired},
		{in: "Required", wantErr: ErrClientAuth},
		{in: "2", wantErr: ErrClientAuth},
		{in: "yes", wantErr: ErrClientAuth},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseClientAuth(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseClientAuth(%q): err = %v, want %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseClientAuth(%q) = %v, want %v", tc.in, got, tc.want)
			}
			var u ClientAuth
			if err := u.UnmarshalText([]byte(tc.in)); !errors.Is(err, tc.wantErr) || u != tc.want {
				t.Errorf("UnmarshalText(%q) = %v, %v; want %v, %v", tc.in, u, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestClientAuthText(t *testing.T) {
	tests := []struct {
		in   ClientAuth
		want string
		std  tls.ClientAuthType
	}{
		{in: ClientAuthNone, want: "none", std: tls.NoClientCert},
		{in: ClientAuthOptional, want: "optional", std: tls.VerifyClientCertIfGiven},
		{in: ClientAuthRequired, want: "required", std: tls.RequireAndVerifyClientCert},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			b, err := tc.in.MarshalText()
			if err != nil || string(b) != tc.want {
				t.Errorf("MarshalText(%d) = %q, %v; want %q", tc.in, b, err, tc.want)
			}
			if got, _ := ParseClientAuth(string(b)); got != tc.in {
				t.Errorf("ParseClientAuth(MarshalText(%d)) = %d", tc.in, got)
			}
			if got := tc.in.stdlib(); got != tc.std {
				t.Errorf("%v.stdlib() = %v, want %v", tc.in, got, tc.std)
			}
		})
	}
	if _, err := ClientAuth(7).MarshalText(); !errors.Is(err, ErrClientAuth) {
		t.Errorf("MarshalText(7): err = %v, want ErrClientAuth", err)
	}
	if got := ClientAuth(7).String(); got != "ClientAuth(7)" {
		t.Errorf("ClientAuth(7).String() = %q", got)
	}
}

func TestValidate(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(p.dir, "missing.pem")
	garbage := filepath.Join(p.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := Config{CertFile: p.server.certFile, KeyFile: p.server.keyFile}
	with := func(f func(c *Config)) Config {
		c := good
		f(&c)
		return c
	}
	const path = "listen[2].tls"
	tests := []struct {
		name    string
		cfg     Config
		wantKey string // key path that must prefix the error; "" for no error
		wantErr error
	}{
		{name: "listener", cfg: good},
		{name: "empty dialer", cfg: Config{}},
		{name: "dialer with CA", cfg: Config{CAFile: p.ca.file, ServerName: "sip.test"}},
		{name: "client auth required", cfg: with(func(c *Config) { c.CAFile = p.ca.file; c.ClientAuth = ClientAuthRequired })},
		{name: "tls 1.3", cfg: with(func(c *Config) { c.MinVersion = "1.3" })},
		{name: "sni certs", cfg: with(func(c *Config) {
			c.Certs = []CertPair{{CertFile: p.client.certFile, KeyFile: p.client.keyFile}}
		})},
		{name: "missing cert file", cfg: with(func(c *Config) { c.CertFile = missing }),
			wantKey: path + ".cert_file", wantErr: fs.ErrNotExist},
		{name: "missing key file", cfg: with(func(c *Config) { c.KeyFile = missing }),
			wantKey: path + ".key_file", wantErr: fs.ErrNotExist},
		{name: "garbage cert", cfg: with(func(c *Config) { c.CertFile = garbage }),
			wantKey: path + ".cert_file", wantErr: ErrNoPEMCert},
		{name: "key of another cert", cfg: with(func(c *Config) { c.KeyFile = p.client.keyFile }),
			wantKey: path + ".key_file"},
		{name: "cert without key", cfg: with(func(c *Config) { c.KeyFile = "" }),
			wantKey: path + ".key_file", wantErr: ErrMissingKey},
		{name: "key without cert", cfg: Config{KeyFile: p.server.keyFile},
			wantKey: path + ".cert_file", wantErr: ErrMissingCert},
		{name: "certs without default", cfg: Config{Certs: []CertPair{{CertFile: p.server.certFile, KeyFile: p.server.keyFile}}},
			wantKey: path + ".cert_file", wantErr: ErrDefaultCert},
		{name: "certs entry without key", cfg: with(func(c *Config) { c.Certs = []CertPair{{CertFile: p.client.certFile}} }),
			wantKey: path + ".certs[0].key_file", wantErr: ErrMissingKey},
		{name: "certs entry missing file", cfg: with(func(c *Config) {
			c.Certs = []CertPair{{CertFile: p.client.certFile, KeyFile: p.client.keyFile}, {CertFile: missing, KeyFile: p.client.keyFile}}
		}), wantKey: path + ".certs[1].cert_file", wantErr: fs.ErrNotExist},
		{name: "missing CA", cfg: Config{CAFile: missing},
			wantKey: path + ".ca_file", wantErr: fs.ErrNotExist},
		{name: "CA without certificates", cfg: Config{CAFile: garbage},
			wantKey: path + ".ca_file", wantErr: ErrNoCACerts},
		{name: "client auth without CA", cfg: with(func(c *Config) { c.ClientAuth = ClientAuthOptional }),
			wantKey: path + ".ca_file", wantErr: ErrCANeeded},
		{name: "client auth out of range", cfg: with(func(c *Config) { c.ClientAuth = 3 }),
			wantKey: path + ".client_auth", wantErr: ErrClientAuth},
		{name: "insecure with CA", cfg: Config{CAFile: p.ca.file, InsecureSkipVerify: true},
			wantKey: path + ".insecure_skip_verify", wantErr: ErrInsecureCA},
		{name: "tls 1.1", cfg: with(func(c *Config) { c.MinVersion = "1.1" }),
			wantKey: path + ".min_version", wantErr: ErrOldVersion},
		{name: "tls 1.0", cfg: with(func(c *Config) { c.MinVersion = "1.0" }),
			wantKey: path + ".min_version", wantErr: ErrOldVersion},
		{name: "unknown version", cfg: with(func(c *Config) { c.MinVersion = "1.4" }),
			wantKey: path + ".min_version", wantErr: ErrVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate(path)
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := NewStore(tc.cfg); err != nil {
					t.Fatalf("NewStore after Validate passed: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want one under %s", tc.wantKey)
			}
			if !strings.HasPrefix(err.Error(), tc.wantKey+": ") {
				t.Errorf("Validate: %q, want prefix %q", err, tc.wantKey+": ")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Validate: %v, want errors.Is %v", err, tc.wantErr)
			}
			if _, serr := NewStore(tc.cfg); serr == nil {
				t.Errorf("NewStore accepted what Validate refused (%v)", err)
			}
		})
	}
}

func TestValidateListener(t *testing.T) {
	p := newPKI(t)
	if err := (&Config{CAFile: p.ca.file}).ValidateListener("listen[0].tls"); !errors.Is(err, ErrListenerCert) ||
		!strings.HasPrefix(err.Error(), "listen[0].tls.cert_file: ") {
		t.Errorf("ValidateListener without cert: %v", err)
	}
	if err := (&Config{CertFile: p.server.certFile, KeyFile: p.server.keyFile}).ValidateListener("listen[0].tls"); err != nil {
		t.Errorf("ValidateListener: %v", err)
	}
	s := mustStore(t, Config{CAFile: p.ca.file})
	if _, err := Listen("tcp", "127.0.0.1:0", s); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("Listen without cert: err = %v, want ErrNoCertificate", err)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
		err  error
	}{
		{in: "", want: tls.VersionTLS12},
		{in: "1.2", want: tls.VersionTLS12},
		{in: "1.3", want: tls.VersionTLS13},
		{in: "1.1", err: ErrOldVersion},
		{in: "1.0", err: ErrOldVersion},
		{in: "TLS1.2", err: ErrVersion},
	}
	for _, tc := range tests {
		got, err := parseVersion(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("parseVersion(%q) = %#x, %v; want %#x, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
