package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExternalAccessTokens: the FHIR API accepts access tokens of a real
// third-party authorization server (npm oidc-provider, RFC 9068 at+jwt
// tokens through resource indicators, RFC 8707) that federation.issuers
// trusts, for the right audience and scopes, enforced like smartgate's own,
// and refuses them otherwise: another audience, an untrusted issuer, a typ
// the configuration does not accept, expired, an id_token, a scope the token
// lacks (issue 7 items 4 and 5). The Keycloak shapes the real provider
// cannot produce (typ JWT, scp arrays) are covered by internal/extauth's
// and internal/fhir's tests with a test key.
func TestExternalAccessTokens(t *testing.T) {
	addr := freeAddr(t) // smartgate's address, known before it starts: the providers' audience
	fhirBase := "http://" + addr + "/fhir"
	const scopes = "system/Patient.rs system/Observation.rs patient/*.rs"
	backend := map[string]any{"client_id": "backend", "client_secret": "backend-secret", "grant_types": []string{"client_credentials"},
		"response_types": []string{}, "redirect_uris": []string{}}
	const appRedirect = "http://127.0.0.1:9/callback" // never reached: the test reads the code from the redirect
	webapp := map[string]any{"client_id": "webapp", "client_secret": "webapp-secret", "grant_types": []string{"authorization_code"},
		"response_types": []string{"code"}, "redirect_uris": []string{appRedirect}}
	rs := map[string]any{"client_id": "smartgate-rs", "client_secret": "rs-secret:&", "grant_types": []string{},
		"response_types": []string{}, "redirect_uris": []string{}}

	dir := oidcProviderProject(t)
	// trusted: smartgate's audience, every grant, introspection for smartgate
	trusted := startOIDCProviderIn(t, dir, oidcProviderOptions{
		Clients:  []map[string]any{backend, webapp, rs},
		Accounts: map[string]map[string]any{"amy": {"patient": "pat-amy-shaw", "fhirUser": "Patient/pat-amy-shaw"}},
		Resource: &opResource{Audience: fhirBase, Scopes: scopes, Alg: "RS256", AccountClaims: []string{"patient", "fhirUser"}},
	})
	// trusted, but its tokens are for another API
	otherAPI := startOIDCProviderIn(t, dir, oidcProviderOptions{Clients: []map[string]any{backend},
		Resource: &opResource{Audience: "https://other.example.org/fhir", Scopes: scopes}})
	// trusted with types [JWT] (as for Keycloak), so its at+jwt tokens are of the wrong type
	typed := startOIDCProviderIn(t, dir, oidcProviderOptions{Clients: []map[string]any{backend},
		Resource: &opResource{Audience: fhirBase, Scopes: scopes}})
	// not trusted at all
	stranger := startOIDCProviderIn(t, dir, oidcProviderOptions{Clients: []map[string]any{backend},
		Resource: &opResource{Audience: fhirBase, Scopes: scopes}})
	// trusted, tokens living one second, one second of skew
	shortLived := startOIDCProviderIn(t, dir, oidcProviderOptions{Clients: []map[string]any{backend},
		Resource: &opResource{Audience: fhirBase, Scopes: scopes, TTL: 1}})

	issuers, err := json.Marshal([]map[string]any{
		{"issuer": trusted.Issuer, "audience": fhirBase, "allow_private": true,
			"introspection": map[string]any{"client_id": "smartgate-rs", "client_secret": "rs-secret:&"}},
		{"issuer": otherAPI.Issuer, "audience": fhirBase, "allow_private": true},
		{"issuer": typed.Issuer, "audience": fhirBase, "allow_private": true, "types": []string{"JWT"}},
		{"issuer": shortLived.Issuer, "audience": fhirBase, "allow_private": true, "max_skew": "1s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := baseEnv("SMARTGATE_FEDERATION_ISSUERS=" + string(issuers))
	sg := serve(t, env, "--dev", "--listen", addr, "--data-dir", filepath.Join(t.TempDir(), "data"))
	if sg.URL+"/fhir" != fhirBase {
		t.Fatalf("smartgate is at %s, want %s", sg.URL, fhirBase)
	}

	ccToken := func(t *testing.T, op *oidcProvider, scope string) string {
		t.Helper()
		body, status := op.clientCredentials(t, "backend", "backend-secret", scope, fhirBase)
		if op == otherAPI {
			body, status = op.clientCredentials(t, "backend", "backend-secret", scope, "https://other.example.org/fhir")
		}
		tok, _ := body["access_token"].(string)
		if status != 200 || tok == "" {
			t.Fatalf("client_credentials at %s: %d %v", op.Issuer, status, body)
		}
		return tok
	}
	fhirGet := func(t *testing.T, path, tok string) reply {
		t.Helper()
		return do(t, http.MethodGet, fhirBase+path, nil, http.Header{"Authorization": {"Bearer " + tok}})
	}
	wantRefused := func(t *testing.T, r reply, why string) {
		t.Helper()
		h := r.header.Get("WWW-Authenticate")
		if r.status != 401 || !strings.Contains(h, `error="invalid_token", error_description="the access token is `+why) {
			t.Errorf("%s, WWW-Authenticate %q; want 401 with error_description %q", r, h, "the access token is "+why)
		}
	}

	t.Run("client_credentials token accepted for its scopes", func(t *testing.T) {
		tok := ccToken(t, trusted, "system/Patient.rs")
		if h := jwtHeader(t, tok); h["typ"] != "at+jwt" || h["alg"] != "RS256" {
			t.Fatalf("the provider's token header %v, want an RS256 at+jwt (RFC 9068)", h)
		}
		if r := fhirGet(t, "/Patient/pat-amy-shaw", tok); r.status != 200 {
			t.Errorf("GET Patient with system/Patient.rs: %s", r)
		}
		r := fhirGet(t, "/Observation?patient=pat-amy-shaw", tok)
		if h := r.header.Get("WWW-Authenticate"); r.status != 403 || !strings.Contains(h, `error="insufficient_scope", scope="system/Observation.s"`) {
			t.Errorf("Observation with system/Patient.rs: %s, WWW-Authenticate %q; want 403 insufficient_scope naming system/Observation.s", r, h)
		}
	})

	t.Run("authorization code: the user's patient context, and the id_token refused", func(t *testing.T) {
		verifier := base64.RawURLEncoding.EncodeToString(randomBytes(t, 32))
		sum := sha256.Sum256([]byte(verifier))
		q := url.Values{"client_id": {"webapp"}, "response_type": {"code"}, "redirect_uri": {appRedirect}, "scope": {"openid patient/*.rs"},
			"resource": {fhirBase}, "state": {"st-1"}, "nonce": {"n-1"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
			"code_challenge_method": {"S256"}}
		b := newHeadless(t, trusted.Issuer)
		back := trusted.browse(t, b, trusted.Issuer+"/auth?"+q.Encode(), opPerson{login: "amy"})
		code := back.Query().Get("code")
		if !strings.HasPrefix(back.String(), appRedirect) || code == "" || back.Query().Get("state") != "st-1" {
			t.Fatalf("the provider sent the browser to %s, want %s with a code and the state", back, appRedirect)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect}, "code_verifier": {verifier}, "resource": {fhirBase}}
		req, _ := http.NewRequest(http.MethodPost, trusted.Issuer+"/token", strings.NewReader(form.Encode()))
		req.SetBasicAuth("webapp", "webapp-secret")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tr map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&tr)
		resp.Body.Close()
		at, _ := tr["access_token"].(string)
		idt, _ := tr["id_token"].(string)
		if resp.StatusCode != 200 || at == "" || idt == "" {
			t.Fatalf("code exchange at the provider: %d %v", resp.StatusCode, tr)
		}

		r := fhirGet(t, "/Observation?patient=pat-amy-shaw&_count=5", at)
		var bundle struct {
			Entry []struct {
				Resource struct {
					Subject struct{ Reference string } `json:"subject"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &bundle) != nil || len(bundle.Entry) == 0 {
			t.Fatalf("amy's Observations with her token: %s", r)
		}
		for _, e := range bundle.Entry {
			if e.Resource.Subject.Reference != "Patient/pat-amy-shaw" {
				t.Errorf("an Observation of %s under amy's patient/ scope", e.Resource.Subject.Reference)
			}
		}
		if r := fhirGet(t, "/Patient/pat-jose-alvarez", at); r.status != 404 {
			t.Errorf("another patient with amy's token: %s, want 404", r)
		}
		wantRefused(t, fhirGet(t, "/Patient/pat-amy-shaw", idt), "an id_token")
	})

	t.Run("refused: another audience", func(t *testing.T) {
		wantRefused(t, fhirGet(t, "/Patient/pat-amy-shaw", ccToken(t, otherAPI, "system/Patient.rs")), "wrong audience")
	})
	t.Run("refused: an issuer not trusted", func(t *testing.T) {
		wantRefused(t, fhirGet(t, "/Patient/pat-amy-shaw", ccToken(t, stranger, "system/Patient.rs")), "from an issuer this API does not trust")
	})
	t.Run("refused: a typ not accepted", func(t *testing.T) {
		wantRefused(t, fhirGet(t, "/Patient/pat-amy-shaw", ccToken(t, typed, "system/Patient.rs")), "of the wrong type")
	})
	t.Run("refused: expired", func(t *testing.T) {
		tok := ccToken(t, shortLived, "system/Patient.rs")
		time.Sleep(3 * time.Second) // 1s of life, 1s of skew, whole seconds
		wantRefused(t, fhirGet(t, "/Patient/pat-amy-shaw", tok), "expired")
	})
	t.Run("opaque token introspected at the provider", func(t *testing.T) {
		// Without a resource the provider issues an opaque token for no
		// audience: introspection (RFC 7662, client_secret_basic) says it
		// is active, and the missing audience refuses it.
		body, status := trusted.clientCredentials(t, "backend", "backend-secret", "", "")
		tok, _ := body["access_token"].(string)
		if status != 200 || tok == "" || strings.Count(tok, ".") == 2 {
			t.Fatalf("an opaque token from the provider: %d %v", status, body)
		}
		wantRefused(t, fhirGet(t, "/Patient/pat-amy-shaw", tok), "wrong audience: it has no aud claim")
		wantRefused(t, fhirGet(t, "/Patient/pat-amy-shaw", "never-issued-"+tok), "not active")
	})
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
