// Package token issues and verifies smartgate's access tokens: JWTs per RFC
// 9068 ("JSON Web Token Profile for OAuth 2.0 Access Tokens"), signed ES256,
// with the SMART launch context. One Verifier serves introspection, userinfo
// and the FHIR API: it checks the signature, issuer, audience, expiry and
// revocation, and says precisely why a token is refused.
package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"smartgate/internal/keys"
)

// TypeAccessToken is the JOSE typ of access tokens (RFC 9068 §2.1).
const TypeAccessToken = "at+jwt"

// Claims are an access token's claims (RFC 9068 §2.2 plus SMART context).
type Claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf,omitempty"`
	Expiry    int64  `json:"exp"`
	JTI       string `json:"jti"`
	Grant     string `json:"grant,omitempty"`
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
	FHIRUser  string `json:"fhirUser,omitempty"`
}

// Reason says why a token was refused.
type Reason string

const (
	Malformed     Reason = "malformed"
	NotIssuedHere Reason = "not issued here"
	BadSignature  Reason = "bad signature"
	WrongAudience Reason = "wrong audience"
	Expired       Reason = "expired"
	NotYetValid   Reason = "not yet valid"
	Revoked       Reason = "revoked"
)

// Error is a refused token: Reason for programs, Description for people
// (it goes into error_description and WWW-Authenticate).
type Error struct {
	Reason      Reason
	Description string
}

func (e *Error) Error() string { return e.Description }

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Description: fmt.Sprintf(format, args...)}
}

// Service issues and verifies access tokens for one issuer.
type Service struct {
	keys     *keys.Manager
	issuer   string
	audience string
	revs     *Revocations
	clock    func() time.Time

	signers sync.Map // kid -> *es256Signer

	cacheMu sync.RWMutex
	cache   map[[32]byte]*Claims
	maxSize int
}

// Options configure a Service.
type Options struct {
	Issuer   string
	Audience string // the FHIR base URL
	Clock    func() time.Time
	// CacheSize bounds the verified-token cache (DESIGN.md: keyed by a hash
	// of the token, never trusted past expiry, always re-checked against
	// revocations). 0 means 100,000.
	CacheSize int
}

// New returns a Service.
func New(k *keys.Manager, revs *Revocations, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 100_000
	}
	return &Service{keys: k, issuer: opts.Issuer, audience: opts.Audience, revs: revs, clock: opts.Clock,
		cache: make(map[[32]byte]*Claims), maxSize: opts.CacheSize}
}

// Audience is the aud of every access token: the FHIR base URL.
func (s *Service) Audience() string { return s.audience }

// Issuer is the iss of every token.
func (s *Service) Issuer() string { return s.issuer }

// NewID returns a random identifier for jti and grant ids (128 bits).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Issue signs an access token. It fills iss, aud, iat and jti when empty;
// the caller sets sub, client_id, scope, exp and the context.
func (s *Service) Issue(c Claims) (string, error) {
	if c.Issuer == "" {
		c.Issuer = s.issuer
	}
	if c.Audience == "" {
		c.Audience = s.audience
	}
	if c.IssuedAt == 0 {
		c.IssuedAt = s.clock().Unix()
	}
	if c.JTI == "" {
		c.JTI = NewID()
	}
	k, err := s.keys.Signer(keys.ES256)
	if err != nil {
		return "", err
	}
	signer, err := s.signer(k)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return signer.sign(payload)
}

// es256Signer signs the JWS Compact Serialization (RFC 7515 §7.1) of
// access tokens with one ES256 key. The protected header is the same for
// every token of a key, so it is encoded once here, where go-jose's signer
// marshalled and encoded it again for every token: that was about 30% of a
// token request's allocations and 6% of its CPU. Verification stays with
// go-jose (Verify, and every resource server).
type es256Signer struct {
	key    *ecdsa.PrivateKey
	prefix string // base64url(protected header) + "."
}

func newES256Signer(k *keys.Key) (*es256Signer, error) {
	priv, ok := k.Private.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key %s is a %T, not an ECDSA P-256 key, so it cannot sign ES256", k.KID, k.Private)
	}
	// The header go-jose wrote for these tokens, members in the same order.
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		KID string `json:"kid"`
		Typ string `json:"typ"`
	}{"ES256", k.KID, TypeAccessToken})
	if err != nil {
		return nil, err
	}
	return &es256Signer{key: priv, prefix: base64.RawURLEncoding.EncodeToString(h) + "."}, nil
}

// sign returns header.payload.signature, where the signature is ECDSA
// P-256 over SHA-256 of the signing input, as the 64-byte big-endian R || S
// that RFC 7518 §3.4 prescribes (not ASN.1 DER).
func (s *es256Signer) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.prefix)+enc.EncodedLen(len(payload))+1+enc.EncodedLen(64))
	buf = append(buf, s.prefix...)
	buf = enc.AppendEncode(buf, payload)
	digest := sha256.Sum256(buf)
	r, ss, err := ecdsa.Sign(rand.Reader, s.key, digest[:])
	if err != nil {
		return "", err
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig[:])
	return string(buf), nil
}

func (s *Service) signer(k *keys.Key) (*es256Signer, error) {
	if v, ok := s.signers.Load(k.KID); ok {
		return v.(*es256Signer), nil
	}
	signer, err := newES256Signer(k)
	if err != nil {
		return nil, err
	}
	s.signers.Store(k.KID, signer)
	return signer, nil
}

// Verify checks an access token and returns its claims, or an *Error
// saying exactly why it is refused.
func (s *Service) Verify(ctx context.Context, raw string) (*Claims, error) {
	if len(raw) > 16<<10 {
		return nil, refuse(Malformed, "the token is longer than any token this server issues")
	}
	now := s.clock()
	key := sha256.Sum256([]byte(raw))
	s.cacheMu.RLock()
	c, hit := s.cache[key]
	s.cacheMu.RUnlock()
	if !hit {
		var err error
		c, err = s.verifySignature(raw)
		if err != nil {
			return nil, err
		}
		if err := s.checkIdentity(c); err != nil {
			return nil, err
		}
	}
	if now.Unix() >= c.Expiry {
		if hit {
			s.cacheMu.Lock()
			delete(s.cache, key)
			s.cacheMu.Unlock()
		}
		return nil, refuse(Expired, "the access token expired at %s; get a new one from the token endpoint", time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	}
	if c.IssuedAt > now.Add(time.Minute).Unix() || (c.NotBefore != 0 && c.NotBefore > now.Add(time.Minute).Unix()) {
		return nil, refuse(NotYetValid, "the access token is not valid yet (iat or nbf in the future); check the clocks")
	}
	if s.revs != nil {
		if why := s.revs.Check(c); why != "" {
			return nil, refuse(Revoked, "the access token was revoked (%s)", why)
		}
	}
	if !hit {
		s.remember(key, c)
	}
	return c, nil
}

func (s *Service) verifySignature(raw string) (*Claims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return nil, refuse(NotIssuedHere, "the token is not signed with ES256, as this server's access tokens are; it was not issued here")
		}
		return nil, refuse(Malformed, "the token is not a signed JWT (three base64url parts separated by dots); send the access_token value from the token response unchanged")
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != TypeAccessToken && typ != "application/"+TypeAccessToken {
		return nil, refuse(NotIssuedHere, "the JWT's typ is %q, not at+jwt: it is not an access token (an id_token or client assertion cannot be used as one)", typ)
	}
	pub, ok := s.keys.PublicKey(h.KeyID)
	if !ok {
		return nil, refuse(NotIssuedHere, "the token's signing key (kid %q) is not one of this server's keys (%s/oauth2/jwks); it was not issued here or its key was retired", h.KeyID, s.issuer)
	}
	var c Claims
	if err := tok.Claims(pub.Key, &c); err != nil {
		return nil, refuse(BadSignature, "the token's signature does not verify; it was altered or not issued here")
	}
	return &c, nil
}

func (s *Service) checkIdentity(c *Claims) error {
	if c.Issuer != s.issuer {
		return refuse(NotIssuedHere, "the token's issuer is %q, not %q", c.Issuer, s.issuer)
	}
	if c.Audience != s.audience {
		return refuse(WrongAudience, "the token's audience is %q, but this API is %q; request the token with aud=%s", c.Audience, s.audience, s.audience)
	}
	if c.Expiry == 0 || c.JTI == "" || c.ClientID == "" {
		return refuse(Malformed, "the token lacks exp, jti or client_id")
	}
	return nil
}

func (s *Service) remember(key [32]byte, c *Claims) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if len(s.cache) >= s.maxSize {
		// Evict about a tenth, arbitrary entries (map order): cheap and
		// bounded; a miss only costs a signature check.
		n := s.maxSize / 10
		for k := range s.cache {
			delete(s.cache, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	s.cache[key] = c
}
