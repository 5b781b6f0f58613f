package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/clientkeys"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// assertionClaims are the claims RFC 7523 §3 and SMART Backend Services
// require of a client assertion.
type assertionClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	Expiry    json.RawMessage `json:"exp"`
	IssuedAt  json.RawMessage `json:"iat"`
	NotBefore json.RawMessage `json:"nbf"`
	JTI       string          `json:"jti"`
}

// numericDate reads an RFC 7519 NumericDate: a JSON number (not a string).
func numericDate(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || raw[0] == '"' {
		return time.Time{}, false
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func badAssertion(format string, args ...any) *problem.Error {
	return problem.New(problem.ClientAssertionInvalid, format, args...).WithHeader("WWW-Authenticate", `Basic realm="smartgate"`)
}

// authenticateAssertion verifies a private_key_jwt client assertion
// (RFC 7523 §3, SMART Backend Services "Authenticating to the Token
// endpoint"). Every refusal names the rule.
func (s *Server) authenticateAssertion(ctx context.Context, raw, formID string) (*Client, error) {
	algs := make([]jose.SignatureAlgorithm, len(AssertionAlgs))
	for i, a := range AssertionAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSigned(raw, algs)
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return nil, badAssertion("the assertion's alg %q is not accepted: use one of %s (none and HMAC algorithms are never accepted)", algErr.Got, strings.Join(AssertionAlgs, ", "))
		}
		return nil, badAssertion("client_assertion is not a signed JWT in compact form (three base64url parts separated by dots)")
	}
	if len(jws.Signatures) != 1 {
		return nil, badAssertion("the assertion must carry exactly one signature")
	}
	h := jws.Signatures[0].Header
	// The payload is read before the signature is checked only to learn
	// which client's keys to check it with.
	var claims assertionClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return nil, badAssertion("the assertion's payload is not a JSON object of claims")
	}
	if claims.Issuer == "" || claims.Subject == "" {
		return nil, badAssertion("the assertion needs iss and sub, both set to your client_id")
	}
	if claims.Issuer != claims.Subject {
		return nil, badAssertion("the assertion's iss (%q) and sub (%q) must both be your client_id", claims.Issuer, claims.Subject)
	}
	if formID != "" && formID != claims.Issuer {
		return nil, badAssertion("client_id %q differs from the assertion's iss and sub %q", formID, claims.Issuer)
	}
	c, err := s.Clients.Get(ctx, claims.Issuer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badAssertion("the assertion's iss %q is not a registered client_id", claims.Issuer)
	}
	if err != nil {
		return nil, err
	}
	if c.Metadata.TokenEndpointAuthMethod != "private_key_jwt" {
		return nil, invalidClient("client %s registered token_endpoint_auth_method %s, not private_key_jwt; %s", c.ID, c.Metadata.TokenEndpointAuthMethod, howTo(c.Metadata.TokenEndpointAuthMethod))
	}
	key, err := s.assertionKey(ctx, c, h)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, badAssertion("the assertion's signature does not verify with the registered key %q; sign with the private key of a key in your registered JWKS", key.KeyID)
	}
	_ = payload
	if err := s.checkAssertionClaims(ctx, c, claims); err != nil {
		return nil, err
	}
	if err := statusError(c); err != nil {
		return nil, err
	}
	return c, nil
}

// assertionKey finds the registered key that must have signed the assertion.
func (s *Server) assertionKey(ctx context.Context, c *Client, h jose.Header) (*jose.JSONWebKey, error) {
	if jku, ok := h.ExtraHeaders["jku"]; ok {
		u, _ := jku.(string)
		if c.Metadata.JWKSURI == "" || u != c.Metadata.JWKSURI {
			return nil, badAssertion("the assertion's jku header %q is not the client's registered jwks_uri; remove jku or register that URL", u)
		}
	}
	if h.JSONWebKey != nil {
		return nil, badAssertion("the assertion embeds a key (jwk header); keys must come from the registered JWKS")
	}
	var key *jose.JSONWebKey
	var err error
	switch {
	case c.JWKS != nil:
		key, err = clientkeys.Find(c.JWKS, h.KeyID, h.Algorithm)
	case c.Metadata.JWKSURI != "":
		if s.Keys == nil {
			return nil, problem.Internal(fmt.Errorf("no client key fetcher"))
		}
		key, err = s.Keys.Key(ctx, c.Metadata.JWKSURI, h.KeyID, h.Algorithm)
	default:
		return nil, badAssertion("client %s has no registered keys (jwks or jwks_uri)", c.ID)
	}
	if err != nil {
		if errors.Is(err, clientkeys.ErrUnknownKID) {
			return nil, badAssertion("the assertion's kid %q is not in the client's registered keys; %s", h.KeyID, clientkeys.PublicMessage(err))
		}
		return nil, badAssertion("no registered key can verify this assertion: %s", clientkeys.PublicMessage(err))
	}
	return key, nil
}

func (s *Server) checkAssertionClaims(ctx context.Context, c *Client, claims assertionClaims) error {
	now := s.Clock()
	skew := s.Config.Assertions.Skew.D()
	endpoint := s.TokenEndpoint()
	var auds []string
	var one string
	if json.Unmarshal(claims.Audience, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(claims.Audience, &auds) != nil {
		return badAssertion("the assertion's aud must be the token endpoint URL %s", endpoint)
	}
	if !slices.Contains(auds, endpoint) {
		return badAssertion("the assertion's aud %q is not this token endpoint; set aud to %s exactly", strings.Join(auds, " "), endpoint)
	}
	if claims.Expiry == nil {
		return badAssertion("the assertion needs exp (at most %s ahead)", s.Config.Assertions.MaxLifetime.D())
	}
	exp, ok := numericDate(claims.Expiry)
	if !ok {
		return badAssertion("the assertion's exp must be a JSON number of seconds since 1970 (RFC 7519 NumericDate), not a string")
	}
	if !now.Add(-skew).Before(exp) {
		return badAssertion("the assertion expired at %s; sign a fresh one for every token request", exp.UTC().Format(time.RFC3339))
	}
	if exp.After(now.Add(s.Config.Assertions.MaxLifetime.D() + skew)) {
		return badAssertion("the assertion's exp is %s ahead; it must be at most %s ahead", exp.Sub(now).Round(time.Second), s.Config.Assertions.MaxLifetime.D())
	}
	for _, d := range [...]struct {
		name string
		raw  json.RawMessage
	}{{"nbf", claims.NotBefore}, {"iat", claims.IssuedAt}} {
		if d.raw == nil {
			continue
		}
		t, ok := numericDate(d.raw)
		if !ok {
			return badAssertion("the assertion's %s must be a JSON number of seconds since 1970 (RFC 7519 NumericDate)", d.name)
		}
		if t.After(now.Add(skew)) {
			return badAssertion("the assertion's %s is in the future; check your clock", d.name)
		}
	}
	if claims.JTI == "" {
		return badAssertion("the assertion needs a jti: a new random value for every assertion")
	}
	if len(claims.JTI) > 256 {
		return badAssertion("the assertion's jti is longer than 256 characters")
	}
	fresh, err := s.Store.UseAssertion(ctx, c.ID, claims.JTI, exp.Add(skew), now)
	if err != nil {
		return problem.Internal(err)
	}
	if !fresh {
		return badAssertion("the assertion's jti %q was already used; every assertion needs a new jti (replay refused)", claims.JTI)
	}
	return nil
}
