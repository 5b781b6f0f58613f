package clientkeys

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinels callers tell failures apart with, through errors.Is. Every error
// this package returns is an *Error whose Kind is one of these; the JWK Set
// rules wrap ErrInvalidJWKS and ErrTooLarge wraps ErrFetch, so a caller may
// test for the family or for the exact rule.
var (
	// ErrInvalidURL: the jwks_uri (or a redirect target) breaks a URL rule.
	ErrInvalidURL = errors.New("clientkeys: invalid jwks_uri")
	// ErrForbiddenAddress: the jwks_uri names or resolves to a non-public
	// address (loopback, private, link-local, metadata, ...).
	ErrForbiddenAddress = errors.New("clientkeys: jwks_uri address not allowed")
	// ErrFetch: the key set could not be retrieved (network, TLS, HTTP status,
	// timeout, too many redirects).
	ErrFetch = errors.New("clientkeys: fetching the JWK Set failed")
	// ErrTooLarge: the response exceeded Options.MaxBytes.
	ErrTooLarge = fmt.Errorf("%w: response too large", ErrFetch)
	// ErrRateLimited: a fetch was due but the last attempt for this URL was
	// less than Options.MinRefetch ago and it failed; the cause is kept.
	ErrRateLimited = errors.New("clientkeys: jwks_uri fetched too recently")

	// ErrInvalidJWKS: the document is not an acceptable JWK Set.
	ErrInvalidJWKS = errors.New("clientkeys: invalid JWK Set")
	// ErrPrivateKey: a key carries private members (d, p, q, dp, dq, qi, oth, k, priv).
	ErrPrivateKey = fmt.Errorf("%w: private key material", ErrInvalidJWKS)
	// ErrSymmetricKey: a key has kty "oct".
	ErrSymmetricKey = fmt.Errorf("%w: symmetric key", ErrInvalidJWKS)
	// ErrWeakKey: an RSA key shorter than 2048 bits.
	ErrWeakKey = fmt.Errorf("%w: key too weak", ErrInvalidJWKS)
	// ErrKeyUse: a key's use is not "sig" (or its key_ops exclude "verify").
	ErrKeyUse = fmt.Errorf("%w: key not for signatures", ErrInvalidJWKS)

	// ErrUnknownKID: no key in the set has the kid the assertion names.
	ErrUnknownKID = errors.New("clientkeys: unknown kid")
	// ErrNoKey: the assertion names no kid and no key in the set fits its alg.
	ErrNoKey = errors.New("clientkeys: no usable key")
	// ErrAmbiguousKey: more than one key fits (kid empty, or a repeated kid).
	ErrAmbiguousKey = errors.New("clientkeys: more than one key fits")
	// ErrAlgMismatch: the key with that kid cannot verify the assertion's alg.
	ErrAlgMismatch = errors.New("clientkeys: key does not fit alg")
	// ErrUnsupportedAlg: alg is not an asymmetric signature algorithm we accept.
	ErrUnsupportedAlg = errors.New("clientkeys: unsupported alg")
)

// Error is every failure this package returns. Public is a sentence safe to
// show the client (it names the rule and the fix, never an address list, a
// resolved IP or a Go error string); Detail and Cause are for the log only.
type Error struct {
	Kind   error  // one of the Err* sentinels
	Public string // for the client: what is wrong and how to fix it
	Detail string // for the log: URL, address, status, which rule fired
	Cause  error  // for the log and errors.Is: the underlying failure, if any
}

// Error is the log form: the public sentence, then the private detail and
// cause. A cause that is itself an *Error already quoted in the sentence
// contributes only its private part, so a log line says everything once.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Public)
	e.writeTail(&b)
	return b.String()
}

func (e *Error) writeTail(b *strings.Builder) {
	if e.Detail != "" {
		b.WriteString(" [")
		b.WriteString(e.Detail)
		b.WriteString("]")
	}
	if e.Cause == nil {
		return
	}
	if c, ok := e.Cause.(*Error); ok && strings.Contains(e.Public, c.Public) {
		c.writeTail(b)
		return
	}
	b.WriteString(": ")
	b.WriteString(e.Cause.Error())
}

// Unwrap exposes the Kind and the Cause, so errors.Is finds either (a
// rate-limited error still answers to the failure that caused it, and a
// timeout to context.DeadlineExceeded).
func (e *Error) Unwrap() []error {
	switch {
	case e.Kind != nil && e.Cause != nil:
		return []error{e.Kind, e.Cause}
	case e.Kind != nil:
		return []error{e.Kind}
	case e.Cause != nil:
		return []error{e.Cause}
	}
	return nil
}

// genericPublic is what a client learns about a failure this package did not
// describe itself (a caller's own error, a cancelled context).
const genericPublic = "smartgate could not use the client's JSON Web Key Set to verify the client assertion."

// PublicMessage returns a sentence about err that is safe to send to the
// client (e.g. as an OAuth error_description). It is "" for a nil error.
func PublicMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Public != "" {
		return e.Public
	}
	return genericPublic
}

func newError(kind error, public string, args ...any) *Error {
	return &Error{Kind: kind, Public: fmt.Sprintf(public, args...)}
}

func (e *Error) detail(format string, args ...any) *Error {
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

func (e *Error) cause(err error) *Error {
	e.Cause = err
	return e
}

// quote renders a client-supplied value (kid, alg, URL part) for a message:
// quoted, control characters escaped, and cut short so a hostile value cannot
// flood a response or a log line.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		// Cut on a rune boundary so %q does not show a torn character.
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
