package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/audit"
	"smartgate/internal/httpx"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// tokenRequest is one token request as it moves through the pipeline.
type tokenRequest struct {
	r      *http.Request
	form   map[string][]string
	client *Client
}

func (t *tokenRequest) get(k string) string {
	if v := t.form[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// issued is what a grant hands back to the pipeline: the granted scopes,
// the token's subject and context, its lifetime, and optionally a grant id
// and a refresh token.
type issued struct {
	Scopes       []scope.Scope
	Subject      string
	Grant        string
	Patient      string
	Encounter    string
	FHIRUser     string
	TTL          time.Duration
	RefreshToken string
	Extra        map[string]any // launch context fields of the token response
}

// grantHandler is the one step a grant type fills in.
type grantHandler func(ctx context.Context, t *tokenRequest) (*issued, error)

// TokenResponse is the RFC 6749 §5.1 response with SMART's context fields.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Patient      string `json:"patient,omitempty"`
	Encounter    string `json:"encounter,omitempty"`
}

// Token is POST /oauth2/token: one pipeline (client authentication, rate
// limit, grant dispatch, scope narrowing inside the grant, token issuance,
// response) where each grant fills in only its own step.
func (s *Server) Token(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := parseForm(r)
	if err != nil {
		return err
	}
	c, err := s.authenticate(ctx, r, form)
	if err != nil {
		id := claimedClientID(r, form)
		s.audit(ctx, audit.Event{Actor: "client:" + id, ClientID: id, Action: "token.refuse", Outcome: audit.Failure, Detail: detail("error", string(problem.From(err).ID), "grant_type", form.Get("grant_type"))})
		return err
	}
	if err := s.sandboxTokenError(r, c, form); err != nil {
		return err
	}
	limitKey := c.ID
	if c.Type == Public {
		// Anyone can name a public client: limit it per address, so that
		// one party cannot exhaust the budget of every user of the app.
		limitKey = c.ID + "|" + httpx.ClientIP(r)
	}
	if ok, wait := s.tokenLimiter.Allow(limitKey); !ok {
		w.Header().Set("Retry-After", httpx.RetryAfter(wait))
		return problem.New(problem.RateLimited, "client %s sent more than %d token requests per second; retry after %s", c.ID, s.Config.RateLimits.TokenPerClient, httpx.RetryAfter(wait)+"s")
	}
	gt := form.Get("grant_type")
	if gt == "password" && len(s.live().Authorize.PasswordGrantRoles) == 0 {
		return problem.New(problem.PasswordGrantDisabled, "the password grant is off on this server; use the authorization code flow with PKCE (docs/flows/), or smartgate token from a terminal. For development an operator may turn it on with authorize.password_grant_roles")
	}
	if gt == "" {
		return problem.New(problem.InvalidRequest, "grant_type is missing; send grant_type=%s", strings.Join(s.GrantTypes(), " or grant_type="))
	}
	handler, ok := s.grants[gt]
	if !ok {
		supported := s.GrantTypes()
		return problem.New(problem.UnsupportedGrantType, "grant_type %q is not supported here; supported: %s", gt, strings.Join(supported, ", "))
	}
	if !contains(c.Metadata.GrantTypes, gt) {
		fix := "smartgate client update " + c.ID
		for _, g := range append(append([]string(nil), c.Metadata.GrantTypes...), gt) {
			fix += " --grant-type " + g
		}
		return problem.New(problem.UnauthorizedClient, "client %s did not register the %s grant (its grant_types: %s); an administrator adds it with: %s", c.ID, gt, strings.Join(c.Metadata.GrantTypes, ", "), fix)
	}
	t := &tokenRequest{r: r, form: form, client: c}
	out, err := handler(ctx, t)
	if err != nil {
		s.audit(ctx, audit.Event{Actor: "client:" + c.ID, ClientID: c.ID, Action: "token.refuse", Outcome: audit.Failure, Detail: detail("error", string(problem.From(err).ID), "grant_type", gt)})
		return err
	}
	now := s.Clock()
	claims := token.Claims{
		Subject: out.Subject, ClientID: c.ID, Scope: scope.Join(out.Scopes),
		IssuedAt: now.Unix(), Expiry: now.Add(out.TTL).Unix(), JTI: token.NewID(), Grant: out.Grant,
		Patient: out.Patient, Encounter: out.Encounter, FHIRUser: out.FHIRUser,
	}
	at, err := s.Tokens.Issue(claims)
	if err != nil {
		return err
	}
	s.audit(ctx, audit.Event{Actor: "client:" + c.ID, ClientID: c.ID, Patient: out.Patient, Action: "token.issue", Outcome: audit.Success,
		Detail: detail("grant_type", gt, "scope", claims.Scope, "jti", claims.JTI, "grant", out.Grant)})
	resp := TokenResponse{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(out.TTL / time.Second), Scope: claims.Scope,
		RefreshToken: out.RefreshToken, Patient: out.Patient, Encounter: out.Encounter,
	}
	if len(out.Extra) == 0 {
		return writeJSON(w, http.StatusOK, resp)
	}
	// Launch context fields (SMART App Launch "Launch context arrives with
	// your access_token") beside the standard ones.
	m := map[string]any{}
	b, _ := json.Marshal(resp)
	_ = json.Unmarshal(b, &m)
	for k, v := range out.Extra {
		m[k] = v
	}
	return writeJSON(w, http.StatusOK, m)
}

// claimedClientID is the client a refused request claimed to be, for the
// audit log: client_id, the Basic user name, or an assertion's iss.
func claimedClientID(r *http.Request, form url.Values) string {
	if id := form.Get("client_id"); id != "" {
		return id
	}
	if id, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(id); err == nil {
			return u
		}
		return id
	}
	if a := form.Get("client_assertion"); a != "" {
		if jws, err := jose.ParseSigned(a, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES256, jose.ES384, jose.PS256, jose.PS384, jose.EdDSA}); err == nil {
			var c struct {
				Iss string `json:"iss"`
			}
			if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c) == nil && len(c.Iss) <= 64 {
				return c.Iss
			}
		}
	}
	return ""
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// narrow applies requested ∩ registered ∩ allowed (DESIGN.md "Tokens and
// grants"). An absent scope parameter requests defaults (the registered
// scopes the grant allows). invalid_scope only for unknown or malformed
// scopes, or when nothing is left; the description lists every drop.
func narrow(requestedRaw string, registered []scope.Scope, allowed func(scope.Scope) (bool, string)) ([]scope.Scope, error) {
	var requested []scope.Scope
	if strings.TrimSpace(requestedRaw) == "" {
		requested = registered
	} else {
		var bad []scope.Dropped
		requested, bad = scope.ParseList(requestedRaw)
		if len(bad) > 0 {
			return nil, problem.New(problem.InvalidScope, "%s", scope.Describe(bad))
		}
	}
	granted, dropped := scope.Narrow(requested, registered, allowed)
	if len(granted) == 0 {
		if len(dropped) == 0 {
			return nil, problem.New(problem.InvalidScope, "no scope was requested and the client has none registered that this grant allows")
		}
		return nil, problem.New(problem.InvalidScope, "no scope left to grant: %s", scope.Describe(dropped))
	}
	return granted, nil
}

// clientCredentials is the client_credentials grant (RFC 6749 §4.4) as
// SMART Backend Services uses it: only system/ scopes, short tokens.
func (s *Server) clientCredentials(ctx context.Context, t *tokenRequest) (*issued, error) {
	c := t.client
	if c.Type == Public {
		return nil, problem.New(problem.UnauthorizedClient, "client_credentials needs a confidential client (one that authenticates with a secret or a signed assertion); %s is public", c.ID)
	}
	granted, err := narrow(t.get("scope"), c.Scopes, func(sc scope.Scope) (bool, string) {
		if sc.IsResource() && sc.Context == "system" {
			return true, ""
		}
		if sc.Kind == scope.KindAdmin && c.Admin {
			return true, ""
		}
		return false, "client_credentials grants only system/ scopes (there is no user or patient)"
	})
	if err != nil {
		return nil, err
	}
	return &issued{Scopes: granted, Subject: c.ID, TTL: s.live().Tokens.BackendTokenTTL.D()}, nil
}

// grantContext is the SMART launch context stored with a grant.
type grantContext struct {
	Patient    string         `json:"patient,omitempty"`
	Encounter  string         `json:"encounter,omitempty"`
	FHIRUser   string         `json:"fhirUser,omitempty"`
	Extra      map[string]any `json:"extra,omitempty"`
	AuthTime   int64          `json:"auth_time,omitempty"` // for id_tokens on refresh
	AMR        []string       `json:"amr,omitempty"`
	SessionRef string         `json:"sid,omitempty"`
}

// refreshToken is the refresh_token grant (RFC 6749 §6) with rotation on
// every use and reuse detection (OAuth 2.0 Security BCP §4.14.2).
func (s *Server) refreshToken(ctx context.Context, t *tokenRequest) (*issued, error) {
	raw := t.get("refresh_token")
	if raw == "" {
		return nil, problem.New(problem.InvalidRequest, "refresh_token is missing")
	}
	hash := hashSecret(raw)
	_, g, err := s.Store.FindRefreshToken(ctx, hash)
	if err != nil {
		return nil, refreshError(err)
	}
	// Check the owner before consuming, so another client cannot burn it.
	if g.ClientID != t.client.ID {
		return nil, problem.New(problem.InvalidGrant, "the refresh token was issued to another client")
	}
	// requested ∩ granted before ∩ registered now: a refresh keeps or
	// narrows the grant, and an administrator's narrowing of the client's
	// registration applies at the next refresh.
	grantScopes, _ := scope.ParseList(g.Scope)
	granted, err := narrowRefresh(t.get("scope"), grantScopes, t.client.Scopes)
	if err != nil {
		return nil, err
	}
	next, nextHash := NewSecret()
	now := s.Clock().UTC()
	idle := now.Add(s.live().Tokens.RefreshIdleTTL.D())
	if !g.ExpiresAt.IsZero() && g.ExpiresAt.Before(idle) {
		idle = g.ExpiresAt
	}
	g, err = s.Store.RotateRefreshToken(ctx, hash, now, s.Config.Tokens.RefreshReuseGrace.D(), store.RefreshToken{Hash: nextHash, CreatedAt: now, ExpiresAt: idle})
	if err != nil {
		if err == store.ErrRefreshReused {
			s.audit(ctx, audit.Event{Actor: "client:" + t.client.ID, ClientID: t.client.ID, Action: "grant.revoke", Outcome: audit.Success, Detail: detail("grant", g.ID, "reason", "refresh token reuse")})
			s.forgetConsent(ctx, g.ClientID, g.Subject)
		}
		return nil, refreshError(err)
	}
	var gc grantContext
	_ = json.Unmarshal(g.Context, &gc)
	out := &issued{
		Scopes: granted, Subject: g.Subject, Grant: g.ID, Patient: gc.Patient, Encounter: gc.Encounter, FHIRUser: gc.FHIRUser,
		TTL: s.live().Tokens.AccessTokenTTL.D(), RefreshToken: next, Extra: gc.Extra,
	}
	if slices.ContainsFunc(granted, func(sc scope.Scope) bool { return sc.Kind == scope.KindOpenID }) && strings.Contains(" "+t.get("scope")+" ", " openid ") {
		// OpenID Connect Core §12.2: a refresh may return a new id_token
		// (same sub and auth_time, no nonce). smartgate does when the
		// refresh request asks for openid in its scope: the RS256
		// signature is three quarters of a refresh's CPU, and most clients
		// refresh only for a new access token (docs/tokens.md).
		idt, err := s.idToken(ctx, t.client.ID, g.Subject, gc, "", granted)
		if err != nil {
			return nil, err
		}
		out.Extra = map[string]any{"id_token": idt}
		for k, v := range gc.Extra {
			out.Extra[k] = v
		}
	}
	return out, nil
}

// forgetConsent drops what a user agreed to give a client after its grant
// was revoked for a security reason (a replayed code or refresh token): the
// next authorization asks the user again, and nothing invisible to the
// user at /account/apps keeps the app authorized.
func (s *Server) forgetConsent(ctx context.Context, clientID, subject string) {
	if subject == "" || subject == clientID {
		return
	}
	if err := s.Store.DeleteConsent(ctx, clientID, subject); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.Log.Warn("forgetting consent after a grant revocation failed", "client_id", clientID, "error", err.Error())
	}
}

func narrowRefresh(requestedRaw string, grantScopes, registered []scope.Scope) ([]scope.Scope, error) {
	requested := grantScopes
	if strings.TrimSpace(requestedRaw) != "" {
		var bad []scope.Dropped
		requested, bad = scope.ParseList(requestedRaw)
		if len(bad) > 0 {
			return nil, problem.New(problem.InvalidScope, "%s", scope.Describe(bad))
		}
	}
	var granted []scope.Scope
	var dropped []scope.Dropped
	for _, sc := range requested {
		switch {
		case !coveredBy(sc, grantScopes):
			dropped = append(dropped, scope.Dropped{Scope: sc.Raw, Reason: scope.ReasonNotAllowed, Detail: "it is not part of the grant the user approved; a refresh may keep or narrow the scopes of the grant, never widen them, so the user must authorize the app again for more"})
		case !coveredBy(sc, registered):
			dropped = append(dropped, scope.Dropped{Scope: sc.Raw, Reason: scope.ReasonNotRegistered, Detail: "an administrator removed it from the client's registration"})
		default:
			granted = append(granted, sc)
		}
	}
	if len(granted) == 0 {
		return nil, problem.New(problem.InvalidScope, "no scope left to grant: %s", scope.Describe(dropped))
	}
	return granted, nil
}

func coveredBy(sc scope.Scope, set []scope.Scope) bool {
	for _, s := range set {
		if s.Covers(sc) {
			return true
		}
	}
	return false
}

func refreshError(err error) error {
	switch err {
	case store.ErrNotFound:
		return problem.New(problem.InvalidGrant, "the refresh token is not known here: it is mistyped, was issued by another server, or its grant ended")
	case store.ErrExpired:
		return problem.New(problem.InvalidGrant, "the refresh token or its grant expired; the user must authorize the app again")
	case store.ErrGrantRevoked:
		return problem.New(problem.InvalidGrant, "the grant behind this refresh token was revoked; the user must authorize the app again")
	case store.ErrRefreshReused:
		return problem.New(problem.RefreshTokenReused, "this refresh token was already used, so the grant was revoked to protect the user (refresh tokens rotate: keep only the newest one from each response)")
	}
	return problem.Internal(err)
}

// NewGrant stores a grant and, for offline or online access, its first
// refresh token; the authorization-code grant calls it. It returns the
// grant id and the refresh token (empty when none).
func (s *Server) NewGrant(ctx context.Context, g store.Grant, refresh bool) (string, string, error) {
	now := s.Clock().UTC()
	if g.ID == "" {
		g.ID = token.NewID()
	}
	g.CreatedAt = now
	if g.ExpiresAt.IsZero() {
		g.ExpiresAt = now.Add(s.live().Tokens.RefreshMaxTTL.D())
	}
	var rt *store.RefreshToken
	var raw string
	if refresh {
		var h []byte
		raw, h = NewSecret()
		rt = &store.RefreshToken{Hash: h, CreatedAt: now, ExpiresAt: minTime(now.Add(s.live().Tokens.RefreshIdleTTL.D()), g.ExpiresAt)}
	}
	if err := s.Store.CreateGrant(ctx, g, rt); err != nil {
		return "", "", err
	}
	return g.ID, raw, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
