package tls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
)

// ClientAuth is a listener's policy for client certificates, after Net::SIP's
// verify_client. The zero value is ClientAuthNone.
type ClientAuth uint8

const (
	// ClientAuthNone does not ask the client for a certificate (verify_client 0).
	ClientAuthNone ClientAuth = iota
	// ClientAuthOptional asks for a certificate and, when one is sent, verifies
	// it against the CA bundle; a client without one is accepted (verify_client -1).
	ClientAuthOptional
	// ClientAuthRequired asks for a certificate and refuses the handshake when
	// none is sent or it does not verify (verify_client 1).
	ClientAuthRequired
)

// ParseClientAuth reads a policy as written in the configuration: "none" or
// "0" (or empty), "optional" or "-1", "required" or "1" (Net::SIP's numbers).
// Anything else, upper case included, returns ErrClientAuth.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch s {
	case "none", "0", "":
		return ClientAuthNone, nil
	case "optional", "-1":
		return ClientAuthOptional, nil
	case "required", "1":
		return ClientAuthRequired, nil
	}
	return 0, ErrClientAuth
}

// String returns "none", "optional" or "required", or "ClientAuth(n)" for a
// value outside the three.
func (a ClientAuth) String() string {
	switch a {
	case ClientAuthNone:
		return "none"
	case ClientAuthOptional:
		return "optional"
	case ClientAuthRequired:
		return "required"
	}
	return "ClientAuth(" + strconv.Itoa(int(a)) + ")"
}

// MarshalText writes the policy's name, so that configuration dumps read back.
func (a ClientAuth) MarshalText() ([]byte, error) {
	if a > ClientAuthRequired {
		return nil, ErrClientAuth
	}
	return []byte(a.String()), nil
}

// UnmarshalText reads a policy with ParseClientAuth; YAML decoders use it for
// the client_auth key (a YAML -1 arrives as the text "-1").
func (a *ClientAuth) UnmarshalText(b []byte) error {
	v, err := ParseClientAuth(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// stdlib maps the policy to crypto/tls's. Optional verifies a certificate
// that is sent (OpenSSL's SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT, which
// is what Net::SIP's -1 sets).
func (a ClientAuth) stdlib() tls.ClientAuthType {
	switch a {
	case ClientAuthOptional:
		return tls.VerifyClientCertIfGiven
	case ClientAuthRequired:
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

// Config is the TLS part of a listener or of a pool's backend connections.
// Zero values mean the documented defaults. A Config is read once by NewStore;
// later changes to it have no effect (Reload re-reads the files it names).
type Config struct {
	// CertFile and KeyFile are the PEM certificate chain (leaf first) and its
	// private key. Required for a listener, where this is the default
	// certificate (no SNI, or no name matched); for dialing, the optional client
	// certificate presented to backends that ask for one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Certs are further certificates for a listener, chosen by the server name
	// the client sends (SNI) among the DNS names of each leaf, "*.example.com"
	// wildcards included. Exact names win over wildcards; among equals, the
	// first listed wins (CertFile counts as listed first). Requires CertFile.
	Certs []CertPair `yaml:"certs"`
	// CAFile is a PEM bundle of CA certificates. A listener verifies client
	// certificates with it (required when ClientAuth is not none); a dialer
	// verifies backends with it. Empty for dialing: the system's roots.
	CAFile string `yaml:"ca_file"`
	// ClientAuth is the listener's client-certificate policy (default none).
	// Ignored when dialing.
	ClientAuth ClientAuth `yaml:"client_auth"`
	// ServerName is, for dialing, the name sent as SNI and verified against the
	// backend's certificate (default: the host part of the address dialed).
	// Ignored by a listener.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns off the verification of backends' certificates.
	// For tests only: it lets anyone in the path read and change the traffic.
	// Cannot be combined with CAFile.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// MinVersion is the oldest TLS version negotiated: "1.2" (default) or "1.3".
	// TLS 1.1 and older are refused.
	MinVersion string `yaml:"min_version"`
}

// CertPair names one PEM certificate chain and its private key.
type CertPair struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Errors returned by ParseClientAuth, Validate, NewStore, Listen and the
// handshakes. Validate and the loaders wrap them with the key path and file;
// compare with errors.Is.
var (
	ErrClientAuth    = errors.New("client_auth must be none, optional, required, 0, -1 or 1")
	ErrVersion       = errors.New(`min_version must be "1.2" or "1.3"`)
	ErrOldVersion    = errors.New("TLS 1.1 and older are refused")
	ErrMissingKey    = errors.New("required with cert_file")
	ErrMissingCert   = errors.New("required with key_file")
	ErrDefaultCert   = errors.New("required when certs are set (the default certificate)")
	ErrCANeeded      = errors.New("required when client_auth is optional or required")
	ErrInsecureCA    = errors.New("cannot be combined with ca_file")
	ErrNoCACerts     = errors.New("no PEM certificates found")
	ErrNoPEMCert     = errors.New("no PEM CERTIFICATE block found")
	ErrListenerCert  = errors.New("required for a listener")
	ErrNoCertificate = errors.New("tls: no certificate configured")
)

// Validate checks the Config and reads every file it names, exactly as
// NewStore will. path is the key of this block in the configuration, e.g.
// "listen[2].tls"; every error names the key at fault, e.g.
// "listen[2].tls.cert_file: open x.pem: no such file or directory". Validate
// does not require a certificate; ValidateListener does.
func (c *Config) Validate(path string) error {
	if err := c.check(path); err != nil {
		return err
	}
	_, err := load(c, path)
	return err
}

// ValidateListener is Validate plus the listener's own requirement: a
// certificate (cert_file and key_file).
func (c *Config) ValidateListener(path string) error {
	if c.CertFile == "" {
		return fmt.Errorf("%s.cert_file: %w", path, ErrListenerCert)
	}
	return c.Validate(path)
}

// check validates the fields without touching files.
func (c *Config) check(path string) error {
	if c.CertFile != "" && c.KeyFile == "" {
		return fmt.Errorf("%s.key_file: %w", path, ErrMissingKey)
	}
	if c.KeyFile != "" && c.CertFile == "" {
		return fmt.Errorf("%s.cert_file: %w", path, ErrMissingCert)
	}
	if len(c.Certs) > 0 && c.CertFile == "" {
		return fmt.Errorf("%s.cert_file: %w", path, ErrDefaultCert)
	}
	for i, p := range c.Certs {
		if p.CertFile == "" {
			return fmt.Errorf("%s.certs[%d].cert_file: %w", path, i, ErrMissingCert)
		}
		if p.KeyFile == "" {
			return fmt.Errorf("%s.certs[%d].key_file: %w", path, i, ErrMissingKey)
		}
	}
	if c.ClientAuth > ClientAuthRequired {
		return fmt.Errorf("%s.client_auth: %w, got %d", path, ErrClientAuth, c.ClientAuth)
	}
	if c.ClientAuth != ClientAuthNone && c.CAFile == "" {
		return fmt.Errorf("%s.ca_file: %w", path, ErrCANeeded)
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		return fmt.Errorf("%s.insecure_skip_verify: %w", path, ErrInsecureCA)
	}
	if _, err := parseVersion(c.MinVersion); err != nil {
		return fmt.Errorf("%s.min_version: %w, got %q", path, err, c.MinVersion)
	}
	return nil
}

// DefaultMinVersion is the oldest TLS version negotiated when MinVersion is
// empty (RFC 8996 deprecates 1.0 and 1.1).
const DefaultMinVersion = tls.VersionTLS12

// parseVersion maps MinVersion to crypto/tls's constant.
func parseVersion(s string) (uint16, error) {
	switch s {
	case "":
		return DefaultMinVersion, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.0", "1.1", "1", "ssl3", "3.0":
		return 0, ErrOldVersion
	}
	return 0, ErrVersion
}
