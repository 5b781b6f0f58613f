package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"smartgate/internal/config"
	"smartgate/internal/store"
)

// FuzzTokenEndpoint posts arbitrary form bodies and Authorization headers
// to the token endpoint (and, with the same input, to introspection and
// revocation): no input may panic or cause a 5xx, and every answer is JSON.
func FuzzTokenEndpoint(f *testing.F) {
	fx := newOAuthFixture(f, func(c *config.Config) { c.RateLimits.Enabled = false })
	// Fixed credentials, so the seeds reach past client authentication.
	fx.storeClient("fuzz-post", "fuzz-secret", store.ClientMetadata{TokenEndpointAuthMethod: "client_secret_post",
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs system/Observation.cruds?category=laboratory"})
	app := fx.storeClient("fuzz-app", "fuzz-secret", store.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: "launch/patient openid fhirUser patient/*.rs offline_access"})
	fx.storeClient("fuzz-public", "", store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: "patient/*.rs offline_access"})
	err := fx.st.CreateGrant(context.Background(), store.Grant{ID: "fuzz-grant", ClientID: app.ID, Subject: "u", Scope: "patient/*.rs offline_access",
		Context: json.RawMessage(`{"patient":"123"}`), CreatedAt: fx.now, ExpiresAt: fx.now.AddDate(1, 0, 0)},
		&store.RefreshToken{Hash: hashSecret("fuzz-refresh-token"), CreatedAt: fx.now, ExpiresAt: fx.now.AddDate(0, 3, 0)})
	if err != nil {
		f.Fatal(err)
	}
	basicAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("fuzz-app:fuzz-secret"))

	for _, seed := range []struct{ body, auth string }{
		{"grant_type=client_credentials&client_id=fuzz-post&client_secret=fuzz-secret", ""},
		{"grant_type=client_credentials&client_id=fuzz-post&client_secret=fuzz-secret&scope=system/Observation.rs%3Fcategory%3Dlaboratory", ""},
		{"grant_type=client_credentials&client_id=fuzz-post&client_secret=fuzz-secret&scope=system/Observaton.rs+patient/*.rs", ""},
		{"grant_type=refresh_token&refresh_token=fuzz-refresh-token", basicAuth},
		{"grant_type=refresh_token&refresh_token=fuzz-refresh-token&scope=patient/Observation.rs", basicAuth},
		{"grant_type=refresh_token&refresh_token=x&client_id=fuzz-public", ""},
		{"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJFUzM4NCJ9.e30.AA", ""},
		{"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c.d.e", ""},
		{"token=fuzz-refresh-token&token_type_hint=refresh_token", basicAuth},
		{"grant_type=authorization_code&code=x&redirect_uri=https://app.example.com/cb", basicAuth},
		{"grant_type=password&username=a&password=b", basicAuth},
		{"scope=a&scope=b", ""},
		{"%zz=1&=&&&", "Basic %%%"},
		{"grant_type=client_credentials", "Basic " + base64.StdEncoding.EncodeToString([]byte("%ZZ:%"))},
		{"grant_type=client_credentials", "Bearer x"},
		{"", ""},
		{strings.Repeat("scope=system/*.rs+", 50), ""},
	} {
		f.Add(seed.body, seed.auth)
	}
	handlers := map[string]handler{"token": fx.s.Token, "introspect": fx.s.Introspect, "revoke": fx.s.Revoke}
	f.Fuzz(func(t *testing.T, body, auth string) {
		for name, h := range handlers {
			r := httptest.NewRequest(http.MethodPost, "/oauth2/"+name, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if auth != "" {
				r.Header["Authorization"] = []string{auth}
			}
			w := fx.serve(h, r)
			if w.Code >= 500 {
				t.Fatalf("%s: status %d for body %q auth %q: %s", name, w.Code, body, auth, w.Body.String())
			}
			if w.Code == http.StatusOK && name == "revoke" {
				continue // RFC 7009: an empty 200
			}
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s: status %d with a body that is not JSON (%v): %q", name, w.Code, err, w.Body.String())
			}
		}
	})
}

// FuzzDetail: the hand-written audit JSON always parses back to the input.
func FuzzDetail(f *testing.F) {
	f.Add("scope", "system/Observation.rs", "x", "q\"uo\\te\n\x01\xff")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		out := detail(k1, v1, k2, v2)
		var m map[string]string
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("detail produced invalid JSON %q: %v", out, err)
		}
		want := map[string]string{}
		if v1 != "" {
			want[string([]rune(k1))] = string([]rune(v1))
		}
		if v2 != "" {
			want[string([]rune(k2))] = string([]rune(v2))
		}
		if v1 != "" && v2 != "" && string([]rune(k1)) == string([]rune(k2)) {
			return // duplicate keys: JSON keeps the last
		}
		for k, v := range want {
			if m[k] != v {
				t.Fatalf("detail(%q,%q,%q,%q) = %s; key %q got %q want %q", k1, v1, k2, v2, out, k, m[k], v)
			}
		}
	})
}

// FuzzAuthorize sends arbitrary query strings to /oauth2/authorize and
// arbitrary sealed requests to the pages: no input may panic or cause a
// 5xx; a redirect goes only to the registered redirect_uri and carries iss.
func FuzzAuthorize(f *testing.F) {
	fx := newOAuthFixture(f, nil)
	app := fx.storeClient("fuzz-app", "fuzz-secret", store.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb", "http://127.0.0.1/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: "launch launch/patient openid fhirUser patient/*.rs offline_access"})
	ch := testChallenge(testVerifier)
	for _, seed := range []string{
		"response_type=code&client_id=" + app.ID + "&redirect_uri=https://app.example.com/cb&state=s&scope=openid+patient/*.rs&aud=" + testIssuer + "/fhir&code_challenge=" + ch + "&code_challenge_method=S256",
		"response_type=code&client_id=" + app.ID + "&redirect_uri=http://127.0.0.1:5555/cb&state=s&scope=launch+openid&launch=x&aud=" + testIssuer + "/fhir/&code_challenge=" + ch + "&code_challenge_method=S256&prompt=none",
		"client_id=" + app.ID + "&request_uri=urn:ietf:params:oauth:request_uri:abc",
		"client_id=" + app.ID + "&redirect_uri=https://app.example.com/cb&max_age=-1&prompt=login+consent&response_mode=fragment",
		"%zz&client_id=;&&==",
	} {
		f.Add(seed, "")
	}
	f.Add("", "not-sealed")
	f.Fuzz(func(t *testing.T, query, sealed string) {
		r := httptest.NewRequest(http.MethodGet, "/oauth2/authorize", nil)
		r.URL.RawQuery = query
		w := fx.browse(fx.s.Authorize, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, query, w.Body.String())
		}
		if loc := w.Header().Get("Location"); loc != "" && !strings.HasPrefix(loc, "/login?") {
			if !strings.HasPrefix(loc, "https://app.example.com/cb?") && !strings.HasPrefix(loc, "http://127.0.0.1:") {
				t.Fatalf("redirect to %q for %q", loc, query)
			}
			if !strings.Contains(loc, "iss=") {
				t.Fatalf("redirect without iss: %q", loc)
			}
		}
		for _, h := range []handler{fx.s.Login, fx.s.Consent, fx.s.SelectPatient} {
			r := httptest.NewRequest(http.MethodGet, "/page?auth="+url.QueryEscape(sealed), nil)
			if w := fx.browse(h, r); w.Code >= 500 {
				t.Fatalf("page status %d for sealed %q: %s", w.Code, sealed, w.Body.String())
			}
		}
	})
}
