package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"smartgate/internal/identity"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
)

const testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

func testChallenge(v string) string {
	h := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// browse runs a page handler as the server does: errors render as HTML.
func (f *oauthFixture) browse(h handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	if err := h(w, r); err != nil {
		f.errs.Write(w, r, problem.SurfaceHTML, err)
	}
	return w
}

// authzQuery is a complete, valid authorization request for c.
func authzQuery(c created, scope string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {"https://app.example.com/cb"},
		"state": {"st-123"}, "scope": {scope}, "aud": {testIssuer + "/fhir"},
		"code_challenge": {testChallenge(testVerifier)}, "code_challenge_method": {"S256"}, "nonce": {"n-1"},
	}
}

func authzGet(q url.Values) *http.Request {
	return httptest.NewRequest(http.MethodGet, "/oauth2/authorize?"+q.Encode(), nil)
}

// signIn makes a user and a login session, and returns a request
// modifier that carries the session cookie.
func (f *oauthFixture) signIn(t *testing.T, username, role, fhirUser string) (store.User, func(*http.Request)) {
	t.Helper()
	ctx := context.Background()
	u, err := f.s.Users.CreateUser(ctx, identity.NewUser{Username: username, Role: role, FHIRUser: fhirUser, Password: "correct horse battery staple"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := f.s.Users.CreateSession(ctx, identity.Login{User: u, AuthTime: f.now, AMR: []string{"pwd"}})
	if err != nil {
		t.Fatal(err)
	}
	return u, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "__Host-smartgate-session", Value: id}) }
}

func TestAuthorizeRefusesWithoutRedirectUntilClientAndRedirectAreKnown(t *testing.T) {
	f := newOAuthFixture(t, nil)
	app := f.userApp("openid fhirUser user/*.rs offline_access")
	pending := f.create(store.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb"}, TokenEndpointAuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code"}, Scope: "user/*.rs"}, Options{})
	for _, tc := range []struct {
		name   string
		mod    func(q url.Values)
		status int
		want   string
	}{
		{"no client_id", func(q url.Values) { q.Del("client_id") }, 400, "client_id is missing"},
		{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, 400, `client_id "nope" is not registered`},
		{"no redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, 400, "redirect_uri is missing"},
		{"unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", "https://evil.example.com/cb") }, 400, "is not registered for client"},
		{"redirect_uri with another path", func(q url.Values) { q.Set("redirect_uri", "https://app.example.com/cb2") }, 400, "is not registered for client"},
		{"repeated parameter", func(q url.Values) { q.Add("state", "x") }, 400, `parameter "state" appears 2 times`},
		{"pending client", func(q url.Values) { q.Set("client_id", pending.ID) }, 403, "smartgate client enable " + pending.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := authzQuery(app, "openid user/*.rs")
			tc.mod(q)
			w := f.browse(f.s.Authorize, authzGet(q))
			if w.Code != tc.status || w.Header().Get("Location") != "" {
				t.Fatalf("status %d, Location %q; want %d and no redirect; body %s", w.Code, w.Header().Get("Location"), tc.status, w.Body.String())
			}
			if h := w.Header().Get("WWW-Authenticate"); h != "" {
				t.Errorf("WWW-Authenticate %q on a browser page: the browser would show its own password dialog", h)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q, want an HTML page", ct)
			}
			if !strings.Contains(w.Body.String(), htmlEscape(tc.want)) {
				t.Errorf("page does not say %q:\n%s", tc.want, w.Body.String())
			}
		})
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer(`"`, "&#34;", "'", "&#39;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// redirectError follows the contract of an error sent back to the app.
func redirectError(t *testing.T, w *httptest.ResponseRecorder) url.Values {
	t.Helper()
	if w.Code != http.StatusSeeOther {
		t.Fatalf("status %d, want 303 to the app; body %s", w.Code, w.Body.String())
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil || u.Host != "app.example.com" {
		t.Fatalf("Location %q is not the app's redirect_uri", w.Header().Get("Location"))
	}
	q := u.Query()
	if q.Get("iss") != testIssuer {
		t.Errorf("iss = %q, want %s (RFC 9207)", q.Get("iss"), testIssuer)
	}
	if !strings.HasPrefix(q.Get("error_uri"), testIssuer+"/docs/errors#") {
		t.Errorf("error_uri = %q, want the catalogue entry", q.Get("error_uri"))
	}
	return q
}

func TestAuthorizeErrorsGoBackToTheApp(t *testing.T) {
	f := newOAuthFixture(t, nil)
	app := f.userApp("openid fhirUser profile launch user/*.rs offline_access")
	for _, tc := range []struct {
		name       string
		mod        func(q url.Values)
		code, want string
	}{
		{"no state", func(q url.Values) { q.Del("state") }, "invalid_request", "state is missing"},
		{"no response_type", func(q url.Values) { q.Del("response_type") }, "invalid_request", "response_type is missing"},
		{"implicit", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type", `response_type "token" is not supported`},
		{"no aud", func(q url.Values) { q.Del("aud") }, "invalid_request", "aud is missing"},
		{"wrong aud", func(q url.Values) { q.Set("aud", "https://other.example.org/fhir") }, "invalid_request", `aud "https://other.example.org/fhir" is not this server's FHIR base`},
		{"no code_challenge", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request", "code_challenge is missing"},
		{"plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request", "code_challenge_method must be S256"},
		{"method missing", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request", "code_challenge_method must be S256"},
		{"challenge not a hash", func(q url.Values) { q.Set("code_challenge", "short") }, "invalid_request", "code_challenge is not a base64url SHA-256"},
		{"unknown prompt", func(q url.Values) { q.Set("prompt", "bogus") }, "invalid_request", `prompt "bogus" is not supported`},
		{"prompt none with login", func(q url.Values) { q.Set("prompt", "none login") }, "invalid_request", "prompt=none cannot be combined"},
		{"bad max_age", func(q url.Values) { q.Set("max_age", "-3") }, "invalid_request", "max_age must be a whole number"},
		{"malformed scope", func(q url.Values) { q.Set("scope", "patient/Observation.rx") }, "invalid_scope", "patient/Observation.rx"},
		{"no scope", func(q url.Values) { q.Del("scope") }, "invalid_scope", "scope is missing"},
		{"only system scopes", func(q url.Values) { q.Set("scope", "system/*.rs") }, "invalid_scope", "not for a user's sign-in"},
		{"system scope beside others", func(q url.Values) { q.Set("scope", "system/*.rs launch") }, "invalid_scope", "no scope left to grant"},
		{"launch without launch scope", func(q url.Values) { q.Set("launch", "abc"); q.Set("scope", "openid user/*.rs") }, "invalid_scope", "not the launch scope"},
		{"unknown launch", func(q url.Values) { q.Set("launch", "abc"); q.Set("scope", "launch openid user/*.rs") }, "invalid_request", "the launch \"abc\" is unknown"},
		{"request object", func(q url.Values) { q.Set("request", "eyJ...") }, "invalid_request", "request objects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := authzQuery(app, "openid user/*.rs")
			tc.mod(q)
			back := redirectError(t, f.browse(f.s.Authorize, authzGet(q)))
			if back.Get("error") != tc.code || !strings.Contains(back.Get("error_description"), tc.want) {
				t.Errorf("error=%q error_description=%q; want %s naming %q", back.Get("error"), back.Get("error_description"), tc.code, tc.want)
			}
			if q.Get("state") != "" && back.Get("state") != q.Get("state") {
				t.Errorf("state = %q, want %q", back.Get("state"), q.Get("state"))
			}
			if back.Get("code") != "" {
				t.Errorf("an error response carries a code")
			}
		})
	}
}

func TestAuthorizeTellsScriptsItIsABrowserStep(t *testing.T) {
	f := newOAuthFixture(t, nil)
	app := f.userApp("openid user/*.rs")
	for name, r := range map[string]*http.Request{
		"Accept json": func() *http.Request {
			r := authzGet(authzQuery(app, "openid user/*.rs"))
			r.Header.Set("Accept", "application/json")
			return r
		}(),
		"JSON body": jsonRequest(http.MethodPost, "/oauth2/authorize", "", `{"client_id":"`+app.ID+`"}`),
	} {
		t.Run(name, func(t *testing.T) {
			w := f.browse(f.s.Authorize, r)
			e := wantError(t, name, w, 400, "invalid_request", problem.AuthorizeBrowserStep, "browser step", "client_credentials", "smartgate token")
			_ = e
		})
	}
}

func TestAuthorizeSendsTheBrowserToSignIn(t *testing.T) {
	f := newOAuthFixture(t, nil)
	app := f.userApp("openid user/*.rs")
	q := authzQuery(app, "openid user/*.rs")
	q.Set("login_hint", "ines")
	w := f.browse(f.s.Authorize, authzGet(q))
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || loc == nil || loc.Path != "/login" {
		t.Fatalf("status %d Location %q, want 303 to /login", w.Code, w.Header().Get("Location"))
	}
	p, err := f.s.unseal(loc.Query().Get("auth"))
	if err != nil {
		t.Fatal(err)
	}
	if p.ClientID != app.ID || p.State != "st-123" || p.Challenge != testChallenge(testVerifier) || p.Nonce != "n-1" || p.LoginHint != "ines" || p.Scope != "openid user/*.rs" {
		t.Errorf("sealed request %+v does not carry the request", p)
	}
	// Tampering or expiry is refused.
	sealed := loc.Query().Get("auth")
	if _, err := f.s.unseal(sealed[:len(sealed)-2] + "AA"); !problem.IsID(err, problem.AuthorizeRequestExpired) {
		t.Errorf("altered request: %v, want authorize_request_expired", err)
	}
	f.now = f.now.Add(f.cfg.Authorize.RequestTTL.D() + time.Second)
	if _, err := f.s.unseal(sealed); !problem.IsID(err, problem.AuthorizeRequestExpired) {
		t.Errorf("expired request: %v, want authorize_request_expired", err)
	}

	// prompt=none without a session: login_required, back to the app.
	q.Set("prompt", "none")
	back := redirectError(t, f.browse(f.s.Authorize, authzGet(q)))
	if back.Get("error") != "login_required" {
		t.Errorf("prompt=none without a session: error %q, want login_required", back.Get("error"))
	}
}

func TestPKCEExemptionOnlyForOpenIDConfidentialClients(t *testing.T) {
	f := newOAuthFixture(t, nil)
	md := store.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb"}, GrantTypes: []string{"authorization_code"}, Scope: "openid profile user/*.rs"}
	exempt := f.create(md, Options{ByAdmin: true, PKCEExempt: true})
	normal := f.create(md, Options{ByAdmin: true})
	noPKCE := func(c created, scope string) *httptest.ResponseRecorder {
		q := authzQuery(c, scope)
		q.Del("code_challenge")
		q.Del("code_challenge_method")
		q.Del("aud")
		return f.browse(f.s.Authorize, authzGet(q))
	}
	if w := noPKCE(exempt, "openid profile"); !strings.HasPrefix(w.Header().Get("Location"), "/login?") {
		t.Errorf("exempt client, OpenID scopes only: Location %q, want the sign-in page", w.Header().Get("Location"))
	}
	if back := redirectError(t, noPKCE(normal, "openid profile")); !strings.Contains(back.Get("error_description"), "code_challenge is missing") {
		t.Errorf("client without the exemption: %v", back)
	}
	q := authzQuery(exempt, "openid user/*.rs")
	q.Del("code_challenge")
	q.Del("code_challenge_method")
	if back := redirectError(t, f.browse(f.s.Authorize, authzGet(q))); !strings.Contains(back.Get("error_description"), "code_challenge is missing") {
		t.Errorf("exempt client asking for FHIR scopes must still use PKCE: %v", back)
	}
}

func TestCheckVerifier(t *testing.T) {
	ch := testChallenge(testVerifier)
	for _, tc := range []struct {
		name, challenge, verifier, want string
	}{
		{"match", ch, testVerifier, ""},
		{"missing", ch, "", "code_verifier is missing"},
		{"wrong", ch, strings.Repeat("a", 43), "does not match"},
		{"too short", ch, "abc", "43 to 128 characters"},
		{"bad characters", ch, strings.Repeat("a", 42) + "!", "43 to 128 characters"},
		{"the challenge itself", ch, ch, "is the code_challenge itself"},
		{"no challenge, verifier sent", "", testVerifier, "had no code_challenge"},
		{"no challenge, none sent", "", "", ""},
	} {
		err := checkVerifier(tc.challenge, tc.verifier)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v, want success", tc.name, err)
			}
			continue
		}
		if !problem.IsID(err, problem.InvalidGrant) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want invalid_grant saying %q", tc.name, err, tc.want)
		}
	}
}

// codeFor runs a signed-in user through authorize with remembered consent
// and returns the code.
func (f *oauthFixture) codeFor(t *testing.T, c created, scope string, withSession func(*http.Request), userID string) string {
	t.Helper()
	if err := f.st.PutConsent(context.Background(), store.Consent{ClientID: c.ID, Subject: userID, Scope: scope, CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	r := authzGet(authzQuery(c, scope))
	withSession(r)
	w := f.browse(f.s.Authorize, r)
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || loc == nil || loc.Host != "app.example.com" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize with a session and remembered consent: status %d Location %q, want a code; body %s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
	if loc.Query().Get("state") != "st-123" || loc.Query().Get("iss") != testIssuer {
		t.Errorf("success response %v lacks state or iss", loc.Query())
	}
	return loc.Query().Get("code")
}

func exchange(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example.com/cb"}, "code_verifier": {verifier}}
}

func TestAuthorizationCodeGrant(t *testing.T) {
	f := newOAuthFixture(t, nil)
	app := f.userApp("openid fhirUser profile user/*.rs offline_access")
	other := f.userApp("openid user/*.rs")
	u, withSession := f.signIn(t, "ines", store.RolePractitioner, "Practitioner/p1")
	scope := "openid fhirUser profile user/*.rs offline_access"
	ctx := context.Background()

	t.Run("success", func(t *testing.T) {
		code := f.codeFor(t, app, scope, withSession, u.ID)
		w := f.post(f.s.Token, exchange(code, testVerifier), basic(app.ID, app.Secret))
		b := body(t, w)
		if w.Code != 200 || b["refresh_token"] == nil || b["id_token"] == nil || b["scope"] != scope {
			t.Fatalf("exchange: %d %v", w.Code, b)
		}
		at := claimsOf(t, b["access_token"].(string))
		if at["sub"] != u.ID || at["fhirUser"] != "Practitioner/p1" || at["client_id"] != app.ID {
			t.Errorf("access token claims %v", at)
		}
		idt := claimsOf(t, b["id_token"].(string))
		if idt["aud"] != app.ID || idt["nonce"] != "n-1" || idt["sub"] != u.ID || idt["fhirUser"] != testIssuer+"/fhir/Practitioner/p1" ||
			idt["preferred_username"] != "ines" || idt["auth_time"] == nil || idt["iss"] != testIssuer {
			t.Errorf("id_token claims %v", idt)
		}
		// A refresh returns a new id_token (without the nonce) only when
		// it asks for openid.
		w = f.post(f.s.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {b["refresh_token"].(string)}}, basic(app.ID, app.Secret))
		rb := body(t, w)
		if w.Code != 200 || rb["id_token"] != nil {
			t.Fatalf("refresh without scope: %d %v, want a token response without an id_token", w.Code, rb)
		}
		w = f.post(f.s.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rb["refresh_token"].(string)}, "scope": {scope}}, basic(app.ID, app.Secret))
		rb = body(t, w)
		if w.Code != 200 || rb["id_token"] == nil {
			t.Fatalf("refresh asking for openid: %d %v", w.Code, rb)
		}
		if c := claimsOf(t, rb["id_token"].(string)); c["nonce"] != nil || c["sub"] != u.ID {
			t.Errorf("refreshed id_token %v", c)
		}

		// The same code again: refused, and the grant it made is revoked.
		w = f.post(f.s.Token, exchange(code, testVerifier), basic(app.ID, app.Secret))
		wantError(t, "reused code", w, 400, "invalid_grant", problem.InvalidGrant, "already used")
		g, err := f.st.GetGrant(ctx, at["grant"].(string))
		if err != nil || g.RevokedAt.IsZero() {
			t.Errorf("grant after code reuse: %+v %v, want revoked", g, err)
		}
	})
	for _, tc := range []struct {
		name     string
		form     func(code string) url.Values
		as       created
		wantDesc string
	}{
		{"wrong verifier", func(code string) url.Values { return exchange(code, strings.Repeat("b", 43)) }, app, "does not match"},
		{"no verifier", func(code string) url.Values { return exchange(code, "") }, app, "code_verifier is missing"},
		{"verifier is the challenge", func(code string) url.Values { return exchange(code, testChallenge(testVerifier)) }, app, "the code_challenge itself"},
		{"other redirect_uri", func(code string) url.Values {
			v := exchange(code, testVerifier)
			v.Set("redirect_uri", "https://app.example.com/other")
			return v
		}, app, "differs from the authorization request"},
		{"other client", func(code string) url.Values { return exchange(code, testVerifier) }, other, "issued to another client"},
		{"unknown code", func(string) url.Values { return exchange("nope", testVerifier) }, app, "not known here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := f.codeFor(t, app, scope, withSession, u.ID)
			w := f.post(f.s.Token, tc.form(code), basic(tc.as.ID, tc.as.Secret))
			wantError(t, tc.name, w, 400, "invalid_grant", problem.InvalidGrant, tc.wantDesc)
			// A failed exchange burns the code: a retry does not work.
			w = f.post(f.s.Token, exchange(code, testVerifier), basic(app.ID, app.Secret))
			if w.Code == 200 && tc.name != "unknown code" {
				t.Errorf("the code still worked after a failed exchange")
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		code := f.codeFor(t, app, scope, withSession, u.ID)
		f.now = f.now.Add(CodeTTL + time.Second)
		defer func() { f.now = f.now.Add(-CodeTTL - time.Second) }()
		w := f.post(f.s.Token, exchange(code, testVerifier), basic(app.ID, app.Secret))
		wantError(t, "expired", w, 400, "invalid_grant", problem.InvalidGrant, "expired")
	})
}

func TestPAR(t *testing.T) {
	f := newOAuthFixture(t, nil)
	app := f.userApp("openid user/*.rs")
	q := authzQuery(app, "openid user/*.rs")
	w := f.post(f.s.PAR, q, basic(app.ID, app.Secret))
	b := body(t, w)
	if w.Code != http.StatusCreated || !strings.HasPrefix(b["request_uri"].(string), requestURIPrefix) || b["expires_in"] != float64(90) {
		t.Fatalf("PAR: %d %v", w.Code, b)
	}
	ru := b["request_uri"].(string)
	use := func() *httptest.ResponseRecorder {
		return f.browse(f.s.Authorize, authzGet(url.Values{"client_id": {app.ID}, "request_uri": {ru}}))
	}
	if w := use(); !strings.HasPrefix(w.Header().Get("Location"), "/login?") {
		t.Fatalf("authorize with request_uri: %d %q", w.Code, w.Header().Get("Location"))
	}
	if w := use(); w.Code != 400 || !strings.Contains(w.Body.String(), "used already") {
		t.Errorf("request_uri used twice: %d %s", w.Code, w.Body.String())
	}
	// Invalid pushed parameters are JSON errors at /oauth2/par.
	bad := authzQuery(app, "openid user/*.rs")
	bad.Del("state")
	wantError(t, "PAR without state", f.post(f.s.PAR, bad, basic(app.ID, app.Secret)), 400, "invalid_request", problem.InvalidRequest, "state is missing")
	// A client that must push is refused a plain request.
	if _, err := f.s.Clients.SetFlags(context.Background(), app.ID, func(c *store.Client) { c.RequirePAR = true }); err != nil {
		t.Fatal(err)
	}
	w = f.browse(f.s.Authorize, authzGet(authzQuery(app, "openid user/*.rs")))
	if w.Code != 400 || !strings.Contains(w.Body.String(), "must push") {
		t.Errorf("RequirePAR client with a plain request: %d %s", w.Code, w.Body.String())
	}
}

func TestDescribeScopes(t *testing.T) {
	ss := mustScopes(t, "openid fhirUser launch/patient offline_access patient/Observation.rs patient/MedicationRequest.cruds user/*.read")
	groups := describeScopes(ss)
	var all []string
	for _, g := range groups {
		for _, l := range g.Lines {
			all = append(all, g.Title+": "+l.Text)
		}
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{
		"Health records: Read and search Observation records of the selected patient",
		"Change health records: Read, search, create, change and delete Medication Request records of the selected patient",
		"Health records: Read and search all kinds of records you can see",
		"How long: Keep access after you sign out",
		"Context: Know which patient's record is open",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("consent text lacks %q:\n%s", want, text)
		}
	}
}

func mustScopes(t *testing.T, list string) []scope.Scope {
	t.Helper()
	ss, bad := scope.ParseList(list)
	if len(bad) > 0 {
		t.Fatalf("scopes %q: %v", list, bad)
	}
	return ss
}
