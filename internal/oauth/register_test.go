package oauth

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// registration sends an RFC 7592 request for client id with the
// registration access token tok.
func (f *oauthFixture) registration(h handler, method, id, tok, body string) *httptest.ResponseRecorder {
	r := jsonRequest(method, "/oauth2/register/"+id, tok, body)
	r.SetPathValue("client_id", id)
	return f.serve(h, r)
}

func TestRegisterResponse(t *testing.T) {
	f := newOAuthFixture(t, nil)
	w := f.serve(f.s.Register, jsonRequest("POST", "/oauth2/register", "", `{
		"client_name": "Lab portal",
		"redirect_uris": ["https://app.example.com/cb"],
		"grant_types": ["authorization_code", "refresh_token"],
		"scope": "openid fhirUser launch/patient patient/*.rs offline_access",
		"contacts": ["dev@example.com"],
		"software_id": "lab-portal", "software_version": "1.2"
	}`))
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d, want 201; body %s", w.Code, w.Body.String())
	}
	m := body(t, w)
	id, _ := m["client_id"].(string)
	if id == "" || w.Header().Get("Location") != testIssuer+"/oauth2/register/"+id || m["registration_client_uri"] != testIssuer+"/oauth2/register/"+id {
		t.Errorf("client_id %q, Location %q, registration_client_uri %v", id, w.Header().Get("Location"), m["registration_client_uri"])
	}
	for _, k := range []string{"client_secret", "registration_access_token"} {
		if s, _ := m[k].(string); len(s) != 43 {
			t.Errorf("%s = %q, want 43 base64url characters (256 bits)", k, s)
		}
	}
	if m["client_secret_expires_at"] != float64(0) {
		t.Errorf("client_secret_expires_at = %v, want 0 (never; RFC 7591 section 3.2.1 requires it with a secret)", m["client_secret_expires_at"])
	}
	if m["token_endpoint_auth_method"] != "client_secret_basic" || m["smartgate_status"] != store.ClientPending {
		t.Errorf("auth method %v status %v, want client_secret_basic pending", m["token_endpoint_auth_method"], m["smartgate_status"])
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Errorf("Cache-Control %q Pragma %q, want no-store and no-cache", w.Header().Get("Cache-Control"), w.Header().Get("Pragma"))
	}
	// A public client gets no secret and no client_secret_expires_at.
	m = f.register(store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/cb"}, Scope: "patient/*.rs"})
	if _, ok := m["client_secret"]; ok {
		t.Errorf("public client got a client_secret")
	}
	if _, ok := m["client_secret_expires_at"]; ok {
		t.Errorf("public client got client_secret_expires_at")
	}
}

// RFC 7592: read, update and delete with the registration access token.
func TestRegistrationManagement(t *testing.T) {
	f := newOAuthFixture(t, nil)
	m := f.register(store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"com.example.app:/cb"}, Scope: "patient/*.rs openid"})
	id, tok := m["client_id"].(string), m["registration_access_token"].(string)

	// Refusals: the same answer for a wrong token, no token and an unknown client.
	for _, tc := range []struct{ name, id, tok string }{
		{"wrong token", id, "wrong"},
		{"no token", id, ""},
		{"another client's token", "nope", tok},
	} {
		for _, h := range []struct {
			method string
			h      handler
		}{{"GET", f.s.RegistrationRead}, {"PUT", f.s.RegistrationUpdate}, {"DELETE", f.s.RegistrationDelete}} {
			w := f.registration(h.h, h.method, tc.id, tc.tok, `{}`)
			e := wantError(t, h.method+" "+tc.name, w, 401, "invalid_token", problem.RegistrationTokenInvalid, "registration access token is missing or wrong")
			if got := e.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Errorf("%s %s: WWW-Authenticate %q", h.method, tc.name, got)
			}
		}
	}

	w := f.registration(f.s.RegistrationRead, "GET", id, tok, "")
	if w.Code != 200 {
		t.Fatalf("read: %d %s", w.Code, w.Body.String())
	}
	got := body(t, w)
	if got["client_id"] != id || got["scope"] != "patient/*.rs openid" || got["smartgate_status"] != store.ClientEnabled {
		t.Errorf("read = %v", got)
	}
	// RFC 7592 section 3: every client information response carries a
	// registration access token; a new one replaces the old.
	next, _ := got["registration_access_token"].(string)
	if next == "" || next == tok {
		t.Fatalf("read returned registration_access_token %q, want a new one", next)
	}
	wantError(t, "old token after rotation", f.registration(f.s.RegistrationRead, "GET", id, tok, ""), 401, "invalid_token", problem.RegistrationTokenInvalid)
	tok = next
	rotate := func(w *httptest.ResponseRecorder) {
		t.Helper()
		if w.Code == 200 {
			if n, _ := body(t, w)["registration_access_token"].(string); n != "" {
				tok = n
			}
		}
	}

	// Update: the body's client_id must name the client.
	w = f.registration(f.s.RegistrationUpdate, "PUT", id, tok, `{"client_id":"other","token_endpoint_auth_method":"none","redirect_uris":["com.example.app:/cb"],"scope":"patient/*.rs"}`)
	wantError(t, "PUT with another client_id", w, 400, "invalid_request", problem.InvalidRequest, "the body's client_id must be '"+id+"'")
	// Narrowing keeps the client enabled.
	w = f.registration(f.s.RegistrationUpdate, "PUT", id, tok, `{"client_id":"`+id+`","token_endpoint_auth_method":"none","redirect_uris":["com.example.app:/cb"],"scope":"patient/Observation.rs"}`)
	rotate(w)
	if got := body(t, w); w.Code != 200 || got["smartgate_status"] != store.ClientEnabled || got["scope"] != "patient/Observation.rs" {
		t.Errorf("narrowing update: %d %v", w.Code, got)
	}
	// Widening to user/ scopes sends it back for approval.
	w = f.registration(f.s.RegistrationUpdate, "PUT", id, tok, `{"client_id":"`+id+`","token_endpoint_auth_method":"none","redirect_uris":["com.example.app:/cb"],"scope":"patient/Observation.rs user/Observation.rs"}`)
	rotate(w)
	if got := body(t, w); w.Code != 200 || got["smartgate_status"] != store.ClientPending {
		t.Errorf("widening update: %d %v", w.Code, got)
	}
	// The metadata is replaced, not merged: a missing auth method means the
	// RFC 7591 default, client_secret_basic, which would change the type.
	w = f.registration(f.s.RegistrationUpdate, "PUT", id, tok, `{"client_id":"`+id+`","redirect_uris":["http://127.0.0.1/cb"],"scope":"patient/Observation.rs"}`)
	wantError(t, "PUT without the auth method", w, 400, "invalid_client_metadata", problem.InvalidClientMetadata, "would change the client type from public to confidential-symmetric")

	w = f.registration(f.s.RegistrationDelete, "DELETE", id, tok, "")
	if w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", w.Code, w.Body.String())
	}
	wantError(t, "read after delete", f.registration(f.s.RegistrationRead, "GET", id, tok, ""), 401, "invalid_token", problem.RegistrationTokenInvalid)
	if _, err := f.st.GetClient(context.Background(), id); err != store.ErrNotFound {
		t.Errorf("GetClient after delete: %v, want ErrNotFound", err)
	}
}

// Deleting a registration kills the tokens the client holds.
func TestRegistrationDeleteRevokesTokens(t *testing.T) {
	f := newOAuthFixture(t, nil)
	c := f.backendService("system/*.rs")
	at := tokenResponse(t, f.clientCredentials(c, "")).AccessToken
	f.now = f.now.Add(time.Second)
	w := f.registration(f.s.RegistrationDelete, "DELETE", c.ID, c.RegToken, "")
	if w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", w.Code, w.Body.String())
	}
	if err := f.revs.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Tokens.Verify(context.Background(), at); err == nil || !strings.Contains(err.Error(), "its client was disabled or deleted") {
		t.Errorf("Verify(token of a deleted client) = %v, want revoked", err)
	}
}

// registration.policy token: POST /oauth2/register needs an initial access token.
func TestRegistrationPolicyToken(t *testing.T) {
	f := newOAuthFixture(t, func(c *config.Config) { c.Registration.Policy = "token" })
	ctx := context.Background()
	const md = `{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"],"scope":"patient/*.rs"}`
	iat, _ := NewSecret()
	h := sha256.Sum256([]byte(iat))
	if err := f.st.CreateInitialAccessToken(ctx, h[:], f.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	expired, _ := NewSecret()
	he := sha256.Sum256([]byte(expired))
	if err := f.st.CreateInitialAccessToken(ctx, he[:], f.now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, tok string }{{"no token", ""}, {"unknown token", "nope"}, {"expired token", expired}} {
		w := f.serve(f.s.Register, jsonRequest("POST", "/oauth2/register", tc.tok, md))
		e := wantError(t, tc.name, w, 401, "invalid_token", problem.InitialAccessTokenRequired, "requires an initial access token", "smartgate client initial-token")
		if got := e.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, got)
		}
	}
	w := f.serve(f.s.Register, jsonRequest("POST", "/oauth2/register", iat, md))
	if w.Code != http.StatusCreated {
		t.Errorf("registration with an initial access token: %d %s", w.Code, w.Body.String())
	}
	// The token may be used again until it expires.
	if w := f.serve(f.s.Register, jsonRequest("POST", "/oauth2/register", iat, md)); w.Code != http.StatusCreated {
		t.Errorf("second registration with the same initial access token: %d %s", w.Code, w.Body.String())
	}
}

// Ten registrations a minute per address, twenty at once (defaults).
func TestRegisterRateLimit(t *testing.T) {
	f := newOAuthFixture(t, nil)
	const md = `{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"],"scope":"patient/*.rs"}`
	var last *httptest.ResponseRecorder
	n := 0
	for ; n < 100; n++ {
		last = f.serve(f.s.Register, jsonRequest("POST", "/oauth2/register", "", md))
		if last.Code != http.StatusCreated {
			break
		}
	}
	if n != f.cfg.RateLimits.RegisterBurst {
		t.Errorf("%d registrations passed before the limit, want the burst of %d", n, f.cfg.RateLimits.RegisterBurst)
	}
	wantError(t, "over the limit", last, 429, "temporarily_unavailable", problem.RateLimited, "too many registrations from this address")
	if last.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}
