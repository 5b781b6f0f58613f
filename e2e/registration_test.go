package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// register posts client metadata to /oauth2/register, with an initial
// access token when bearer is set.
func register(t *testing.T, base, bearer string, md map[string]any) reply {
	t.Helper()
	b, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	return do(t, http.MethodPost, base+"/oauth2/register", bytes.NewReader(b), h)
}

// registration is the client information response (RFC 7591 §3.2.1,
// RFC 7592 §3) with smartgate's status fields.
type registration struct {
	ClientID                string          `json:"client_id"`
	ClientSecret            *string         `json:"client_secret"`
	ClientIDIssuedAt        int64           `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64          `json:"client_secret_expires_at"`
	RegistrationAccessToken string          `json:"registration_access_token"`
	RegistrationClientURI   string          `json:"registration_client_uri"`
	Status                  string          `json:"smartgate_status"`
	Verified                *bool           `json:"smartgate_verified"`
	StatusDescription       string          `json:"smartgate_status_description"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	RedirectURIs            []string        `json:"redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	Scope                   string          `json:"scope"`
	ClientName              string          `json:"client_name"`
	JWKS                    json.RawMessage `json:"jwks"`
}

// mustRegister registers a client that must be created.
func mustRegister(t *testing.T, base, bearer string, md map[string]any) registration {
	t.Helper()
	r := register(t, base, bearer, md)
	if r.status != http.StatusCreated {
		t.Fatalf("registration of %v: want 201, got %s", md["client_name"], r)
	}
	var reg registration
	r.json(t, &reg)
	if reg.ClientID == "" || reg.RegistrationAccessToken == "" || reg.RegistrationClientURI != base+"/oauth2/register/"+reg.ClientID {
		t.Errorf("registration of %v: want client_id, registration_access_token and registration_client_uri %s/oauth2/register/ID; got %s", md["client_name"], base, r)
	}
	if loc := r.header.Get("Location"); loc != reg.RegistrationClientURI {
		t.Errorf("registration: Location %q, want the registration_client_uri %q", loc, reg.RegistrationClientURI)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("registration response (with secrets) lacks Cache-Control: no-store: %v", r.header)
	}
	if now := time.Now().Unix(); reg.ClientIDIssuedAt < now-60 || reg.ClientIDIssuedAt > now+5 {
		t.Errorf("client_id_issued_at %d is not now (%d)", reg.ClientIDIssuedAt, now)
	}
	return reg
}

// regClient follows one registration through RFC 7592 calls, keeping the
// newest registration access token: every client information response
// carries a new one and the old one stops working (RFC 7592 section 3).
type regClient struct {
	t              *testing.T
	id, uri, token string
}

func follow(t *testing.T, reg registration) *regClient {
	return &regClient{t: t, id: reg.ClientID, uri: reg.RegistrationClientURI, token: reg.RegistrationAccessToken}
}

// call sends method to the registration_client_uri with the current token.
func (c *regClient) call(method string, md map[string]any) reply {
	c.t.Helper()
	r := registrationCall(c.t, method, c.uri, c.token, md)
	if r.status == http.StatusOK {
		var reg registration
		if json.Unmarshal(r.body, &reg) == nil && reg.RegistrationAccessToken != "" {
			c.token = reg.RegistrationAccessToken
		}
	}
	return r
}

// registrationCall sends GET, PUT or DELETE to a registration_client_uri.
func registrationCall(t *testing.T, method, uri, token string, md map[string]any) reply {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	var body *bytes.Reader
	if md != nil {
		b, err := json.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
		h.Set("Content-Type", "application/json")
	} else {
		body = bytes.NewReader(nil)
	}
	return do(t, method, uri, body, h)
}

func patientApp() map[string]any {
	return map[string]any{
		"client_name":                "Patient app",
		"token_endpoint_auth_method": "none",
		"redirect_uris":              []string{"https://app.example.com/callback"},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"scope":                      "launch/patient openid fhirUser patient/*.rs offline_access",
	}
}

// TestDynamicRegistration covers RFC 7591 registration under the open
// policy of dev mode, the approval policy, RFC 7592 read/update/delete,
// and the metadata rules.
func TestDynamicRegistration(t *testing.T) {
	t.Parallel()
	// Many registrations in a row (the invalid ones count too): lift the
	// per-address burst; TestRateLimits checks the limit itself.
	s := startDev(t, "SMARTGATE_RATE_LIMITS_REGISTER_BURST=100")

	// A public patient app: enabled at once, unverified, no secret.
	app := mustRegister(t, s.URL, "", patientApp())
	if app.Status != "enabled" || app.Verified == nil || *app.Verified {
		t.Errorf("public patient app: smartgate_status %q verified %v; want enabled and false", app.Status, app.Verified)
	}
	if app.ClientSecret != nil || app.ClientSecretExpiresAt != nil {
		t.Errorf("public app got a client_secret (%v) or client_secret_expires_at (%v)", app.ClientSecret, app.ClientSecretExpiresAt)
	}
	if app.TokenEndpointAuthMethod != "none" || strings.Join(app.GrantTypes, " ") != "authorization_code refresh_token" ||
		strings.Join(app.ResponseTypes, " ") != "code" || app.Scope != patientApp()["scope"] {
		t.Errorf("public app metadata not echoed as registered: %+v", app)
	}

	// A confidential backend service with inline keys: pending until an
	// administrator enables it.
	key := newECKey(t, "backend-1")
	backend := mustRegister(t, s.URL, "", map[string]any{
		"client_name":                "Lab sync",
		"token_endpoint_auth_method": "private_key_jwt",
		"grant_types":                []string{"client_credentials"},
		"scope":                      "system/Observation.rs system/Patient.rs",
		"jwks":                       json.RawMessage(jwksJSON(t, key)),
	})
	if backend.Status != "pending" || backend.ClientSecret != nil {
		t.Errorf("backend service: smartgate_status %q client_secret %v; want pending and none", backend.Status, backend.ClientSecret)
	}
	if !strings.Contains(backend.StatusDescription, "smartgate client enable "+backend.ClientID) {
		t.Errorf("pending status description does not name the fix: %q", backend.StatusDescription)
	}
	backendCreds := assertCreds(t, backend.ClientID, s.tokenURL(), key)
	r := clientCredentials(t, s.URL, backendCreds, "system/Observation.rs")
	wantOAuthError(t, "token request of a pending client", r, http.StatusUnauthorized, "invalid_client", "approval", "smartgate client enable "+backend.ClientID)
	s.clientAct(t, "enable", backend.ClientID)
	var backendToken tokenResponse
	waitFor(t, revocationWait, "enabled backend gets a token", func() (bool, string) {
		r := clientCredentials(t, s.URL, backendCreds, "system/Observation.rs")
		if r.status == http.StatusOK {
			r.json(t, &backendToken)
		}
		return r.status == http.StatusOK, r.String()
	})
	rs := s.createClient(t, "resource server", "--type", "confidential-symmetric", "--scope", "system/Patient.rs", "--introspect-any")
	rsCreds := creds{id: rs.ClientID, secret: rs.ClientSecret}
	wantActive(t, s.URL, rsCreds, backendToken.AccessToken, "system/Observation.rs", backend.ClientID)

	// In dev mode a jwks_uri may be http on loopback.
	loopbackKeys := mustRegister(t, s.URL, "", map[string]any{
		"client_name": "Loopback keys", "token_endpoint_auth_method": "private_key_jwt",
		"grant_types": []string{"client_credentials"}, "scope": "system/Patient.rs",
		"jwks_uri": "http://127.0.0.1:9/jwks.json",
	})
	if loopbackKeys.Status != "pending" {
		t.Errorf("backend with a loopback jwks_uri: status %q, want pending", loopbackKeys.Status)
	}

	// A confidential-symmetric registration gets a secret that never expires.
	sym := mustRegister(t, s.URL, "", map[string]any{
		"client_name": "Nightly export", "grant_types": []string{"client_credentials"}, "scope": "system/Patient.rs",
	})
	if sym.ClientSecret == nil || *sym.ClientSecret == "" || sym.ClientSecretExpiresAt == nil || *sym.ClientSecretExpiresAt != 0 {
		t.Errorf("confidential-symmetric registration: client_secret %v client_secret_expires_at %v; want a secret and 0", sym.ClientSecret, sym.ClientSecretExpiresAt)
	}
	if sym.TokenEndpointAuthMethod != "client_secret_basic" || sym.Status != "pending" {
		t.Errorf("confidential-symmetric registration: method %q status %q; want client_secret_basic (the RFC 7591 default) and pending", sym.TokenEndpointAuthMethod, sym.Status)
	}

	// RFC 7592 read: with the registration access token only. Every client
	// information response carries a new token and the old one stops working.
	appReg := follow(t, app)
	symReg := follow(t, sym)
	oldToken := appReg.token
	r = appReg.call(http.MethodGet, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET registration: %s", r)
	}
	var got registration
	r.json(t, &got)
	if got.ClientID != app.ClientID || got.Scope != app.Scope || strings.Join(got.RedirectURIs, " ") != "https://app.example.com/callback" ||
		got.Status != "enabled" || got.ClientSecret != nil || got.ClientName != "Patient app" || got.RegistrationClientURI != app.RegistrationClientURI {
		t.Errorf("GET registration: want the registered metadata, got %s", r)
	}
	if got.RegistrationAccessToken == "" || got.RegistrationAccessToken == oldToken {
		t.Errorf("GET registration: want a new registration_access_token (RFC 7592 section 3), got %q", got.RegistrationAccessToken)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET registration (it carries a token) lacks Cache-Control: no-store")
	}
	for _, tc := range []struct{ name, uri, token string }{
		{"the previous token", app.RegistrationClientURI, oldToken},
		{"a wrong token", app.RegistrationClientURI, "wrong"},
		{"another client's token", app.RegistrationClientURI, symReg.token},
		{"no token", app.RegistrationClientURI, ""},
		{"an unknown client", s.URL + "/oauth2/register/no-such-client", appReg.token},
	} {
		r := registrationCall(t, http.MethodGet, tc.uri, tc.token, nil)
		wantOAuthError(t, "GET registration with "+tc.name, r, http.StatusUnauthorized, "invalid_token", "registration access token")
	}
	// The current token still works after those refusals.
	if r := appReg.call(http.MethodGet, nil); r.status != http.StatusOK {
		t.Fatalf("GET registration with the current token: %s", r)
	}

	// RFC 7592 update. A scope the registration already covers, and a
	// wider patient-level one: the public app stays enabled (approval policy).
	update := func(scope string) registration {
		t.Helper()
		md := patientApp()
		md["client_id"] = app.ClientID
		md["scope"] = scope
		r := appReg.call(http.MethodPut, md)
		if r.status != http.StatusOK {
			t.Fatalf("PUT registration with scope %q: %s", scope, r)
		}
		var u registration
		r.json(t, &u)
		if u.Scope != scope || u.ClientID != app.ClientID {
			t.Errorf("PUT registration: scope %q client_id %q; want %q and %s", u.Scope, u.ClientID, scope, app.ClientID)
		}
		return u
	}
	base := "launch/patient openid fhirUser patient/*.rs offline_access"
	if u := update(base + " patient/Condition.rs"); u.Status != "enabled" {
		t.Errorf("PUT adding patient/Condition.rs (covered by patient/*.rs): status %q, want enabled", u.Status)
	}
	if u := update(base + " patient/Condition.cruds"); u.Status != "enabled" {
		t.Errorf("PUT widening to patient/Condition.cruds (patient-level): status %q, want enabled", u.Status)
	}
	if u := update(base + " user/Observation.rs"); u.Status != "pending" || !strings.Contains(u.StatusDescription, "smartgate client enable") {
		t.Errorf("PUT widening to user/Observation.rs: status %q (%q), want pending naming smartgate client enable", u.Status, u.StatusDescription)
	}
	// The body must name the client.
	md := patientApp()
	md["client_id"] = "someone-else"
	r = appReg.call(http.MethodPut, md)
	wantOAuthError(t, "PUT with another client_id in the body", r, http.StatusBadRequest, "invalid_request", "client_id")
	// An update is held to the same metadata rules.
	md = patientApp()
	md["client_id"] = app.ClientID
	md["redirect_uris"] = []string{"http://app.example.com/cb"}
	r = appReg.call(http.MethodPut, md)
	wantOAuthError(t, "PUT with an http redirect URI", r, http.StatusBadRequest, "invalid_redirect_uri", "redirect_uris")
	r = registrationCall(t, http.MethodPut, app.RegistrationClientURI, "wrong", md)
	wantOAuthError(t, "PUT with a wrong token", r, http.StatusUnauthorized, "invalid_token")

	// RFC 7592 delete: 204, then the registration is gone.
	r = registrationCall(t, http.MethodDelete, app.RegistrationClientURI, "wrong", nil)
	wantOAuthError(t, "DELETE with a wrong token", r, http.StatusUnauthorized, "invalid_token")
	r = appReg.call(http.MethodDelete, nil)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("DELETE registration: want 204 with no body, got %s", r)
	}
	r = appReg.call(http.MethodGet, nil)
	wantOAuthError(t, "GET after DELETE", r, http.StatusUnauthorized, "invalid_token")
	// Deleting a registration revokes the client's tokens and its access.
	r = registrationCall(t, http.MethodDelete, backend.RegistrationClientURI, backend.RegistrationAccessToken, nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("DELETE backend registration: %s", r)
	}
	waitInactive(t, s.URL, rsCreds, backendToken.AccessToken, "token of a deleted client")
	waitFor(t, revocationWait, "deleted client refused", func() (bool, string) {
		r := clientCredentials(t, s.URL, backendCreds, "")
		return r.status == http.StatusUnauthorized, r.String()
	})
	wantOAuthError(t, "token request of a deleted client", clientCredentials(t, s.URL, backendCreds, ""), http.StatusUnauthorized, "invalid_client", "not a registered client_id")

	// A client cannot change its type by an update.
	md = patientApp()
	md["client_id"] = sym.ClientID
	md["token_endpoint_auth_method"] = "none"
	r = symReg.call(http.MethodPut, md)
	wantOAuthError(t, "PUT changing the client type", r, http.StatusBadRequest, "invalid_client_metadata", "token_endpoint_auth_method", "client type")

	// An administrator's disable holds against the client's own updates.
	disabledApp := follow(t, mustRegister(t, s.URL, "", patientApp()))
	s.clientAct(t, "disable", disabledApp.id)
	s.clientAct(t, "enable", sym.ClientID)
	s.clientAct(t, "disable", sym.ClientID)
	for _, tc := range []struct {
		name string
		reg  *regClient
		md   map[string]any
	}{
		{"public app, same metadata", disabledApp, patientApp()},
		{"public app, widened to patient/Condition.cruds", disabledApp, func() map[string]any {
			md := patientApp()
			md["scope"] = "launch/patient openid fhirUser patient/*.rs offline_access patient/Condition.cruds"
			return md
		}()},
		{"backend, widened to system/Observation.rs", symReg, map[string]any{
			"client_name": "Nightly export", "grant_types": []string{"client_credentials"}, "scope": "system/Patient.rs system/Observation.rs",
		}},
	} {
		tc.md["client_id"] = tc.reg.id
		r := tc.reg.call(http.MethodPut, tc.md)
		if r.status != http.StatusOK {
			t.Errorf("PUT by a disabled client (%s): %s", tc.name, r)
			continue
		}
		var u registration
		r.json(t, &u)
		if u.Status != "disabled" {
			t.Errorf("a disabled client's own update (%s) changed its status to %q; an administrator's disable must hold", tc.name, u.Status)
		}
	}
	if r := clientCredentials(t, s.URL, creds{id: sym.ClientID, secret: *sym.ClientSecret}, ""); r.status != http.StatusUnauthorized {
		t.Errorf("disabled backend after its own update: want 401, got %s", r)
	}

	// Invalid metadata: 400 naming the field and the rule.
	otherKey := newECKey(t, "x")
	privJWK, err := json.Marshal(map[string]any{"keys": []any{jsonObject(t, otherKey.privateJWK(t))}})
	if err != nil {
		t.Fatal(err)
	}
	backendMD := func(extra map[string]any) map[string]any {
		md := map[string]any{
			"client_name": "bad backend", "token_endpoint_auth_method": "private_key_jwt",
			"grant_types": []string{"client_credentials"}, "scope": "system/Patient.rs",
		}
		for k, v := range extra {
			md[k] = v
		}
		return md
	}
	publicMD := func(extra map[string]any) map[string]any {
		md := patientApp()
		for k, v := range extra {
			if v == nil {
				delete(md, k)
				continue
			}
			md[k] = v
		}
		return md
	}
	for _, tc := range []struct {
		name  string
		md    map[string]any
		code  string
		words []string
	}{
		{"http redirect on a public host", publicMD(map[string]any{"redirect_uris": []string{"http://app.example.com/cb"}}), "invalid_redirect_uri", []string{"redirect_uris", "http://app.example.com/cb", "loopback"}},
		{"localhost redirect", publicMD(map[string]any{"redirect_uris": []string{"http://localhost:8000/cb"}}), "invalid_redirect_uri", []string{"redirect_uris", "localhost", "127.0.0.1"}},
		{"redirect with a fragment", publicMD(map[string]any{"redirect_uris": []string{"https://app.example.com/cb#frag"}}), "invalid_redirect_uri", []string{"redirect_uris", "fragment"}},
		{"relative redirect", publicMD(map[string]any{"redirect_uris": []string{"/cb"}}), "invalid_redirect_uri", []string{"redirect_uris", "absolute"}},
		{"private-use scheme on a confidential client", publicMD(map[string]any{"token_endpoint_auth_method": "client_secret_basic", "redirect_uris": []string{"com.example.app:/cb"}}), "invalid_redirect_uri", []string{"redirect_uris", "private-use", "public"}},
		{"private-use scheme not reverse-DNS", publicMD(map[string]any{"redirect_uris": []string{"myapp:/cb"}}), "invalid_redirect_uri", []string{"redirect_uris", "reverse domain"}},
		{"no redirect_uris with authorization_code", publicMD(map[string]any{"redirect_uris": nil}), "invalid_client_metadata", []string{"redirect_uris"}},
		{"client_credentials on a public client", publicMD(map[string]any{"grant_types": []string{"client_credentials"}, "scope": "system/Patient.rs", "redirect_uris": nil}), "invalid_client_metadata", []string{"client_credentials", "confidential"}},
		{"missing scope", publicMD(map[string]any{"scope": nil}), "invalid_client_metadata", []string{"scope", "required"}},
		{"unknown scope", publicMD(map[string]any{"scope": "patient/*.rs bogus_scope"}), "invalid_client_metadata", []string{"scope", "bogus_scope"}},
		{"system scope without client_credentials", publicMD(map[string]any{"scope": "launch/patient system/Patient.rs"}), "invalid_client_metadata", []string{"system/Patient.rs", "client_credentials"}},
		{"jwks and jwks_uri together", backendMD(map[string]any{"jwks": json.RawMessage(jwksJSON(t, otherKey)), "jwks_uri": "https://backend.example.com/jwks.json"}), "invalid_client_metadata", []string{"jwks", "jwks_uri", "not both"}},
		{"private_key_jwt without keys", backendMD(nil), "invalid_client_metadata", []string{"jwks_uri", "jwks"}},
		{"private key material in jwks", backendMD(map[string]any{"jwks": json.RawMessage(privJWK)}), "invalid_client_metadata", []string{"jwks", "private"}},
		{"symmetric key in jwks", backendMD(map[string]any{"jwks": json.RawMessage(`{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}`)}), "invalid_client_metadata", []string{"jwks"}},
		{"ftp jwks_uri", backendMD(map[string]any{"jwks_uri": "ftp://backend.example.com/jwks.json"}), "invalid_client_metadata", []string{"jwks_uri", "https"}},
		{"client_secret_jwt", backendMD(map[string]any{"token_endpoint_auth_method": "client_secret_jwt"}), "invalid_client_metadata", []string{"token_endpoint_auth_method", "client_secret_jwt"}},
		{"unknown auth method", backendMD(map[string]any{"token_endpoint_auth_method": "tls_client_auth"}), "invalid_client_metadata", []string{"token_endpoint_auth_method"}},
		{"implicit response type", publicMD(map[string]any{"response_types": []string{"token"}}), "invalid_client_metadata", []string{"response_types", "token"}},
		{"unknown grant type", publicMD(map[string]any{"grant_types": []string{"implicit"}}), "invalid_client_metadata", []string{"grant_types", "implicit"}},
		{"wrong JSON type", publicMD(map[string]any{"redirect_uris": "https://app.example.com/cb"}), "invalid_client_metadata", []string{"redirect_uris"}},
		{"logo_uri not a URL", publicMD(map[string]any{"logo_uri": "logo.png"}), "invalid_client_metadata", []string{"logo_uri"}},
	} {
		r := register(t, s.URL, "", tc.md)
		wantOAuthError(t, tc.name, r, http.StatusBadRequest, tc.code, tc.words...)
	}
	// Not JSON at all.
	r = do(t, http.MethodPost, s.URL+"/oauth2/register", strings.NewReader("client_name=x"), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	wantOAuthError(t, "form-encoded registration", r, http.StatusBadRequest, "invalid_request", "application/json")
}

// privateJWK is the key's private JWK (with "d"): what a client must never register.
func (k *assertKey) privateJWK(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(joseJWK(k))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRegistrationPolicyToken: with registration.policy token, registration
// needs an initial access token from `smartgate client initial-token`.
func TestRegistrationPolicyToken(t *testing.T) {
	t.Parallel()
	s := startDev(t, "SMARTGATE_REGISTRATION_POLICY=token")
	r := register(t, s.URL, "", patientApp())
	wantOAuthError(t, "registration without an initial access token", r, http.StatusUnauthorized, "invalid_token", "initial access token", "smartgate client initial-token")
	r = register(t, s.URL, "made-up", patientApp())
	wantOAuthError(t, "registration with an unknown initial access token", r, http.StatusUnauthorized, "invalid_token", "initial access token")

	out := s.cli(t, "client", "initial-token")
	var it struct {
		Token     string    `json:"initial_access_token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &it); err != nil || it.Token == "" {
		t.Fatalf("client initial-token -o json: %v: %s", err, out)
	}
	if d := time.Until(it.ExpiresAt); d < 6*24*time.Hour || d > 8*24*time.Hour {
		t.Errorf("initial access token expires in %s, want the default of 7 days", d)
	}
	reg := mustRegister(t, s.URL, it.Token, patientApp())
	if reg.Status != "enabled" {
		t.Errorf("registration with an initial access token: status %q, want enabled (patient-level public app)", reg.Status)
	}
	// An expired initial access token is refused.
	out = s.cli(t, "client", "initial-token", "--expires", "1ms")
	if err := json.Unmarshal([]byte(out.stdout), &it); err != nil || it.Token == "" {
		t.Fatalf("client initial-token -o json: %v: %s", err, out)
	}
	time.Sleep(10 * time.Millisecond)
	r = register(t, s.URL, it.Token, patientApp())
	wantOAuthError(t, "registration with an expired initial access token", r, http.StatusUnauthorized, "invalid_token")
}

// TestRateLimits: registrations per address and token requests per client
// are limited; the excess gets 429 with Retry-After.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	s := startDev(t, "SMARTGATE_RATE_LIMITS_REGISTER_BURST=2", "SMARTGATE_RATE_LIMITS_TOKEN_BURST=2", "SMARTGATE_RATE_LIMITS_TOKEN_PER_CLIENT=1")
	a := s.createClient(t, "limited", "--type", "confidential-symmetric", "--scope", "system/Patient.rs")
	b := s.createClient(t, "other", "--type", "confidential-symmetric", "--scope", "system/Patient.rs")

	wantRetryAfter := func(what string, r reply) {
		t.Helper()
		wantOAuthError(t, what, r, http.StatusTooManyRequests, "temporarily_unavailable", "retry after")
		n, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || n < 1 || n > 60 {
			t.Errorf("%s: Retry-After %q, want a number of seconds", what, r.header.Get("Retry-After"))
		}
	}

	for i := 1; i <= 2; i++ {
		mustRegister(t, s.URL, "", patientApp())
	}
	wantRetryAfter("third registration at once", register(t, s.URL, "", patientApp()))

	ac := creds{id: a.ClientID, secret: a.ClientSecret}
	mustToken(t, s.URL, ac, "")
	mustToken(t, s.URL, ac, "")
	wantRetryAfter("third token request at once", clientCredentials(t, s.URL, ac, ""))
	// The limit is per client.
	mustToken(t, s.URL, creds{id: b.ClientID, secret: b.ClientSecret}, "")
	// And it refills: one per second.
	waitFor(t, 3*time.Second, "token bucket refills", func() (bool, string) {
		r := clientCredentials(t, s.URL, ac, "")
		return r.status == http.StatusOK, r.String()
	})
}

// joseJWK is the key pair as a JWK, private members included.
func joseJWK(k *assertKey) jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// TestClientIDStartingWithDash: client ids are random base64url, so about
// one in 64 starts with "-". The CLI must still manage such a client, and
// the fix that error messages print (smartgate client enable ID) must work
// when pasted as printed.
func TestClientIDStartingWithDash(t *testing.T) {
	t.Parallel()
	s := startDev(t, "SMARTGATE_RATE_LIMITS_REGISTER_BURST=5000")
	var reg registration
	for i := 0; i < 2000 && !strings.HasPrefix(reg.ClientID, "-"); i++ {
		reg = mustRegister(t, s.URL, "", map[string]any{
			"client_name": "dash", "grant_types": []string{"client_credentials"}, "scope": "system/Patient.rs",
		})
	}
	if !strings.HasPrefix(reg.ClientID, "-") {
		t.Skipf("no client id starting with - in 2000 registrations (improbable: about 1 in 10^13)")
	}
	if !strings.Contains(reg.StatusDescription, "smartgate client enable "+reg.ClientID) {
		t.Fatalf("pending status description does not name the fix: %q", reg.StatusDescription)
	}
	// As printed, the fix fails: cobra reads the id as flags.
	r := smartgate(t, s.env, "client", "enable", reg.ClientID, "--dev", "--data-dir", s.dataDir)
	if r.code != 0 {
		knownBug(t, "internal/oauth/registry.go newClientID: client ids are raw base64url and 1 in 64 starts with '-'; "+
			"the fix the server prints (%q) then fails: %s", "smartgate client enable "+reg.ClientID, strings.TrimSpace(r.stderr))
	}
	// With "--" the CLI manages it.
	s.clientAct(t, "enable", reg.ClientID)
	out := s.clientAct(t, "show", reg.ClientID)
	var c cliClient
	if err := json.Unmarshal([]byte(out.stdout), &c); err != nil || c.ClientID != reg.ClientID || c.Status != "enabled" {
		t.Errorf("client show -- %s: %v %s", reg.ClientID, err, out)
	}
	mustToken(t, s.URL, creds{id: reg.ClientID, secret: *reg.ClientSecret}, "")
}
