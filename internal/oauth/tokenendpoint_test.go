package oauth

import (
	"context"
	"encoding/base64"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// storeClient stores a client with a chosen id and secret, to exercise
// credentials that need encoding.
func (f *oauthFixture) storeClient(id, secret string, md store.ClientMetadata) created {
	f.t.Helper()
	typ, _, err := f.s.Clients.Validate(&md)
	if err != nil {
		f.t.Fatal(err)
	}
	now := f.now.UTC()
	c := store.Client{ID: id, Type: typ, Status: store.ClientEnabled, Verified: true, Metadata: md, SecretHash: hashSecret(secret),
		RegistrationTokenHash: hashSecret("rat"), CreatedBy: "admin", CreatedAt: now, UpdatedAt: now}
	if err := f.st.CreateClient(context.Background(), c); err != nil {
		f.t.Fatal(err)
	}
	return created{ID: id, Secret: secret, Client: parseClient(c)}
}

func TestTokenClientAuthentication(t *testing.T) {
	f := newOAuthFixture(t, nil)
	cc := url.Values{"grant_type": {"client_credentials"}}
	// RFC 6749 §2.3.1: id and secret are form-urlencoded, then Basic-encoded.
	odd := f.storeClient("lab:1 é+x", "p@ss:w+rd/=&ü", store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/Observation.rs"})
	post := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "client_secret_post", GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}, Options{ByAdmin: true})
	basicClient := f.backendService("system/*.rs")
	pending := f.create(store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}, Options{})
	disabled := f.backendService("system/*.rs")
	if _, err := f.s.Clients.SetStatus(context.Background(), disabled.ID, store.ClientDisabled); err != nil {
		t.Fatal(err)
	}
	public := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: "patient/*.rs"}, Options{ByAdmin: true})

	with := func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = append([]string(nil), vs...)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	rawBasic := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
		}
	}

	for _, tc := range []struct {
		name   string
		form   url.Values
		mod    func(*http.Request)
		status int
		id     problem.ID // "" for success
		frags  []string
	}{
		{name: "basic, url-encoded id and secret", form: cc, mod: basic(odd.ID, odd.Secret), status: 200},
		{name: "basic, secret not url-encoded ('+' reads as a space)", form: cc, mod: rawBasic(url.QueryEscape(odd.ID), odd.Secret), status: 401, id: problem.InvalidClient,
			frags: []string{"the client secret for lab:1 ?+x is wrong"}},
		{name: "basic", form: cc, mod: basic(basicClient.ID, basicClient.Secret), status: 200},
		{name: "basic with the same client_id in the body", form: with(cc, "client_id", basicClient.ID), mod: basic(basicClient.ID, basicClient.Secret), status: 200},
		{name: "basic with another client_id in the body", form: with(cc, "client_id", post.ID), mod: basic(basicClient.ID, basicClient.Secret), status: 401, id: problem.InvalidClient,
			frags: []string{"client_id in the body ('" + post.ID + "') differs from the one in the Authorization header"}},
		{name: "post", form: with(cc, "client_id", post.ID, "client_secret", post.Secret), status: 200},
		{name: "two methods at once", form: with(cc, "client_secret", basicClient.Secret), mod: basic(basicClient.ID, basicClient.Secret), status: 401, id: problem.InvalidClient,
			frags: []string{"authenticates the client in more than one way", "use exactly one (RFC 6749 section 2.3)"}},
		{name: "basic and an assertion", form: with(cc, "client_assertion_type", AssertionType, "client_assertion", "x.y.z"), mod: basic(basicClient.ID, basicClient.Secret), status: 401, id: problem.InvalidClient,
			frags: []string{"more than one way"}},
		{name: "post for a basic client", form: with(cc, "client_id", basicClient.ID, "client_secret", basicClient.Secret), status: 401, id: problem.InvalidClient,
			frags: []string{"registered token_endpoint_auth_method client_secret_basic but authenticated with client_secret_post", "HTTP Basic Authorization header"}},
		{name: "basic for a post client", form: cc, mod: basic(post.ID, post.Secret), status: 401, id: problem.InvalidClient,
			frags: []string{"registered token_endpoint_auth_method client_secret_post but authenticated with client_secret_basic", "as form fields"}},
		{name: "client_id alone for a confidential client", form: with(cc, "client_id", basicClient.ID), status: 401, id: problem.InvalidClient,
			frags: []string{"registered token_endpoint_auth_method client_secret_basic but authenticated with none"}},
		{name: "a secret for a public client", form: with(cc, "client_id", public.ID, "client_secret", "x"), status: 401, id: problem.InvalidClient,
			frags: []string{"registered token_endpoint_auth_method none but authenticated with client_secret_post", "send only client_id"}},
		{name: "wrong secret", form: cc, mod: basic(basicClient.ID, "wrong"), status: 401, id: problem.InvalidClient, frags: []string{"the client secret for " + basicClient.ID + " is wrong"}},
		{name: "unknown client", form: cc, mod: basic("nope", "x"), status: 401, id: problem.InvalidClient,
			frags: []string{`client 'nope' is not registered here`, "POST /oauth2/register or smartgate client create"}},
		{name: "no client at all", form: cc, status: 401, id: problem.InvalidClient, frags: []string{"no client identified"}},
		{name: "pending", form: cc, mod: basic(pending.ID, pending.Secret), status: 401, id: problem.ClientPending,
			frags: []string{"waiting for an administrator's approval", "smartgate client enable " + pending.ID}},
		{name: "pending with a wrong secret learns nothing of the status", form: cc, mod: basic(pending.ID, "wrong"), status: 401, id: problem.InvalidClient},
		{name: "disabled", form: cc, mod: basic(disabled.ID, disabled.Secret), status: 401, id: problem.ClientDisabled,
			frags: []string{"is disabled", "smartgate client enable " + disabled.ID}},
		{name: "assertion type without assertion", form: with(cc, "client_assertion_type", AssertionType), status: 401, id: problem.ClientAssertionInvalid,
			frags: []string{"client_assertion is missing"}},
		{name: "assertion with a wrong type", form: with(cc, "client_assertion_type", "jwt", "client_assertion", "x.y.z"), status: 401, id: problem.ClientAssertionInvalid,
			frags: []string{"client_assertion_type must be " + AssertionType}},
	} {
		w := f.post(f.s.Token, tc.form, tc.mod)
		if tc.id == "" {
			if w.Code != tc.status {
				t.Errorf("%s: status %d, want %d; body %s", tc.name, w.Code, tc.status, w.Body.String())
			}
			continue
		}
		e := wantError(t, tc.name, w, tc.status, "invalid_client", tc.id, tc.frags...)
		if got := e.Header.Get("WWW-Authenticate"); got != `Basic realm="smartgate"` {
			t.Errorf("%s: WWW-Authenticate %q, want Basic realm=\"smartgate\" (RFC 6749 section 5.2)", tc.name, got)
		}
	}
}

func TestTokenRequestShape(t *testing.T) {
	f := newOAuthFixture(t, nil)
	c := f.backendService("system/*.rs")
	for _, tc := range []struct {
		name  string
		req   func() *http.Request
		frags []string
	}{
		{"repeated parameter", func() *http.Request {
			return rawForm("POST", "/oauth2/token", "grant_type=client_credentials&scope=system/Patient.rs&scope=system/Observation.rs")
		}, []string{`parameter 'scope' appears 2 times`, "RFC 6749 section 3.1"}},
		{"JSON body", func() *http.Request {
			return jsonRequest("POST", "/oauth2/token", "", `{"grant_type":"client_credentials"}`)
		}, []string{"the Content-Type is application/json", "Content-Type: application/x-www-form-urlencoded", "not JSON"}},
		{"no content type", func() *http.Request {
			r := rawForm("POST", "/oauth2/token", "grant_type=client_credentials")
			r.Header.Del("Content-Type")
			return r
		}, []string{"the Content-Type is none", "application/x-www-form-urlencoded"}},
		{"GET", func() *http.Request {
			return rawForm("GET", "/oauth2/token?grant_type=client_credentials", "")
		}, []string{"use POST with an application/x-www-form-urlencoded body"}},
		{"secret in the query", func() *http.Request {
			return rawForm("POST", "/oauth2/token?client_secret=s3cret", "grant_type=client_credentials&client_id=x")
		}, []string{`parameter 'client_secret' is in the URL query`, "credentials belong in the POST body"}},
		{"refresh token in the query", func() *http.Request {
			return rawForm("POST", "/oauth2/token?refresh_token=abc", "grant_type=refresh_token")
		}, []string{`parameter 'refresh_token' is in the URL query`}},
		{"assertion in the query", func() *http.Request {
			return rawForm("POST", "/oauth2/token?client_assertion=a.b.c", "grant_type=client_credentials")
		}, []string{`parameter 'client_assertion' is in the URL query`}},
		{"broken percent-encoding", func() *http.Request {
			return rawForm("POST", "/oauth2/token", "grant_type=%zz")
		}, []string{"not valid application/x-www-form-urlencoded"}},
	} {
		r := tc.req()
		basic(c.ID, c.Secret)(r)
		wantError(t, tc.name, f.serve(f.s.Token, r), 400, "invalid_request", problem.InvalidRequest, tc.frags...)
	}

	// grant_type: missing, unknown, or not registered for the client.
	w := f.post(f.s.Token, url.Values{"scope": {"system/*.rs"}}, basic(c.ID, c.Secret))
	wantError(t, "missing grant_type", w, 400, "invalid_request", problem.InvalidRequest, "grant_type is missing; send grant_type=")
	w = f.post(f.s.Token, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}}, basic(c.ID, c.Secret))
	wantError(t, "unknown grant_type", w, 400, "unsupported_grant_type", problem.UnsupportedGrantType, `grant_type 'urn:ietf:params:oauth:grant-type:device_code' is not supported here; supported: authorization_code, client_credentials, refresh_token`)
	w = f.post(f.s.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, basic(c.ID, c.Secret))
	wantError(t, "grant not registered", w, 400, "unauthorized_client", problem.UnauthorizedClient,
		"did not register the refresh_token grant (its grant_types: client_credentials)", "smartgate client update "+c.ID+" --grant-type client_credentials --grant-type refresh_token")
}

// rawForm is a request with body sent as is, with the form content type.
func rawForm(method, target, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestTokenScopes(t *testing.T) {
	f := newOAuthFixture(t, nil)
	c := f.create(store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/Observation.rs system/Patient.read openid"}, Options{ByAdmin: true})
	wide := f.backendService("system/*.cruds")
	admin := f.create(store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs smartgate:admin"}, Options{ByAdmin: true, Admin: true})
	notAdmin := f.create(store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs smartgate:admin"}, Options{ByAdmin: true})

	for _, tc := range []struct {
		name    string
		client  created
		request string
		want    string
	}{
		{"absent scope: the registered system scopes", c, "", "system/Observation.rs system/Patient.read"},
		{"v2 as requested", c, "system/Observation.rs", "system/Observation.rs"},
		{"v1 as requested", c, "system/Patient.read", "system/Patient.read"},
		{"v1 inside a registered v2 scope", c, "system/Observation.read", "system/Observation.read"},
		{"v2 inside a registered v1 scope", c, "system/Patient.rs system/Patient.r", "system/Patient.rs system/Patient.r"},
		{"order kept, duplicates once", c, "system/Patient.read system/Observation.rs system/Patient.read", "system/Patient.read system/Observation.rs"},
		{"query-constrained inside a wildcard", wide, "system/Observation.rs?category=laboratory", "system/Observation.rs?category=laboratory"},
		{"narrowed silently", c, "system/Observation.rs system/Condition.rs openid", "system/Observation.rs"},
		{"extra spaces tolerated", c, "  system/Observation.rs   system/Patient.read ", "system/Observation.rs system/Patient.read"},
		{"smartgate:admin for an admin client", admin, "system/Patient.rs smartgate:admin", "system/Patient.rs smartgate:admin"},
		{"smartgate:admin dropped for another client", notAdmin, "system/Patient.rs smartgate:admin", "system/Patient.rs"},
	} {
		tr := tokenResponse(t, f.clientCredentials(tc.client, tc.request))
		if tr.Scope != tc.want {
			t.Errorf("%s: scope %q, want %q", tc.name, tr.Scope, tc.want)
		}
		if got := claimsOf(t, tr.AccessToken)["scope"]; got != tc.want {
			t.Errorf("%s: scope claim %q, want %q", tc.name, got, tc.want)
		}
	}

	for _, tc := range []struct {
		name    string
		client  created
		request string
		frags   []string
	}{
		{"unknown scope", c, "system/Observaton.rs system/Observation.rs", []string{"Scope dropped: 'system/Observaton.rs' is unknown", "did you mean 'Observation'?"}},
		{"malformed scope", c, "system/Observation system/Observation.rs", []string{"'system/Observation' is malformed"}},
		{"nothing left", c, "patient/Observation.rs system/Condition.rs", []string{
			"no scope left to grant: Scopes dropped:",
			"'patient/Observation.rs' is not registered for this client (the client is registered for system/ scopes, not patient/",
			"'system/Condition.rs' is not registered for this client (no scope in the client's registration covers"}},
		{"not allowed for the grant", c, "openid", []string{"'openid' is not allowed for this grant (client_credentials grants only system/ scopes (there is no user or patient))"}},
		{"wider permissions", c, "system/Observation.cruds", []string{"'system/Observation.cruds' is not registered for this client"}},
		{"constraint missing", f.backendServiceConstrained(), "system/Observation.rs", []string{
			"registered for it only with the constraint ?category=laboratory: request system/Observation.rs?category=laboratory instead"}},
		{"admin scope for a non-admin client", notAdmin, "smartgate:admin", []string{"'smartgate:admin' is not allowed for this grant"}},
	} {
		w := f.clientCredentials(tc.client, tc.request)
		wantError(t, tc.name, w, 400, "invalid_scope", problem.InvalidScope, tc.frags...)
	}
}

// backendServiceConstrained is registered only for laboratory Observations.
func (f *oauthFixture) backendServiceConstrained() created {
	return f.backendService("system/Observation.rs?category=laboratory")
}

func TestTokenResponseAndClaims(t *testing.T) {
	f := newOAuthFixture(t, nil)
	c := f.backendService("system/Observation.rs system/Patient.rs")
	w := f.clientCredentials(c, "system/Observation.rs")
	for k, want := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json"} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	m := body(t, w)
	if d := cmp.Diff([]string{"access_token", "expires_in", "scope", "token_type"}, slices.Sorted(maps.Keys(m))); d != "" {
		t.Errorf("response fields (-want +got):\n%s", d)
	}
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(300) || m["scope"] != "system/Observation.rs" {
		t.Errorf("response = %v", m)
	}
	at := m["access_token"].(string)

	jws, err := jose.ParseSigned(at, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Header
	if h.ExtraHeaders[jose.HeaderType] != "at+jwt" || h.KeyID == "" || h.Algorithm != "ES256" {
		t.Errorf("header: typ %v kid %q alg %s, want at+jwt, a kid, ES256 (RFC 9068 section 2.1)", h.ExtraHeaders[jose.HeaderType], h.KeyID, h.Algorithm)
	}
	cl := claimsOf(t, at)
	iat, exp := cl["iat"].(float64), cl["exp"].(float64)
	want := map[string]any{
		"iss": testIssuer, "aud": testIssuer + "/fhir", "sub": c.ID, "client_id": c.ID, "scope": "system/Observation.rs",
		"iat": float64(f.now.Unix()), "exp": float64(f.now.Unix() + 300), "jti": cl["jti"],
	}
	if d := cmp.Diff(want, cl); d != "" {
		t.Errorf("claims (-want +got):\n%s", d)
	}
	if exp-iat != 300 {
		t.Errorf("exp - iat = %v, want 300 (tokens.backend_token_ttl)", exp-iat)
	}
	if s, _ := cl["jti"].(string); len(s) < 22 {
		t.Errorf("jti %q is too short to be 128 random bits", s)
	}
	verified, err := f.s.Tokens.Verify(context.Background(), at)
	if err != nil || verified.ClientID != c.ID {
		t.Errorf("Verify = %+v, %v", verified, err)
	}
	// Each token is new.
	if other := tokenResponse(t, f.clientCredentials(c, "system/Observation.rs")); claimsOf(t, other.AccessToken)["jti"] == cl["jti"] {
		t.Error("two tokens share a jti")
	}
}

func TestTokenRateLimit(t *testing.T) {
	f := newOAuthFixture(t, nil)
	c := f.backendService("system/*.rs")
	other := f.backendService("system/*.rs")
	n := 0
	var w = f.clientCredentials(c, "")
	for ; w.Code == 200 && n < 1000; n++ {
		w = f.clientCredentials(c, "")
	}
	if n != f.cfg.RateLimits.TokenBurst {
		t.Errorf("%d token requests passed, want the burst of %d", n, f.cfg.RateLimits.TokenBurst)
	}
	wantError(t, "over the limit", w, 429, "temporarily_unavailable", problem.RateLimited, "client "+c.ID+" sent more than 20 token requests per second")
	if w.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Limits are per client.
	tokenResponse(t, f.clientCredentials(other, ""))
}

// A credential in the URL query must be refused even when the body repeats
// it: the request line is what access logs and proxies record. Today
// parseForm refuses a query credential only when the body lacks it.
func TestTokenQueryCredentialAlsoInBody(t *testing.T) {

	f := newOAuthFixture(t, nil)
	c := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "client_secret_post", GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}, Options{ByAdmin: true})
	body := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {c.Secret}}.Encode()
	w := f.serve(f.s.Token, rawForm("POST", "/oauth2/token?client_secret="+url.QueryEscape(c.Secret), body))
	wantError(t, "secret in the query and the body", w, 400, "invalid_request", problem.InvalidRequest, "is in the URL query")
}
