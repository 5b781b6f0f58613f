// Package keys owns the signing-key lifecycle: generation on first start,
// encryption at rest under a key-encryption key (KEK), rotation with a
// publish-before-use period, re-wrapping under a new KEK, and the JWKS.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"smartgate/internal/problem"
)

// KEK is a key-encryption key: 32 random bytes that seal every private
// signing key with AES-256-GCM.
type KEK struct {
	key    [32]byte
	ID     string // a fingerprint, stored beside each sealed key; not secret
	Source string // "SMARTGATE_KEK" or the file path, for messages
}

// ParseKEK decodes a KEK written as standard base64.
func ParseKEK(text, source string) (*KEK, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(raw) != 32 {
		return nil, problem.New(problem.KEKInvalid, "the KEK in %s is not 32 bytes in standard base64; generate one with: head -c 32 /dev/urandom | base64", source)
	}
	k := &KEK{Source: source}
	copy(k.key[:], raw)
	sum := sha256.Sum256(append([]byte("smartgate kek id\x00"), raw...))
	k.ID = hex.EncodeToString(sum[:8])
	return k, nil
}

// LoadKEKFile reads a KEK file, refusing one that group or others can read.
func LoadKEKFile(path string) (*KEK, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, problem.Wrap(problem.KEKMissing, err, "the KEK file %s does not exist; create it with: head -c 32 /dev/urandom | base64 > %s && chmod 600 %s", path, path, path)
		}
		return nil, problem.Wrap(problem.KEKMissing, err, "the KEK file %s cannot be read; check its owner and permissions", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, problem.New(problem.KEKPermissions, "the KEK file %s has mode %04o, readable by group or others; run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, problem.Wrap(problem.KEKMissing, err, "the KEK file %s cannot be read; check its owner and permissions", path)
	}
	return ParseKEK(string(b), path)
}

// GenerateKEK returns a new random KEK in standard base64.
func GenerateKEK() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// WriteKEKFile writes a KEK to path with mode 0600, atomically (a temporary
// file renamed into place). With exclusive set it fails if path exists.
func WriteKEKFile(path, kek string, exclusive bool) error {
	if exclusive {
		if _, err := os.Stat(path); err == nil {
			return fs.ErrExist
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(kek + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if exclusive {
		// Link fails if another process created path in the meantime.
		return os.Link(tmp.Name(), path)
	}
	return os.Rename(tmp.Name(), path)
}

// Seal encrypts plaintext with AES-256-GCM, binding it to kid as additional
// data so that a sealed key cannot be swapped onto another kid.
func (k *KEK) Seal(kid string, plaintext []byte) ([]byte, error) {
	gcm, err := k.gcm()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plaintext)+gcm.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plaintext, []byte(kid)), nil
}

// ErrWrongKEK means a sealed key did not open under this KEK.
var ErrWrongKEK = errors.New("keys: the KEK does not open this key")

// Open decrypts what Seal produced for kid.
func (k *KEK) Open(kid string, sealed []byte) ([]byte, error) {
	gcm, err := k.gcm()
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, fmt.Errorf("%w: sealed key %s is truncated", ErrWrongKEK, kid)
	}
	pt, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("%w (key %s)", ErrWrongKEK, kid)
	}
	return pt, nil
}

func (k *KEK) gcm() (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
