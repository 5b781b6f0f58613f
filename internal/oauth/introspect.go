package oauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"smartgate/internal/audit"
)

// introspection is an active RFC 7662 §2.2 response with the SMART context.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope"`
	ClientID  string `json:"client_id"`
	Subject   string `json:"sub,omitempty"`
	Issuer    string `json:"iss"`
	Audience  string `json:"aud,omitempty"`
	Expiry    int64  `json:"exp"`
	IssuedAt  int64  `json:"iat"`
	JTI       string `json:"jti,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
	FHIRUser  string `json:"fhirUser,omitempty"`
}

// inactiveAnswer is the whole answer about any token the caller may not learn
// about: {"active":false} (RFC 7662 §2.2).
var inactiveAnswer = struct {
	Active bool `json:"active"`
}{}

// Introspect is POST /oauth2/introspect (RFC 7662). The caller
// authenticates as a client; it learns about tokens issued to itself, or
// about any token when an administrator marked it as a resource server
// (introspect-any). Everything else — expired, revoked, malformed, foreign,
// or another client's — is exactly {"active":false} (RFC 7662 §2.2).
func (s *Server) Introspect(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, caller, err := s.authenticatedForm(r)
	if err != nil {
		return err
	}
	raw := form.Get("token")
	if raw == "" {
		return writeJSON(w, http.StatusOK, inactiveAnswer)
	}
	if c, err := s.Tokens.Verify(ctx, raw); err == nil {
		if c.ClientID != caller.ID && !caller.IntrospectAny {
			return writeJSON(w, http.StatusOK, inactiveAnswer)
		}
		return writeJSON(w, http.StatusOK, introspection{
			Active: true, Scope: c.Scope, ClientID: c.ClientID, Subject: c.Subject, Issuer: c.Issuer,
			Audience: c.Audience, Expiry: c.Expiry, IssuedAt: c.IssuedAt, JTI: c.JTI, TokenType: "Bearer",
			Patient: c.Patient, Encounter: c.Encounter, FHIRUser: c.FHIRUser,
		})
	}
	// Not an access token of ours: perhaps a refresh token.
	if len(raw) > 100 {
		return writeJSON(w, http.StatusOK, inactiveAnswer)
	}
	rt, g, err := s.Store.FindRefreshToken(ctx, hashSecret(raw))
	now := s.Clock()
	if err != nil || !rt.UsedAt.IsZero() || !now.Before(rt.ExpiresAt) || !g.RevokedAt.IsZero() ||
		(g.ClientID != caller.ID && !caller.IntrospectAny) {
		return writeJSON(w, http.StatusOK, inactiveAnswer)
	}
	if !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt) {
		return writeJSON(w, http.StatusOK, inactiveAnswer)
	}
	var gc grantContext
	_ = json.Unmarshal(g.Context, &gc)
	return writeJSON(w, http.StatusOK, introspection{
		Active: true, Scope: g.Scope, ClientID: g.ClientID, Subject: g.Subject, Issuer: s.Issuer,
		Expiry: rt.ExpiresAt.Unix(), IssuedAt: rt.CreatedAt.Unix(),
		Patient: gc.Patient, Encounter: gc.Encounter, FHIRUser: gc.FHIRUser,
	})
}

// authenticatedForm reads the form of an introspection or revocation
// request and authenticates its client.
func (s *Server) authenticatedForm(r *http.Request) (url.Values, *Client, error) {
	form, err := parseForm(r)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.authenticate(r.Context(), r, form)
	return form, c, err
}

// Revoke is POST /oauth2/revoke (RFC 7009). A client revokes its own
// access tokens (by jti) and refresh tokens (which revokes the whole
// grant, including its access tokens). Unknown tokens get 200 (§2.2).
func (s *Server) Revoke(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, caller, err := s.authenticatedForm(r)
	if err != nil {
		return err
	}
	raw := form.Get("token")
	if raw == "" {
		return errMissing("token", "the access or refresh token to revoke")
	}
	switch hint := form.Get("token_type_hint"); hint {
	case "", "access_token", "refresh_token":
	default:
		// RFC 7009 §2.1: an unknown hint may be ignored; the search covers both.
	}
	ok := func() error { w.Header().Set("Cache-Control", "no-store"); w.WriteHeader(http.StatusOK); return nil }
	if c, err := s.Tokens.Verify(ctx, raw); err == nil {
		if c.ClientID != caller.ID {
			return errForeign()
		}
		exp := time.Unix(c.Expiry, 0)
		if err := s.Store.Revoke(ctx, revocationJTI(c.JTI, s.Clock(), exp)); err != nil {
			return err
		}
		s.audit(ctx, audit.Event{Actor: "client:" + caller.ID, ClientID: caller.ID, Patient: c.Patient, Action: "token.revoke", Outcome: audit.Success, Detail: detail("jti", c.JTI, "scope", c.Scope)})
		return ok()
	}
	if len(raw) <= 100 {
		_, g, err := s.Store.FindRefreshToken(ctx, hashSecret(raw))
		if err == nil {
			if g.ClientID != caller.ID {
				return errForeign()
			}
			if err := s.Store.RevokeGrant(ctx, g.ID, s.Clock().UTC()); err != nil {
				return err
			}
			s.audit(ctx, audit.Event{Actor: "client:" + caller.ID, ClientID: caller.ID, Action: "grant.revoke", Outcome: audit.Success, Detail: detail("grant", g.ID, "scope", g.Scope, "reason", "refresh token revoked")})
		}
	}
	return ok()
}

// Scopes lists the scopes discovery advertises as working today.
func Scopes() []string {
	out := []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access",
		"patient/*.rs", "patient/*.cruds", "patient/*.read", "patient/*.*", "user/*.rs", "user/*.cruds", "user/*.read", "user/*.*",
		"system/*.rs", "system/*.cruds", "system/*.read", "system/*.write", "system/*.*"}
	for _, t := range []string{"Patient", "Observation", "Condition", "Encounter", "Group"} {
		out = append(out, "system/"+t+".rs")
	}
	return out
}

// Claims are the claims id_tokens and userinfo may carry.
var Claims = []string{"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "amr", "sid", "fhirUser", "preferred_username"}

// Capabilities are the SMART App Launch 2.2 capabilities that hold
// (each one is exercised by the end-to-end tests).
var Capabilities = []string{
	"launch-ehr", "launch-standalone", "authorize-post",
	"client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
	"sso-openid-connect",
	"context-ehr-patient", "context-ehr-encounter", "context-standalone-patient", "context-banner", "context-style",
	"permission-offline", "permission-online", "permission-patient", "permission-user", "permission-v1", "permission-v2",
}
