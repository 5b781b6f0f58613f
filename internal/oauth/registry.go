package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/clientkeys"
	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
)

// Client types.
const (
	Public                 = "public"
	ConfidentialSymmetric  = "confidential-symmetric"
	ConfidentialAsymmetric = "confidential-asymmetric"
)

// Client is a registered client with its metadata parsed for the hot path.
type Client struct {
	store.Client
	Scopes []scope.Scope
	JWKS   *jose.JSONWebKeySet // inline registered keys, if any
}

// Registry manages clients: registration and administration, and a
// per-node cache for the token endpoint, invalidated through the change
// feed (topic "clients").
type Registry struct {
	st    store.Store
	keys  *clientkeys.Fetcher
	cfg   *config.Config
	clock func() time.Time

	mu    sync.RWMutex
	cache map[string]*Client
}

// NewRegistry returns a registry.
func NewRegistry(st store.Store, keys *clientkeys.Fetcher, cfg *config.Config, clock func() time.Time) *Registry {
	if clock == nil {
		clock = time.Now
	}
	return &Registry{st: st, keys: keys, cfg: cfg, clock: clock, cache: map[string]*Client{}}
}

// Get returns a client, from the cache when it can.
func (r *Registry) Get(ctx context.Context, id string) (*Client, error) {
	r.mu.RLock()
	c, ok := r.cache[id]
	r.mu.RUnlock()
	if ok {
		return c, nil
	}
	sc, err := r.st.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	c = parseClient(sc)
	r.mu.Lock()
	if len(r.cache) > 100_000 {
		r.cache = map[string]*Client{}
	}
	r.cache[id] = c
	r.mu.Unlock()
	return c, nil
}

// Invalidate drops cached clients (all of them when ids holds "").
func (r *Registry) Invalidate(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if id == "" {
			r.cache = map[string]*Client{}
			return
		}
		delete(r.cache, id)
	}
}

func parseClient(sc store.Client) *Client {
	c := &Client{Client: sc}
	c.Scopes, _ = scope.ParseList(sc.Metadata.Scope)
	if len(sc.Metadata.JWKS) > 0 {
		c.JWKS, _ = clientkeys.FromJWKS(sc.Metadata.JWKS)
	}
	return c
}

// Options are the administrator's settings of a client.
type Options struct {
	ByAdmin       bool // created by an administrator (CLI, admin API): enabled and verified
	IntrospectAny bool
	MayLaunch     bool
	Admin         bool
	PKCEExempt    bool // a confidential client asking only for OpenID scopes may skip PKCE
	RequirePAR    bool // authorize accepts only pushed requests
	// ID and Secret fix the client id and secret (built-in and demo
	// clients); only with ByAdmin. Empty: random.
	ID, Secret string
}

// Created is a new client and its one-time secrets.
type Created struct {
	Client            *Client
	Secret            string // confidential-symmetric only
	RegistrationToken string
}

// NewSecret returns a 256-bit random secret, base64url, and its SHA-256.
func NewSecret() (string, []byte) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	s := base64.RawURLEncoding.EncodeToString(b[:])
	return s, hashSecret(s)
}

func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// secretMatches compares a presented secret with a stored hash in constant time.
func secretMatches(presented string, hash []byte) bool {
	h := hashSecret(presented) // hashed whatever the stored value, so timing says nothing
	if len(hash) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(h, hash) == 1
}

// newClientID returns 128 random bits in base64url that start with a
// letter or digit, so that an id never reads as a command-line flag.
func newClientID() string {
	for {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id := base64.RawURLEncoding.EncodeToString(b[:])
		if id[0] != '-' && id[0] != '_' {
			return id
		}
	}
}

// Validate checks and normalises metadata (RFC 7591 §2, the redirect URI
// rules, SMART scopes) and returns the client type it implies.
func (r *Registry) Validate(md *store.ClientMetadata) (string, []scope.Scope, error) {
	bad := func(format string, args ...any) error {
		return problem.New(problem.InvalidClientMetadata, format, args...)
	}
	if md.TokenEndpointAuthMethod == "" {
		md.TokenEndpointAuthMethod = "client_secret_basic" // RFC 7591 §2 default
	}
	var typ string
	switch md.TokenEndpointAuthMethod {
	case "none":
		typ = Public
	case "client_secret_basic", "client_secret_post":
		typ = ConfidentialSymmetric
	case "private_key_jwt":
		typ = ConfidentialAsymmetric
	case "client_secret_jwt":
		return "", nil, bad("token_endpoint_auth_method client_secret_jwt is not supported: it shares the secret with the server as an HMAC key; use private_key_jwt (asymmetric keys) or client_secret_basic")
	default:
		return "", nil, bad("token_endpoint_auth_method %q is not one of none, client_secret_basic, client_secret_post, private_key_jwt", md.TokenEndpointAuthMethod)
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{"authorization_code"} // RFC 7591 §2 default
	}
	for _, g := range md.GrantTypes {
		switch g {
		case "authorization_code", "refresh_token", "client_credentials", "password":
		default:
			return "", nil, bad("grant_types: %q is not supported; use authorization_code, refresh_token, client_credentials or password (development only)", g)
		}
	}
	md.GrantTypes = dedupe(md.GrantTypes)
	hasCode := slices.Contains(md.GrantTypes, "authorization_code")
	if len(md.ResponseTypes) == 0 && hasCode {
		md.ResponseTypes = []string{"code"}
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return "", nil, bad("response_types: %q is not supported; only code (with PKCE) is", rt)
		}
	}
	if len(md.ResponseTypes) > 0 && !hasCode {
		return "", nil, bad("response_types code needs grant_types to include authorization_code (RFC 7591 section 2.1)")
	}
	if slices.Contains(md.GrantTypes, "client_credentials") && typ == Public {
		return "", nil, bad("grant_types client_credentials needs a confidential client: set token_endpoint_auth_method to private_key_jwt (SMART Backend Services) or client_secret_basic")
	}
	if hasCode && len(md.RedirectURIs) == 0 {
		return "", nil, bad("redirect_uris is required with grant type authorization_code: list the URLs the browser returns to")
	}
	for _, u := range md.RedirectURIs {
		if err := ValidateRedirectURI(u, typ == Public); err != nil {
			return "", nil, err
		}
	}
	md.RedirectURIs = dedupe(md.RedirectURIs)
	for _, u := range md.PostLogoutRedirectURIs {
		if err := ValidateRedirectURI(u, typ == Public); err != nil {
			return "", nil, problem.New(problem.InvalidRedirectURI, "post_logout_%s", problem.From(err).Description)
		}
	}
	md.PostLogoutRedirectURIs = dedupe(md.PostLogoutRedirectURIs)
	if typ == ConfidentialAsymmetric {
		switch {
		case len(md.JWKS) > 0 && md.JWKSURI != "":
			return "", nil, bad("give jwks or jwks_uri, not both (RFC 7591 section 2)")
		case len(md.JWKS) == 0 && md.JWKSURI == "":
			return "", nil, bad("private_key_jwt needs the client's public keys: give jwks_uri (preferred, so keys can rotate) or jwks")
		}
	}
	if len(md.JWKS) > 0 {
		set, err := clientkeys.FromJWKS(md.JWKS)
		if err != nil {
			return "", nil, bad("jwks: %s", clientkeys.PublicMessage(err))
		}
		if len(set.Keys) == 0 {
			return "", nil, bad("jwks holds no key")
		}
	}
	if md.JWKSURI != "" && r.keys != nil {
		if err := r.keys.ValidateURL(md.JWKSURI); err != nil {
			return "", nil, bad("jwks_uri: %s", clientkeys.PublicMessage(err))
		}
	}
	if v := md.InitiateLoginURI; v != "" {
		if u, err := url.Parse(v); err != nil || !u.IsAbs() || u.Fragment != "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
			return "", nil, bad("initiate_login_uri: %q must be an absolute https URL (or http on 127.0.0.1 or [::1]) without a fragment: the app's launch URL, which EHR launches open with ?iss=...&launch=...", v)
		}
	}
	for field, v := range map[string]string{"logo_uri": md.LogoURI, "tos_uri": md.TOSURI, "policy_uri": md.PolicyURI, "client_uri": md.ClientURI} {
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || !u.IsAbs() || (u.Scheme != "https" && !(r.cfg.Dev && u.Scheme == "http")) || u.Host == "" {
			return "", nil, bad("%s: %q must be an absolute https URL", field, v)
		}
	}
	if len(md.ClientName) > 200 {
		return "", nil, bad("client_name is longer than 200 characters")
	}
	for _, c := range md.Contacts {
		if c == "" || len(c) > 320 {
			return "", nil, bad("contacts: each entry must be a non-empty address of at most 320 characters")
		}
	}
	if strings.TrimSpace(md.Scope) == "" {
		return "", nil, bad("scope is required: list every scope the app will request, space-separated (e.g. \"system/Observation.rs system/Patient.rs\" for a backend service, \"launch/patient openid fhirUser patient/*.rs offline_access\" for a patient app)")
	}
	scopes, dropped := scope.ParseList(md.Scope)
	if len(dropped) > 0 {
		return "", nil, bad("scope: %s", scope.Describe(dropped))
	}
	for _, sc := range scopes {
		if sc.IsResource() && sc.Context == "system" && !slices.Contains(md.GrantTypes, "client_credentials") {
			return "", nil, bad("scope %s is a system/ scope, which only the client_credentials grant (SMART Backend Services) can get; add client_credentials to grant_types or use patient/ or user/ scopes", sc.Raw)
		}
		if sc.IsResource() && sc.Context != "system" && !hasCode {
			return "", nil, bad("scope %s needs a user and so the authorization_code grant; a backend service registers system/ scopes", sc.Raw)
		}
	}
	return typ, scopes, nil
}

func dedupe(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// patientLevel is the approval policy's set of scopes a self-registered
// public app may hold and still be enabled at once (marked unverified).
func patientLevel(sc scope.Scope) bool {
	if sc.IsResource() {
		return sc.Context == "patient"
	}
	switch sc.Kind {
	case scope.KindLaunchPatient, scope.KindOpenID, scope.KindFHIRUser, scope.KindProfile, scope.KindOfflineAccess, scope.KindOnlineAccess:
		return true
	}
	return false
}

// approval applies the approval policy (docs/clients.md): clients an admin
// creates are enabled and verified; self-registered public apps whose
// scopes are all patient-level are enabled and unverified; every other
// self-registered client is pending.
func approval(byAdmin bool, typ string, scopes []scope.Scope) (status string, verified bool) {
	if byAdmin {
		return store.ClientEnabled, true
	}
	if typ != Public {
		return store.ClientPending, false
	}
	for _, sc := range scopes {
		if !patientLevel(sc) {
			return store.ClientPending, false
		}
	}
	return store.ClientEnabled, false
}

// Create registers a client.
func (r *Registry) Create(ctx context.Context, md store.ClientMetadata, opts Options) (*Created, error) {
	typ, scopes, err := r.Validate(&md)
	if err != nil {
		return nil, err
	}
	if opts.Admin && !opts.ByAdmin {
		return nil, problem.New(problem.InvalidClientMetadata, "only an administrator can make an admin client")
	}
	if (opts.ID != "" || opts.Secret != "") && !opts.ByAdmin {
		return nil, problem.New(problem.InvalidClientMetadata, "only an administrator can choose a client id or secret")
	}
	now := r.clock().UTC()
	status, verified := approval(opts.ByAdmin, typ, scopes)
	out := &Created{}
	sc := store.Client{
		ID: opts.ID, Type: typ, Status: status, Verified: verified, Metadata: md,
		IntrospectAny: opts.IntrospectAny, MayLaunch: opts.MayLaunch, Admin: opts.Admin,
		PKCEExempt: opts.PKCEExempt && opts.ByAdmin, RequirePAR: opts.RequirePAR,
		CreatedBy: "self", CreatedAt: now, UpdatedAt: now,
	}
	if sc.ID == "" {
		sc.ID = newClientID()
	}
	if opts.ByAdmin {
		sc.CreatedBy = "admin"
	}
	if typ == ConfidentialSymmetric {
		out.Secret, sc.SecretHash = NewSecret()
		if opts.Secret != "" {
			out.Secret, sc.SecretHash = opts.Secret, hashSecret(opts.Secret)
		}
	}
	out.RegistrationToken, sc.RegistrationTokenHash = NewSecret()
	if err := r.st.CreateClient(ctx, sc); err != nil {
		return nil, err
	}
	out.Client = parseClient(sc)
	return out, nil
}

// CheckRegistrationToken authorises RFC 7592 access to a registration: an
// unknown client and a wrong token give the same answer.
func (r *Registry) CheckRegistrationToken(ctx context.Context, id, tok string) (*Client, error) {
	refuse := problem.New(problem.RegistrationTokenInvalid, "the registration access token is missing or wrong for this client, or the client does not exist; send Authorization: Bearer <registration_access_token> from the registration response").
		WithHeader("WWW-Authenticate", `Bearer error="invalid_token"`)
	sc, err := r.st.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		secretMatches(tok, make([]byte, sha256.Size)) // same work either way
		return nil, refuse
	}
	if err != nil {
		return nil, err
	}
	if tok == "" || !secretMatches(tok, sc.RegistrationTokenHash) {
		return nil, refuse
	}
	return parseClient(sc), nil
}

// RotateRegistrationToken issues a new registration access token (RFC 7592
// §3: every client information response carries one; the old one stops
// working).
func (r *Registry) RotateRegistrationToken(ctx context.Context, id string) (string, error) {
	var tok string
	err := r.st.UpdateClient(ctx, id, func(c *store.Client) error {
		tok, c.RegistrationTokenHash = NewSecret()
		return nil
	})
	return tok, err
}

// Update replaces a client's metadata (RFC 7592 §2.2 and the CLI). A
// change that widens scopes, grant types or redirect URIs sends the client
// back through approval and forgets the consent users gave it.
func (r *Registry) Update(ctx context.Context, id string, md store.ClientMetadata, byAdmin bool) (*Client, bool, error) {
	typ, scopes, err := r.Validate(&md)
	if err != nil {
		return nil, false, err
	}
	var updated store.Client
	widened := false
	err = r.st.UpdateClient(ctx, id, func(c *store.Client) error {
		if typ != c.Type {
			return problem.New(problem.InvalidClientMetadata, "token_endpoint_auth_method %s would change the client type from %s to %s; register a new client instead", md.TokenEndpointAuthMethod, c.Type, typ)
		}
		old := parseClient(*c)
		widened = widens(old, md, scopes)
		c.Metadata = md
		c.UpdatedAt = r.clock().UTC()
		if widened && !byAdmin && c.Status != store.ClientDisabled {
			// Back through approval; a disabled client stays disabled.
			c.Status, c.Verified = approval(false, typ, scopes)
		}
		updated = *c
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if widened && !byAdmin {
		if err := r.st.ForgetConsents(ctx, id); err != nil {
			return nil, widened, err
		}
	}
	r.Invalidate([]string{id})
	return parseClient(updated), widened, nil
}

func widens(old *Client, md store.ClientMetadata, scopes []scope.Scope) bool {
	for _, sc := range scopes {
		covered := false
		for _, o := range old.Scopes {
			if o.Covers(sc) {
				covered = true
				break
			}
		}
		if !covered {
			return true
		}
	}
	for _, g := range md.GrantTypes {
		if !slices.Contains(old.Metadata.GrantTypes, g) {
			return true
		}
	}
	for _, u := range md.RedirectURIs {
		if !slices.Contains(old.Metadata.RedirectURIs, u) {
			return true
		}
	}
	return false
}

// SetStatus enables or disables a client (an administrator's act).
// Disabling revokes every token the client holds, on every node.
func (r *Registry) SetStatus(ctx context.Context, id, status string) (*Client, error) {
	var out store.Client
	err := r.st.UpdateClient(ctx, id, func(c *store.Client) error {
		c.Status = status
		if status == store.ClientEnabled {
			c.Verified = true // an administrator looked at it
		}
		c.UpdatedAt = r.clock().UTC()
		out = *c
		return nil
	})
	if err != nil {
		return nil, err
	}
	if status == store.ClientDisabled {
		if err := r.revokeClient(ctx, id); err != nil {
			return nil, err
		}
	}
	r.Invalidate([]string{id})
	return parseClient(out), nil
}

// revokeClient kills every token issued to the client up to now: its
// access tokens through a client revocation (which lasts as long as the
// longest thing a client can hold) and its refresh tokens by revoking
// every grant, so re-enabling the client later revives none of them.
func (r *Registry) revokeClient(ctx context.Context, id string) error {
	now := r.clock().UTC()
	if err := r.st.RevokeClientGrants(ctx, id, now); err != nil {
		return err
	}
	return r.st.Revoke(ctx, store.Revocation{Kind: store.RevokeClient, Value: id, RevokedAt: now, ExpiresAt: now.Add(r.cfg.Tokens.RefreshMaxTTL.D())})
}

// RotateSecret issues a new client secret; the old one stops working at once.
func (r *Registry) RotateSecret(ctx context.Context, id string) (string, error) {
	var secret string
	err := r.st.UpdateClient(ctx, id, func(c *store.Client) error {
		if c.Type != ConfidentialSymmetric {
			return problem.New(problem.InvalidClientMetadata, "client %s is %s and has no secret to rotate", id, c.Type)
		}
		secret, c.SecretHash = NewSecret()
		c.UpdatedAt = r.clock().UTC()
		return nil
	})
	r.Invalidate([]string{id})
	return secret, err
}

// Delete removes a client and revokes its tokens.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := r.st.DeleteClient(ctx, id); err != nil {
		return err
	}
	r.Invalidate([]string{id})
	return r.revokeClient(ctx, id)
}

// SetFlags changes the administrator-only settings.
func (r *Registry) SetFlags(ctx context.Context, id string, fn func(c *store.Client)) (*Client, error) {
	var out store.Client
	err := r.st.UpdateClient(ctx, id, func(c *store.Client) error {
		fn(c)
		c.UpdatedAt = r.clock().UTC()
		out = *c
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Invalidate([]string{id})
	return parseClient(out), nil
}

// NotFound is the error for an unknown client id in administration.
func NotFound(id string) error {
	return problem.New(problem.NotFound, "no client has id %q; `smartgate client list` shows them", id)
}

// statusError is how the token endpoint refuses a pending or disabled
// client, naming the fix (DESIGN.md status table).
func statusError(c *Client) error {
	switch c.Status {
	case store.ClientPending:
		return problem.New(problem.ClientPending, "client %s is waiting for an administrator's approval; an administrator approves it with: smartgate client enable %s", c.ID, c.ID).WithHeader("WWW-Authenticate", `Basic realm="smartgate"`)
	case store.ClientDisabled:
		return problem.New(problem.ClientDisabled, "client %s is disabled; an administrator re-enables it with: smartgate client enable %s", c.ID, c.ID).WithHeader("WWW-Authenticate", `Basic realm="smartgate"`)
	}
	return nil
}
