package engine

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/dchest/siphash"

	"github.com/siplb/siplb/pool"
)

// Every token siplb mints and later trusts (the Via branch, the flow in a
// Record-Route or a Path, a rewritten Contact) carries a 64-bit SipHash-2-4 MAC keyed
// by the branch secret, checked before anything in the token is used. A
// token that fails is treated as absent and counted (Counters.BadTokens).
//
// The secrets form a key ring: the first signs, every one verifies, so an
// operator rotates the secret with no dialog lost (SetSecrets on reload,
// the old secret kept for a grace period). Each token kind has a key of its
// own, derived from the secret, so a MAC made for one kind never passes as
// another's.

// macKey is one SipHash key.
type macKey struct{ k0, k1 uint64 }

// secretKeys are the keys derived from one secret.
type secretKeys struct {
	branch, flow, contact, path macKey
}

// keyRing is the secrets in force: keys[0] signs, all verify. Immutable;
// SetSecrets publishes a new one.
type keyRing struct {
	keys []secretKeys
}

// deriveKeys derives the per-kind keys of a secret.
func deriveKeys(secret string) secretKeys {
	k := func(kind string) macKey {
		sum := sha256.Sum256([]byte("siplb token key v1\x00" + kind + "\x00" + secret))
		return macKey{binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])}
	}
	return secretKeys{branch: k("branch"), flow: k("flow"), contact: k("contact"), path: k("path")}
}

func newKeyRing(cur string, prev []string) *keyRing {
	r := &keyRing{keys: make([]secretKeys, 0, 1+len(prev))}
	r.keys = append(r.keys, deriveKeys(cur))
	for _, p := range prev {
		if p != "" && p != cur {
			r.keys = append(r.keys, deriveKeys(p))
		}
	}
	return r
}

// SetSecrets replaces the key ring: cur signs every token from now on, and
// each of prev still verifies the tokens it signed until a later SetSecrets
// leaves it out. Safe to call while the server runs.
func (f *Forwarder) SetSecrets(cur string, prev ...string) {
	f.ring.Store(newKeyRing(cur, prev))
}

// sum is SipHash-2-4 of p under k.
func (k macKey) sum(p []byte) uint64 { return siphash.Hash(k.k0, k.k1, p) }

// branchMAC binds the in-leg, the transaction, the loop hash and the
// connection.
func (k macKey) branchMAC(in int, tx uint64, loop uint32, conn pool.ConnID) uint64 {
	var b [21]byte
	binary.LittleEndian.PutUint64(b[0:], tx)
	binary.LittleEndian.PutUint32(b[8:], loop)
	binary.LittleEndian.PutUint64(b[12:], uint64(conn))
	b[20] = byte(in)
	return k.sum(b[:])
}

// maxTokenBody is the longest token body a MAC covers: a flow's is at
// most 37 bytes ("u" and an IPv6 address and port in hex).
const maxTokenBody = 48

// flowMAC binds a flow token to the dialog it was minted for: a backend's
// request in that dialog carries the same Call-ID, and a token copied into
// another dialog fails.
func (k macKey) flowMAC(token, callID []byte) uint64 {
	// MAC(token || MAC(Call-ID)): the inner value is keyed, so no sender can
	// find two Call-IDs that share it; the token is at most 48 bytes.
	var b [maxTokenBody + 8]byte
	n := copy(b[:maxTokenBody], token)
	binary.LittleEndian.PutUint64(b[n:], k.sum(callID))
	return k.sum(b[:n+8])
}

// pathMAC signs the flow token of a Path value (RFC 3327). Unlike flowMAC
// it binds no Call-ID: a registrar's requests to the registered contact
// belong to dialogs that do not exist yet. Its key is the path kind's own,
// so a Path token never passes as a Record-Route one nor the reverse.
func (k macKey) pathMAC(token []byte) uint64 { return k.sum(token) }
