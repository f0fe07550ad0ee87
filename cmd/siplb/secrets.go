package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The branch secret keys the MAC of every token siplb mints (Via branches,
// flow tokens, rewritten Contacts): a response or request that presents a
// token is only trusted if the MAC verifies. It must therefore never be
// derived from what siplb shows the network (its legs' tags are in every
// Via). Without engine.branch_secret it is random, made at the first start
// and kept in engine.state_dir.
const (
	minSecretLen       = 16               // characters of a configured secret, at least
	secretBytes        = 32               // random bytes of a generated one (written as 64 hex)
	secretFileName     = "branch_secret"  // in the state directory
	defaultStateDir    = "/var/lib/siplb" // without engine.state_dir and $STATE_DIRECTORY
	defaultSecretGrace = 24 * time.Hour   // engine.secret_grace
	farmHint           = "instances that serve one farm must share the secret: set engine.branch_secret, or copy this file to each"
)

// errBadSecretFile is a state file that exists but holds no usable secret;
// siplb does not replace it on its own, since instances may share it.
var errBadSecretFile = errors.New("holds no secret")

// stateDir returns the directory of siplb's state: engine.state_dir, else
// the first of systemd's $STATE_DIRECTORY (StateDirectory=; several are
// separated by colons), else /var/lib/siplb.
func stateDir(cfg *Config) string {
	if cfg.Engine.StateDir != "" {
		return cfg.Engine.StateDir
	}
	if v := os.Getenv("STATE_DIRECTORY"); v != "" {
		first, _, _ := strings.Cut(v, ":")
		return first
	}
	return defaultStateDir
}

// resolveSecrets returns the secret that signs (engine.branch_secret, else
// the state file's, made at the first start) and those that only verify
// (engine.previous_secrets). When the state directory cannot be read or
// written, the secret is random for this run only, with a loud warning:
// tokens then stop verifying at the next start and differ from other
// instances'. A state file that exists but holds less than minSecretLen
// characters is an error. The secrets are never logged.
func resolveSecrets(cfg *Config, log *slog.Logger) (current string, previous []string, err error) {
	previous = slices.Clone(cfg.Engine.PreviousSecrets)
	if cfg.Engine.BranchSecret != "" {
		return cfg.Engine.BranchSecret, previous, nil
	}
	dir := stateDir(cfg)
	path := filepath.Join(dir, secretFileName)
	current, created, err := loadOrCreateSecret(path, log)
	switch {
	case err == nil && created:
		log.Warn("branch secret generated and kept in the state directory; "+farmHint, "file", path)
	case err == nil:
		log.Info("branch secret read from the state directory; "+farmHint, "file", path)
	case errors.Is(err, errBadSecretFile):
		return "", nil, fmt.Errorf("engine.state_dir: %w", err)
	default:
		current = randomSecret()
		log.Warn("BRANCH SECRET IS TEMPORARY: the state directory cannot keep it, so the Via branches, flow tokens and rewritten Contacts minted now stop verifying when siplb restarts and differ from other instances'; set engine.branch_secret, or make engine.state_dir writable",
			"state_dir", dir, "err", err)
	}
	return current, previous, nil
}

// loadOrCreateSecret reads the secret kept at path, or makes one and keeps
// it there: the directory made 0700, the file 0600, written to a temporary
// file and linked into place, so a reader never sees part of it and of two
// instances starting at once the second takes the first's.
func loadOrCreateSecret(path string, log *slog.Logger) (secret string, created bool, err error) {
	for range 2 {
		s, err := readSecret(path, log)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return s, false, err
		}
		s = randomSecret()
		err = writeSecret(path, s)
		if errors.Is(err, fs.ErrExist) {
			continue // another instance kept its own first: take that one
		}
		return s, err == nil, err
	}
	return "", false, fmt.Errorf("%s: made and removed while siplb started", path)
}

func readSecret(path string, log *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if len(s) < minSecretLen {
		return "", fmt.Errorf("%s: %w (%d characters, want at least %d); remove it to make a new one", path, errBadSecretFile, len(s), minSecretLen)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("branch secret file is readable by others; make it 0600", "file", path, "mode", fi.Mode().Perm().String())
	}
	return s, nil
}

func writeSecret(path, s string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+secretFileName+"-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(s + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// A link fails if path exists, where a rename would replace a secret
	// another instance already uses; a filesystem without hard links gets
	// the rename.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// randomSecret returns secretBytes from crypto/rand as hex.
func randomSecret() string {
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails (Go 1.24+: it aborts the process instead)
	return hex.EncodeToString(b)
}
