package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"smartgate/internal/problem"
)

// The argon2id parameters: OWASP's Password Storage Cheat Sheet minimum
// (m=19 MiB, t=2, p=1), with a 16-byte salt and a 32-byte hash (RFC 9106
// §4 recommends 128-bit salts and 256-bit tags). One hash takes ~20 ms on
// one core of the reference machine (DESIGN.md).
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on the parameters of a stored hash: a hash written with larger
// ones (by hand, or planted in the database) is refused rather than letting
// one login allocate gigabytes.
const (
	maxArgonMemory  = 64 * 1024 // KiB
	maxArgonTime    = 16
	maxArgonThreads = 16
)

// Password rules (NIST SP 800-63B §5.1.1.2: at least 8 characters, 15
// for a password that is the only factor; 12 is smartgate's floor, and
// long passphrases must fit).
const (
	MinPasswordLength = 12   // characters
	MaxPasswordBytes  = 1024 // bytes, so that nobody hashes megabytes
)

// ErrMalformedHash means a stored password hash is not an argon2id PHC
// string smartgate can verify.
var ErrMalformedHash = errors.New("identity: malformed argon2id hash")

// Hasher hashes and verifies passwords with argon2id, at most a fixed
// number at once: each computation holds 19 MiB, so a flood of logins
// waits for a slot (or for its request to end) instead of exhausting
// memory.
type Hasher struct {
	sem chan struct{}

	dummyOnce sync.Once
	dummy     string // a hash of a random password, verified for unknown users
}

// NewHasher returns a Hasher that computes at most n hashes at once; n < 1
// means GOMAXPROCS (argon2id with p=1 keeps one core busy).
func NewHasher(n int) *Hasher {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	return &Hasher{sem: make(chan struct{}, n)}
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// normalize puts a password in Unicode NFC, so that the same characters
// typed on different keyboards hash alike (NIST SP 800-63B §5.1.1.2).
func normalize(password string) []byte { return norm.NFC.Bytes([]byte(password)) }

// HashPassword returns the argon2id hash of password in PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (unpadded standard base64).
func (h *Hasher) HashPassword(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey(normalize(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	h.release()
	return encodePHC(phc{memory: argonMemory, time: argonTime, threads: argonThreads, salt: salt, key: key}), nil
}

// VerifyPassword reports whether password matches encoded, comparing in
// constant time. It waits for a hashing slot; an error is either
// ErrMalformedHash or the context's.
func (h *Hasher) VerifyPassword(ctx context.Context, encoded, password string) (bool, error) {
	p, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	key := argon2.IDKey(normalize(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	h.release()
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// verifyDummy spends the time of one verification on a hash no password
// matches, so that an unknown username answers as slowly as a known one.
func (h *Hasher) verifyDummy(ctx context.Context, password string) error {
	h.dummyOnce.Do(func() {
		var pw [32]byte
		_, _ = rand.Read(pw[:])
		salt := make([]byte, argonSaltLen)
		_, _ = rand.Read(salt)
		key := argon2.IDKey(pw[:], salt, argonTime, argonMemory, argonThreads, argonKeyLen)
		h.dummy = encodePHC(phc{memory: argonMemory, time: argonTime, threads: argonThreads, salt: salt, key: key})
	})
	_, err := h.VerifyPassword(ctx, h.dummy, password)
	return err
}

// NeedsRehash reports whether encoded was made with other parameters than
// the current ones (it is then rehashed at the next successful login).
func NeedsRehash(encoded string) bool {
	p, err := parsePHC(encoded)
	return err != nil || p.memory != argonMemory || p.time != argonTime || p.threads != argonThreads ||
		len(p.salt) != argonSaltLen || len(p.key) != argonKeyLen
}

type phc struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

var b64 = base64.RawStdEncoding

func encodePHC(p phc) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(p.salt), b64.EncodeToString(p.key))
}

// parsePHC reads "$argon2id$v=19$m=..,t=..,p=..$salt$hash" (the PHC string
// format of the reference implementation, RFC 9106 §3.1 parameters).
func parsePHC(s string) (phc, error) {
	var p phc
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, ErrMalformedHash
	}
	seen := 0
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return p, ErrMalformedHash
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return p, ErrMalformedHash
			}
			p.threads = uint8(n)
		default:
			return p, ErrMalformedHash
		}
		seen++
	}
	var err1, err2 error
	p.salt, err1 = b64.DecodeString(parts[4])
	p.key, err2 = b64.DecodeString(parts[5])
	switch {
	case seen != 3, err1 != nil, err2 != nil,
		p.threads < 1 || p.threads > maxArgonThreads,
		p.time < 1 || p.time > maxArgonTime,
		p.memory < 8*uint32(p.threads) || p.memory > maxArgonMemory,
		len(p.salt) < 8 || len(p.salt) > 64,
		len(p.key) < 16 || len(p.key) > 64:
		return p, ErrMalformedHash
	}
	return p, nil
}

// CheckPassword applies the password rules for a new password of
// username: at least MinPasswordLength characters, at most
// MaxPasswordBytes bytes, valid UTF-8, and not the username in any case.
func CheckPassword(username, password string) error {
	return passwordRules(username, password, MinPasswordLength)
}

func passwordRules(username, password string, minLen int) error {
	switch {
	case !utf8.ValidString(password):
		return problem.New(problem.PasswordRejected, "the password is not valid UTF-8 text")
	case len(password) > MaxPasswordBytes:
		return problem.New(problem.PasswordRejected, "the password is longer than %d bytes; choose a shorter one", MaxPasswordBytes)
	case utf8.RuneCountInString(password) < minLen:
		return problem.New(problem.PasswordRejected, "the password has %d characters; it needs at least %d (a few unrelated words make a long password that is easy to type)",
			utf8.RuneCountInString(password), minLen)
	case username != "" && strings.EqualFold(strings.TrimSpace(password), username):
		return problem.New(problem.PasswordRejected, "the password is the username; choose a password nobody can guess from the account name")
	}
	return nil
}
