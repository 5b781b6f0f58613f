package token

import (
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"smartgate/internal/keys"
)

// IDClaims are an OpenID Connect id_token's claims (OpenID Connect Core
// 1.0 §2) with SMART's fhirUser.
type IDClaims struct {
	Issuer            string   `json:"iss"`
	Subject           string   `json:"sub"`
	Audience          string   `json:"aud"`
	AuthorizedParty   string   `json:"azp,omitempty"`
	Expiry            int64    `json:"exp"`
	IssuedAt          int64    `json:"iat"`
	AuthTime          int64    `json:"auth_time,omitempty"`
	Nonce             string   `json:"nonce,omitempty"`
	AMR               []string `json:"amr,omitempty"`
	SessionID         string   `json:"sid,omitempty"`
	FHIRUser          string   `json:"fhirUser,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
}

// IssueIDToken signs an id_token with the active RS256 key (OpenID
// Connect Core §15.1: RS256 is the algorithm every relying party can
// verify). It fills iss and iat when empty; the caller sets the rest.
func (s *Service) IssueIDToken(c IDClaims) (string, error) {
	if c.Issuer == "" {
		c.Issuer = s.issuer
	}
	if c.IssuedAt == 0 {
		c.IssuedAt = s.clock().Unix()
	}
	k, err := s.keys.Signer(keys.RS256)
	if err != nil {
		return "", err
	}
	var sig jose.Signer
	if v, ok := s.signers.Load("rs256:" + k.KID); ok {
		sig = v.(jose.Signer)
	} else {
		sig, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.KID}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			return "", err
		}
		s.signers.Store("rs256:"+k.KID, sig)
	}
	return jwt.Signed(sig).Claims(c).Serialize()
}

// ErrIDTokenHint is returned for an id_token_hint this server did not
// issue (or whose signature does not verify).
var ErrIDTokenHint = errors.New("the id_token_hint is not an id_token this server issued")

// ParseIDTokenHint verifies an id_token this server issued and returns its
// claims. An expired one is accepted (OpenID Connect RP-Initiated Logout
// §2: the hint may have expired); maxAge bounds how old it may be.
func (s *Service) ParseIDTokenHint(raw string, maxAge time.Duration) (*IDClaims, error) {
	if len(raw) > 16<<10 {
		return nil, ErrIDTokenHint
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, ErrIDTokenHint
	}
	pub, ok := s.keys.PublicKey(tok.Headers[0].KeyID)
	if !ok {
		return nil, ErrIDTokenHint
	}
	var c IDClaims
	if err := tok.Claims(pub.Key, &c); err != nil {
		return nil, ErrIDTokenHint
	}
	if c.Issuer != s.issuer || c.Subject == "" || c.Audience == "" {
		return nil, ErrIDTokenHint
	}
	if maxAge > 0 && s.clock().Sub(time.Unix(c.IssuedAt, 0)) > maxAge {
		return nil, ErrIDTokenHint
	}
	return &c, nil
}
