package admin

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"smartgate/internal/oauth"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// App is a registered client as administrators see it. Its JSON is the
// shape `smartgate client show --output json` prints, plus the last use.
type App struct {
	ClientID      string               `json:"client_id"`
	Type          string               `json:"type"`
	Status        string               `json:"status"`
	Verified      bool                 `json:"verified"`
	CreatedBy     string               `json:"created_by"`
	IntrospectAny bool                 `json:"introspect_any"`
	MayLaunch     bool                 `json:"may_launch"`
	Admin         bool                 `json:"admin"`
	PKCEExempt    bool                 `json:"pkce_exempt"`
	RequirePAR    bool                 `json:"require_par"`
	CreatedAt     time.Time            `json:"created_at"`
	UpdatedAt     time.Time            `json:"updated_at"`
	Metadata      store.ClientMetadata `json:"metadata"`
	// LastUsedAt is when a token was last issued to the app (any grant);
	// absent when never.
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// ClientSecret is set only in the answer that created or rotated it.
	ClientSecret string `json:"client_secret,omitempty"`
}

// Name is the app's name for people: client_name, else its id.
func (a App) Name() string {
	if a.Metadata.ClientName != "" {
		return a.Metadata.ClientName
	}
	return a.ClientID
}

// AppOf is how administrators (console, API, CLI) see a client.
func AppOf(c store.Client) App {
	return App{ClientID: c.ID, Type: c.Type, Status: c.Status, Verified: c.Verified, CreatedBy: c.CreatedBy,
		IntrospectAny: c.IntrospectAny, MayLaunch: c.MayLaunch, Admin: c.Admin, PKCEExempt: c.PKCEExempt, RequirePAR: c.RequirePAR,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Metadata: c.Metadata}
}

// lastUse is the time of the app's last token.issue audit event.
func (s *Service) lastUse(ctx context.Context, clientID string) (*time.Time, error) {
	es, err := s.d.Store.ListAudit(ctx, store.AuditFilter{ClientID: clientID, Action: "token.issue", Limit: 1})
	if err != nil || len(es) == 0 {
		return nil, err
	}
	t := es[0].Time
	return &t, nil
}

// ListApps returns every app: those waiting for approval first (newest
// first), then the others by name.
func (s *Service) ListApps(ctx context.Context) ([]App, error) {
	cs, err := s.d.Store.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]App, 0, len(cs))
	for _, c := range cs {
		a := AppOf(c)
		if a.LastUsedAt, err = s.lastUse(ctx, c.ID); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool {
		pi, pj := out[i].Status == store.ClientPending, out[j].Status == store.ClientPending
		switch {
		case pi != pj:
			return pi
		case pi:
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return strings.ToLower(out[i].Name()) < strings.ToLower(out[j].Name())
	})
	return out, nil
}

// App returns one app.
func (s *Service) App(ctx context.Context, id string) (App, error) {
	c, err := s.d.Store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return App{}, oauth.NotFound(id)
	}
	if err != nil {
		return App{}, err
	}
	a := AppOf(c)
	a.LastUsedAt, err = s.lastUse(ctx, id)
	return a, err
}

// NewApp is an app an administrator registers: RFC 7591 metadata and the
// administrator-only flags. Type, when set, picks the
// token_endpoint_auth_method (public: none, confidential-symmetric:
// client_secret_basic, confidential-asymmetric: private_key_jwt).
type NewApp struct {
	store.ClientMetadata
	Type          string `json:"type,omitempty"`
	IntrospectAny bool   `json:"introspect_any,omitempty"`
	MayLaunch     bool   `json:"may_launch,omitempty"`
	Admin         bool   `json:"admin,omitempty"`
	PKCEExempt    bool   `json:"pkce_exempt,omitempty"`
	RequirePAR    bool   `json:"require_par,omitempty"`
}

// authMethodFor maps a client type to its token_endpoint_auth_method.
func authMethodFor(typ string) (string, error) {
	switch typ {
	case oauth.Public:
		return "none", nil
	case oauth.ConfidentialSymmetric:
		return "client_secret_basic", nil
	case oauth.ConfidentialAsymmetric:
		return "private_key_jwt", nil
	}
	return "", problem.New(problem.InvalidClientMetadata, "type %q is not a client type; use public, confidential-symmetric or confidential-asymmetric", typ)
}

// DefaultGrantTypes picks grant types from the scopes when none are
// given: system/ scopes mean a backend service, anything else a
// user-facing app (the rule `smartgate client create` follows).
func DefaultGrantTypes(scopes string) []string {
	if strings.Contains(scopes, "system/") {
		return []string{"client_credentials"}
	}
	out := []string{"authorization_code"}
	if strings.Contains(scopes, "offline_access") || strings.Contains(scopes, "online_access") {
		out = append(out, "refresh_token")
	}
	return out
}

// CreateApp registers an app: enabled and verified, as every client an
// administrator creates. The answer carries its secret, once.
func (s *Service) CreateApp(ctx context.Context, a Actor, n NewApp) (App, error) {
	md := n.ClientMetadata
	if n.Type != "" {
		m, err := authMethodFor(n.Type)
		if err != nil {
			return App{}, err
		}
		if md.TokenEndpointAuthMethod != "" && md.TokenEndpointAuthMethod != m {
			return App{}, problem.New(problem.InvalidClientMetadata, "type %s and token_endpoint_auth_method %s disagree; give one of them", n.Type, md.TokenEndpointAuthMethod)
		}
		md.TokenEndpointAuthMethod = m
	}
	if md.TokenEndpointAuthMethod == "" {
		return App{}, problem.New(problem.InvalidClientMetadata, "type is required: public, confidential-symmetric or confidential-asymmetric")
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = DefaultGrantTypes(md.Scope)
	}
	created, err := s.d.Clients.Create(ctx, md, oauth.Options{ByAdmin: true, IntrospectAny: n.IntrospectAny, MayLaunch: n.MayLaunch,
		Admin: n.Admin, PKCEExempt: n.PKCEExempt, RequirePAR: n.RequirePAR})
	if err != nil {
		return App{}, err
	}
	s.record(ctx, a, "client.create", created.Client.ID, map[string]any{"type": created.Client.Type, "scope": md.Scope})
	out := AppOf(created.Client.Client)
	out.ClientSecret = created.Secret
	return out, nil
}

// AppChange changes an app: every field that is set replaces the app's
// value; fields left out stay as they are.
type AppChange struct {
	ClientName              *string          `json:"client_name,omitempty"`
	RedirectURIs            *[]string        `json:"redirect_uris,omitempty"`
	Scope                   *string          `json:"scope,omitempty"`
	GrantTypes              *[]string        `json:"grant_types,omitempty"`
	TokenEndpointAuthMethod *string          `json:"token_endpoint_auth_method,omitempty"`
	PostLogoutRedirectURIs  *[]string        `json:"post_logout_redirect_uris,omitempty"`
	InitiateLoginURI        *string          `json:"initiate_login_uri,omitempty"`
	JWKSURI                 *string          `json:"jwks_uri,omitempty"`
	JWKS                    *json.RawMessage `json:"jwks,omitempty"`
	IntrospectAny           *bool            `json:"introspect_any,omitempty"`
	MayLaunch               *bool            `json:"may_launch,omitempty"`
	Admin                   *bool            `json:"admin,omitempty"`
	PKCEExempt              *bool            `json:"pkce_exempt,omitempty"`
	RequirePAR              *bool            `json:"require_par,omitempty"`
}

// fields names the fields the change sets, for the audit event.
func (ch AppChange) fields() []string {
	var out []string
	for name, set := range map[string]bool{
		"client_name": ch.ClientName != nil, "redirect_uris": ch.RedirectURIs != nil, "scope": ch.Scope != nil,
		"grant_types": ch.GrantTypes != nil, "token_endpoint_auth_method": ch.TokenEndpointAuthMethod != nil,
		"post_logout_redirect_uris": ch.PostLogoutRedirectURIs != nil, "initiate_login_uri": ch.InitiateLoginURI != nil,
		"jwks_uri": ch.JWKSURI != nil, "jwks": ch.JWKS != nil, "introspect_any": ch.IntrospectAny != nil, "may_launch": ch.MayLaunch != nil,
		"admin": ch.Admin != nil, "pkce_exempt": ch.PKCEExempt != nil, "require_par": ch.RequirePAR != nil,
	} {
		if set {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (ch AppChange) hasFlags() bool {
	return ch.IntrospectAny != nil || ch.MayLaunch != nil || ch.Admin != nil || ch.PKCEExempt != nil || ch.RequirePAR != nil
}

// UpdateApp changes an app's metadata (checked as at registration) and
// flags. An administrator's change never sends the app back through
// approval.
func (s *Service) UpdateApp(ctx context.Context, a Actor, id string, ch AppChange) (App, error) {
	cur, err := s.App(ctx, id)
	if err != nil {
		return App{}, err
	}
	fields := ch.fields()
	if len(fields) == 0 {
		return App{}, problem.New(problem.InvalidRequest, "the change sets no field; send at least one of redirect_uris, scope, grant_types, client_name, ... (docs/admin.md)")
	}
	md := cur.Metadata
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	setList := func(dst *[]string, v *[]string) {
		if v != nil {
			var xs []string
			for _, x := range *v {
				if x = strings.TrimSpace(x); x != "" {
					xs = append(xs, x)
				}
			}
			*dst = xs
		}
	}
	set(&md.ClientName, ch.ClientName)
	set(&md.Scope, ch.Scope)
	set(&md.TokenEndpointAuthMethod, ch.TokenEndpointAuthMethod)
	set(&md.InitiateLoginURI, ch.InitiateLoginURI)
	setList(&md.RedirectURIs, ch.RedirectURIs)
	setList(&md.GrantTypes, ch.GrantTypes)
	setList(&md.PostLogoutRedirectURIs, ch.PostLogoutRedirectURIs)
	if ch.JWKSURI != nil {
		md.JWKSURI, md.JWKS = strings.TrimSpace(*ch.JWKSURI), nil
	}
	if ch.JWKS != nil {
		md.JWKS, md.JWKSURI = *ch.JWKS, ""
	}
	if _, _, err := s.d.Clients.Update(ctx, id, md, true); err != nil {
		return App{}, err
	}
	if ch.hasFlags() {
		_, err := s.d.Clients.SetFlags(ctx, id, func(c *store.Client) {
			for _, f := range []struct {
				dst *bool
				v   *bool
			}{{&c.IntrospectAny, ch.IntrospectAny}, {&c.MayLaunch, ch.MayLaunch}, {&c.Admin, ch.Admin}, {&c.PKCEExempt, ch.PKCEExempt}, {&c.RequirePAR, ch.RequirePAR}} {
				if f.v != nil {
					*f.dst = *f.v
				}
			}
		})
		if err != nil {
			return App{}, err
		}
	}
	s.record(ctx, a, "client.update", id, map[string]any{"fields": fields})
	return s.App(ctx, id)
}

// SetAppStatus approves, enables or disables an app. Approving (enabling
// a pending app) and enabling mark it verified; disabling revokes every
// token it holds on every node.
func (s *Service) SetAppStatus(ctx context.Context, a Actor, id, status string) (App, error) {
	if status != store.ClientEnabled && status != store.ClientDisabled {
		return App{}, problem.New(problem.InvalidRequest, "status %q is not enabled or disabled", status)
	}
	cur, err := s.App(ctx, id)
	if err != nil {
		return App{}, err
	}
	if _, err := s.d.Clients.SetStatus(ctx, id, status); err != nil {
		return App{}, err
	}
	action := "client.enable"
	switch {
	case status == store.ClientDisabled:
		action = "client.disable"
	case cur.Status == store.ClientPending:
		action = "client.approve"
	}
	s.record(ctx, a, action, id, map[string]any{"from": cur.Status})
	return s.App(ctx, id)
}

// RotateAppSecret issues a new client secret; the old one stops working
// at once. The answer carries the new secret, once.
func (s *Service) RotateAppSecret(ctx context.Context, a Actor, id string) (App, error) {
	if _, err := s.App(ctx, id); err != nil {
		return App{}, err
	}
	secret, err := s.d.Clients.RotateSecret(ctx, id)
	if err != nil {
		return App{}, err
	}
	s.record(ctx, a, "client.rotate_secret", id, nil)
	out, err := s.App(ctx, id)
	out.ClientSecret = secret
	return out, err
}

// DeleteApp deletes an app and revokes its tokens.
func (s *Service) DeleteApp(ctx context.Context, a Actor, id string) error {
	if _, err := s.App(ctx, id); err != nil {
		return err
	}
	if err := s.d.Clients.Delete(ctx, id); err != nil {
		return err
	}
	s.record(ctx, a, "client.delete", id, nil)
	return nil
}

// InitialToken is an RFC 7591 §3 initial access token, shown once.
type InitialToken struct {
	Token     string    `json:"initial_access_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateInitialToken makes an initial access token for dynamic
// registration (registration.policy: token); only its hash is stored.
func (s *Service) CreateInitialToken(ctx context.Context, a Actor, valid time.Duration) (InitialToken, error) {
	if valid <= 0 || valid > 366*24*time.Hour {
		return InitialToken{}, problem.New(problem.InvalidRequest, "expires_in must be between 1s and 8784h (a year), not %s", valid)
	}
	tok, _ := oauth.NewSecret()
	h := sha256.Sum256([]byte(tok))
	exp := s.now().Add(valid)
	if err := s.d.Store.CreateInitialAccessToken(ctx, h[:], exp); err != nil {
		return InitialToken{}, err
	}
	s.record(ctx, a, "registration.initial_token", "", map[string]any{"expires_at": exp.Format(time.RFC3339)})
	return InitialToken{Token: tok, ExpiresAt: exp}, nil
}
