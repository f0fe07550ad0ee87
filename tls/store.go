package tls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Store holds the certificates, keys and CA bundle a Config names, and
// reloads them. It is safe for concurrent use. Live connections keep the
// certificate they handshook with; new handshakes get the reloaded one.
type Store struct {
	cfg  Config // private copy; Certs cloned
	min  uint16
	gen  atomic.Pointer[generation]
	mu   sync.Mutex // serializes Reload
	path string     // key path in errors from NewStore and Reload
}

// generation is one immutable load of every file of a Store.
type generation struct {
	def   *tls.Certificate              // CertFile/KeyFile; nil when not configured
	exact map[string][]*tls.Certificate // lower-case DNS name -> leaves naming it, in config order
	wild  map[string][]*tls.Certificate // "example.com" for "*.example.com"
	cas   *x509.CertPool                // CAFile; nil when not configured

	// server is the listener's configuration for this generation, returned
	// by GetConfigForClient. Its session tickets are wrapped with its own
	// keys, so tickets issued before a reload do not resume after it.
	server *tls.Config
	// sessions caches client sessions to backends for this generation only,
	// for the same reason.
	sessions tls.ClientSessionCache
}

// clientSessionCacheSize bounds the TLS sessions to backends remembered per
// generation; one per backend suffices, and farms are small.
const clientSessionCacheSize = 256

// NewStore validates c and loads every file it names. Errors name the key at
// fault under "tls" (e.g. "tls.key_file: open x.key: no such file or
// directory"); call Config.Validate first for errors under the real key path.
func NewStore(c Config) (*Store, error) {
	s := &Store{cfg: c, path: "tls"}
	s.cfg.Certs = slices.Clone(c.Certs)
	if err := s.cfg.check(s.path); err != nil {
		return nil, err
	}
	s.min, _ = parseVersion(c.MinVersion) // checked above
	g, err := load(&s.cfg, s.path)
	if err != nil {
		return nil, err
	}
	s.install(g)
	return s, nil
}

// Reload re-reads every file. On success new handshakes use the new
// certificates and CA bundle; established connections are not touched. On
// error the Store keeps the certificates it had and returns the error.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := load(&s.cfg, s.path)
	if err != nil {
		return err
	}
	s.install(g)
	return nil
}

// Leaf returns the parsed leaf of the default certificate (CertFile) of the
// current generation, or nil when none is configured. The admin listener uses
// it to report expiry; callers must not modify it.
func (s *Store) Leaf() *x509.Certificate {
	if d := s.gen.Load().def; d != nil {
		return d.Leaf
	}
	return nil
}

// ServerConfig returns a new server-side *tls.Config whose GetConfigForClient
// hands every handshake the current generation: the certificate chosen by
// SNI, the client-certificate policy and the current CA bundle as ClientCAs.
// Reloads therefore apply to handshakes that start after them. The returned
// value belongs to the caller.
func (s *Store) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: s.min,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.gen.Load().server, nil
		},
	}
}

// ClientConfig returns a new client-side *tls.Config for dialing a backend
// with the current generation: RootCAs from CAFile (nil: the system's roots),
// the client certificate from CertFile if any, and serverName as SNI and the
// name verified (empty: Config.ServerName; if that is empty too, the caller
// must set ServerName or use Dial, which takes the host dialed). It reflects
// the files loaded when it is called, so get one per dial. The returned value
// belongs to the caller.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	g := s.gen.Load()
	if serverName == "" {
		serverName = s.cfg.ServerName
	}
	c := &tls.Config{
		MinVersion:         s.min,
		ServerName:         serverName,
		RootCAs:            g.cas,
		InsecureSkipVerify: s.cfg.InsecureSkipVerify,
		ClientSessionCache: g.sessions,
	}
	if g.def != nil {
		cert := g.def
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	return c
}

// install builds the generation's server configuration and publishes it.
func (s *Store) install(g *generation) {
	srv := &tls.Config{
		MinVersion:     s.min,
		GetCertificate: g.certificate,
		ClientAuth:     s.cfg.ClientAuth.stdlib(),
		ClientCAs:      g.cas,
	}
	// Tickets encrypted with this Config's own automatic keys: the keys die
	// with the generation, so a client verified against a CA bundle that a
	// reload removed cannot resume.
	srv.WrapSession = srv.EncryptTicket
	srv.UnwrapSession = srv.DecryptTicket
	g.server = srv
	g.sessions = tls.NewLRUClientSessionCache(clientSessionCacheSize)
	s.gen.Store(g)
}

// certificate is the generation's GetCertificate: the chain for the server
// name in the ClientHello, or the default one.
func (g *generation) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cands := g.lookup(hello.ServerName)
	switch len(cands) {
	case 0:
		if g.def == nil {
			return nil, ErrNoCertificate
		}
		return g.def, nil
	case 1:
		return cands[0], nil
	}
	// Several chains name the host (say ECDSA and RSA): the first the client
	// can use.
	for _, c := range cands {
		if hello.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	return cands[0], nil
}

// lookup returns the chains whose leaf names host, exact names before
// wildcards, or nil. host is the SNI value; crypto/tls has already refused
// one with a trailing dot, but not upper case.
func (g *generation) lookup(host string) []*tls.Certificate {
	if host == "" {
		return nil
	}
	host = strings.ToLower(host) // no copy unless it has upper case
	if c := g.exact[host]; c != nil {
		return c
	}
	// RFC 6125 §6.4.3: "*" matches exactly one left-most label.
	if i := strings.IndexByte(host, '.'); i > 0 {
		return g.wild[host[i+1:]]
	}
	return nil
}

// load reads every file c names into a new generation (not yet installed).
// Errors name the key under path.
func load(c *Config, path string) (*generation, error) {
	g := &generation{
		exact: make(map[string][]*tls.Certificate),
		wild:  make(map[string][]*tls.Certificate),
	}
	if c.CertFile != "" {
		cert, err := loadPair(c.CertFile, c.KeyFile, path)
		if err != nil {
			return nil, err
		}
		g.def = cert
		g.index(cert)
	}
	for i, p := range c.Certs {
		cert, err := loadPair(p.CertFile, p.KeyFile, fmt.Sprintf("%s.certs[%d]", path, i))
		if err != nil {
			return nil, err
		}
		g.index(cert)
	}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", path, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s.ca_file: %s: %w", path, c.CAFile, ErrNoCACerts)
		}
		g.cas = pool
	}
	return g, nil
}

// index files cert under each DNS name of its leaf.
func (g *generation) index(cert *tls.Certificate) {
	for _, name := range cert.Leaf.DNSNames {
		name = strings.ToLower(name)
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			g.wild[rest] = append(g.wild[rest], cert)
			continue
		}
		g.exact[name] = append(g.exact[name], cert)
	}
}

// loadPair reads one certificate chain and its key; path is the key path of
// the pair (errors end in .cert_file or .key_file).
func loadPair(certFile, keyFile, path string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("%s.cert_file: %w", path, err)
	}
	if err := checkCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("%s.cert_file: %s: %w", path, certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s.key_file: %w", path, err)
	}
	// The chain parsed above, so what fails now is the key or the match.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s.key_file: %s: %w", path, keyFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s.cert_file: %s: %w", path, certFile, err)
		}
	}
	return &cert, nil
}

// checkCertPEM reports whether b holds at least one CERTIFICATE block and
// every such block parses, so that a broken chain is blamed on cert_file.
func checkCertPEM(b []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return ErrNoPEMCert
	}
	return nil
}
