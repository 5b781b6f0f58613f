package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/clientkeys"
	"smartgate/internal/config"
	"smartgate/internal/identity"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
	"smartgate/internal/token"
)

// testIssuer is the issuer every test server runs under.
const testIssuer = "https://ehr.example.org"

// oauthFixture is one authorization server on a real SQLite store, with
// real signing keys, a real token service and a clock the test moves.
type oauthFixture struct {
	t    testing.TB
	s    *Server
	st   *sqlstore.DB
	cfg  *config.Config
	revs *token.Revocations
	errs *problem.Writer
	now  time.Time
}

// newOAuthFixture builds a dev-mode server (config.Load with dev and a
// temp data dir, as `serve --dev` does). mod may change the config first.
func newOAuthFixture(t testing.TB, mod func(*config.Config)) *oauthFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	loaded, err := config.Load(config.Options{Flags: map[string]string{"dev": "true", "data_dir": dir}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &loaded.Config
	if mod != nil {
		mod(cfg)
	}
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "t.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &oauthFixture{t: t, st: st, cfg: cfg, now: time.Now().Truncate(time.Second), errs: &problem.Writer{BaseURL: testIssuer}}
	clock := func() time.Time { return f.now }
	kek, err := keys.ParseKEK(keys.GenerateKEK(), "test")
	if err != nil {
		t.Fatal(err)
	}
	km := keys.New(st, keys.Options{JWKSMaxAge: time.Minute, MaxTokenLifetime: time.Hour, Clock: clock, LoadKEK: func() (*keys.KEK, error) { return kek, nil }})
	if err := km.Init(ctx); err != nil {
		t.Fatal(err)
	}
	f.revs = token.NewRevocations(st, clock)
	tokens := token.New(km, f.revs, token.Options{Issuer: testIssuer, Audience: testIssuer + "/fhir", Clock: clock})
	f.s = New(Deps{
		Config: cfg, Issuer: testIssuer, Store: st, Tokens: tokens,
		// As the server does: private jwks_uri targets only in dev mode.
		Keys:  clientkeys.New(clientkeys.Options{AllowPrivate: cfg.Dev, Clock: clock}),
		Audit: nil, Clock: clock,
		Errors: f.errs, KEK: kek,
		Users: identity.New(st, identity.Options{Login: cfg.Login, Clock: clock, Hasher: identity.NewHasher(2)}),
	})
	return f
}

// handler is the signature of the server's endpoints.
type handler func(http.ResponseWriter, *http.Request) error

// serve runs h and renders a returned error as the server does, so status,
// headers and JSON are checked exactly as a client sees them.
func (f *oauthFixture) serve(h handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	if err := h(w, r); err != nil {
		f.errs.Write(w, r, problem.SurfaceOAuth, err)
	}
	return w
}

// formRequest is a POST with an application/x-www-form-urlencoded body.
func formRequest(path string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// jsonRequest is a request with a JSON body and, when tok is not empty,
// a Bearer token.
func jsonRequest(method, path, tok, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

// post sends form to h; mod may change the request (headers, URL) first.
func (f *oauthFixture) post(h handler, form url.Values, mod func(*http.Request)) *httptest.ResponseRecorder {
	r := formRequest("/oauth2/token", form)
	if mod != nil {
		mod(r)
	}
	return f.serve(h, r)
}

// basic sets client_secret_basic credentials, form-urlencoding them first
// as RFC 6749 §2.3.1 requires.
func basic(id, secret string) func(*http.Request) {
	return func(r *http.Request) {
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
}

// body decodes a JSON response body.
func body(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("response body is not JSON: %v\n%s", err, w.Body.String())
	}
	return m
}

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	Status      int
	Code        string // error
	ID          string // the catalogue id, from error_uri
	Description string
	Header      http.Header
}

func errorOf(t testing.TB, w *httptest.ResponseRecorder) oauthError {
	t.Helper()
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	code, _ := m["error"].(string)
	uri, _ := m["error_uri"].(string)
	_, id, _ := strings.Cut(uri, "#")
	desc, _ := m["error_description"].(string)
	return oauthError{Status: w.Code, Code: code, ID: id, Description: desc, Header: w.Header()}
}

// wantError checks status, error code, catalogue id and that the
// description contains each of the given fragments.
func wantError(t testing.TB, name string, w *httptest.ResponseRecorder, status int, code string, id problem.ID, fragments ...string) oauthError {
	t.Helper()
	e := errorOf(t, w)
	if e.Code == "" {
		t.Errorf("%s: status %d, want an error response (%d %s); body: %.300s", name, w.Code, status, id, w.Body.String())
		return e
	}
	if e.Status != status || e.Code != code || e.ID != string(id) {
		t.Errorf("%s: got %d %s (%s), want %d %s (%s); description: %s", name, e.Status, e.Code, e.ID, status, code, id, e.Description)
	}
	for _, frag := range fragments {
		if !strings.Contains(e.Description, frag) {
			t.Errorf("%s: error_description %q does not contain %q", name, e.Description, frag)
		}
	}
	return e
}

// created is a client made for a test, with its one-time secrets.
type created struct {
	ID, Secret, RegToken string
	Client               *Client
}

// create registers a client directly through the registry.
func (f *oauthFixture) create(md store.ClientMetadata, opts Options) created {
	f.t.Helper()
	c, err := f.s.Clients.Create(context.Background(), md, opts)
	if err != nil {
		f.t.Fatalf("Create(%+v): %v", md, err)
	}
	return created{ID: c.Client.ID, Secret: c.Secret, RegToken: c.RegistrationToken, Client: c.Client}
}

// backendService is an admin-created client_secret_basic client with
// client_credentials and the given system scopes.
func (f *oauthFixture) backendService(scope string) created {
	return f.create(store.ClientMetadata{ClientName: "lab", GrantTypes: []string{"client_credentials"}, Scope: scope}, Options{ByAdmin: true})
}

// userApp is an admin-created confidential client with authorization_code
// and refresh_token, for the refresh tests.
func (f *oauthFixture) userApp(scope string) created {
	return f.create(store.ClientMetadata{
		ClientName: "app", RedirectURIs: []string{"https://app.example.com/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: scope,
	}, Options{ByAdmin: true})
}

// clientCredentials requests a token with client_secret_basic.
func (f *oauthFixture) clientCredentials(c created, scope string) *httptest.ResponseRecorder {
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	return f.post(f.s.Token, form, basic(c.ID, c.Secret))
}

// tokenResponse decodes a successful token response.
func tokenResponse(t testing.TB, w *httptest.ResponseRecorder) TokenResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("token request: status %d, want 200; body: %s", w.Code, w.Body.String())
	}
	var tr TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// ecJWKS returns a one-key JWK Set for a new P-256 key: the public part,
// and the same key with its private member d.
func ecJWKS(t testing.TB) (public, private json.RawMessage) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}
