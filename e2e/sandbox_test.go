package e2e

// End-to-end tests of serve --sandbox (issue 8 item 5, docs/portal.md "The
// sandbox"): the launch simulator's EHR and standalone launches, and each
// injected error answered once, then the normal answer; none of it outside
// sandbox mode.

import (
	"crypto"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

// startSandbox starts `smartgate serve --sandbox` on a free loopback port.
func startSandbox(t *testing.T) *devServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	env := baseEnv()
	s := serve(t, env, "--sandbox", "--listen", "127.0.0.1:0", "--data-dir", dir)
	return &devServer{server: s, env: env, dataDir: dir}
}

// demoClients reads dev-clients.json: the demo clinician app's secret and
// the demo backend's private key.
func demoClients(t *testing.T, s *devServer) (clinicianSecret string, backend *assertKey) {
	t.Helper()
	var dcs []struct {
		ClientID     string          `json:"client_id"`
		ClientSecret string          `json:"client_secret"`
		PrivateJWK   json.RawMessage `json:"private_jwk"`
	}
	raw, err := os.ReadFile(filepath.Join(s.dataDir, "dev-clients.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dcs); err != nil {
		t.Fatal(err)
	}
	for _, dc := range dcs {
		switch dc.ClientID {
		case "demo-clinician-app":
			clinicianSecret = dc.ClientSecret
		case "demo-backend":
			var jwk jose.JSONWebKey
			if err := jwk.UnmarshalJSON(dc.PrivateJWK); err != nil {
				t.Fatal(err)
			}
			backend = &assertKey{kid: jwk.KeyID, alg: jose.SignatureAlgorithm(jwk.Algorithm), priv: jwk.Key.(crypto.Signer)}
		}
	}
	if clinicianSecret == "" || backend == nil {
		t.Fatal("dev-clients.json lacks demo-clinician-app's secret or demo-backend's key")
	}
	return clinicianSecret, backend
}

// sandboxPage opens /sandbox in the browser.
func sandboxPage(t *testing.T, b *headless, s *devServer) *htmlPage {
	t.Helper()
	l := b.get(s.URL + "/sandbox")
	if l.page == nil || l.page.status != http.StatusOK || l.page.byID("sandbox") == nil {
		t.Fatalf("GET /sandbox: %s", l)
	}
	return l.page
}

// rowsOf lists the data attributes of the rows of class class.
func rowsOf(p *htmlPage, class string) []map[string]string {
	var out []map[string]string
	for n := range p.doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "tr" && hasClass(n, class) {
			m := map[string]string{}
			for _, a := range n.Attr {
				if k, ok := strings.CutPrefix(a.Key, "data-"); ok {
					m[k] = a.Val
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// inject arms kind for clientID through the sandbox page's #inject form
// and checks the page lists it.
func inject(t *testing.T, b *headless, s *devServer, clientID, kind string) {
	t.Helper()
	f := sandboxPage(t, b, s).form(t, "#inject")
	v := f.data(t, fill{set: map[string]string{"client_id": clientID}}, "action=inject")
	v.Set("kind", kind)
	l := b.submitData(f, v)
	if l.page == nil || l.page.status != http.StatusOK {
		t.Fatalf("injecting %s for %s: %s", kind, clientID, l)
	}
	if e := l.page.byID("sandbox-error"); e != nil {
		t.Fatalf("injecting %s for %s refused: %s", kind, clientID, rawText(e))
	}
	for _, r := range rowsOf(l.page, "injection") {
		if r["client"] == clientID && r["kind"] == kind {
			return
		}
	}
	t.Fatalf("after injecting %s for %s, #injections lists %v", kind, clientID, rowsOf(l.page, "injection"))
}

// wantFired checks the sandbox page lists kind as fired for clientID and
// no longer armed.
func wantFired(t *testing.T, b *headless, s *devServer, clientID, kind string) {
	t.Helper()
	p := sandboxPage(t, b, s)
	for _, r := range rowsOf(p, "injection") {
		if r["client"] == clientID && r["kind"] == kind {
			t.Errorf("%s for %s is still armed after it fired", kind, clientID)
		}
	}
	for _, r := range rowsOf(p, "fired") {
		if r["client"] == clientID && r["kind"] == kind && r["request-id"] != "" {
			return
		}
	}
	t.Errorf("#fired does not list %s for %s: %v", kind, clientID, rowsOf(p, "fired"))
}

// TestSandboxOnlyInSandboxMode: a dev server has no /sandbox, so no error
// can be armed there.
func TestSandboxOnlyInSandboxMode(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	for _, r := range []reply{
		do(t, http.MethodGet, s.URL+"/sandbox", nil, http.Header{"Accept": {"text/html"}}),
		postForm(t, s.URL+"/sandbox/inject", url.Values{"client_id": {"demo-backend"}, "kind": {"token_invalid_client"}}, creds{}),
		postForm(t, s.URL+"/sandbox/launch", url.Values{"client_id": {"demo-clinician-app"}, "launch_type": {"ehr"}, "patient": {"pat-amy-shaw"}}, creds{}),
	} {
		if r.status != http.StatusNotFound {
			t.Errorf("outside sandbox mode: %s, want 404", r)
		}
	}
	// The demo backend keeps getting tokens as usual.
	_, key := demoClients(t, s)
	mustToken(t, s.URL, assertCreds(t, "demo-backend", s.tokenURL(), key), "")
	if strings.Contains(string(do(t, http.MethodGet, s.URL+"/developers", nil, nil).body), `href="/sandbox"`) {
		t.Error("the portal of a dev server links to the sandbox")
	}
}

// TestSandboxLaunchSimulator: an EHR launch of the demo clinician app for a
// patient and encounter, signed in as the practitioner by the simulator,
// opens the app's launch URL; the app's authorization with that launch
// gets the context in its token response. A standalone launch opens the
// launch URL with iss alone.
func TestSandboxLaunchSimulator(t *testing.T) {
	t.Parallel()
	s := startSandbox(t)
	secret, _ := demoClients(t, s)
	b := newHeadless(t, s.URL)
	page := sandboxPage(t, b, s)
	for _, id := range []string{"launch", "inject", "injections", "fired", "app-demo-clinician-app", "patients", "encounters", "users"} {
		page.mustID(t, id)
	}
	f := page.form(t, "#launch")
	v := f.data(t, fill{set: map[string]string{"patient": "pat-amy-shaw", "encounter": "enc-amy-shaw-1", "user": "ines.munoz"}}, "action=launch")
	v.Set("client_id", "demo-clinician-app")
	v.Set("launch_type", "ehr")
	l := b.submitData(f, v)
	if l.away == nil || l.away.Path != "/launch" || l.away.Hostname() != "127.0.0.1" {
		t.Fatalf("the EHR launch did not open the app's launch URL: %s", l)
	}
	iss, launch := l.away.Query().Get("iss"), l.away.Query().Get("launch")
	if iss != s.URL+"/fhir" || launch == "" {
		t.Fatalf("launch URL %s: want iss %s/fhir and a launch", l.away, s.URL)
	}

	// The app, opened at its launch URL, authorizes with the launch.
	conf := &oauth2.Config{ClientID: "demo-clinician-app", ClientSecret: secret, RedirectURL: appRedirect,
		Scopes:   []string{"launch", "openid", "fhirUser", "user/*.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/oauth2/authorize", TokenURL: s.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st-sandbox", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", iss), oauth2.SetAuthURLParam("launch", launch))
	fl := b.authorize(authURL, person{}) // signed in already: the simulator did it
	for _, p := range fl.pages {
		if p == "login" {
			t.Errorf("the login page was shown although the simulator signed the browser in (pages %v)", fl.pages)
		}
	}
	tok, err := conf.Exchange(t.Context(), fl.code(t), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchanging the launch's code: %v", err)
	}
	if tok.Extra("patient") != "pat-amy-shaw" || tok.Extra("encounter") != "enc-amy-shaw-1" {
		t.Errorf("token response patient %v encounter %v, want the simulator's pat-amy-shaw and enc-amy-shaw-1", tok.Extra("patient"), tok.Extra("encounter"))
	}
	idt, _ := tok.Extra("id_token").(string)
	if claims := jwtClaims(t, idt); claims["fhirUser"] != s.URL+"/fhir/Practitioner/pra-ines-munoz" {
		t.Errorf("id_token fhirUser %v, want the practitioner the simulator signed in", claims["fhirUser"])
	}
	if r := do(t, http.MethodGet, s.URL+"/fhir/Encounter/enc-amy-shaw-1", nil, bearer(tok.AccessToken)); r.status != http.StatusOK {
		t.Errorf("reading the launch's encounter: %s", r)
	}

	// Standalone: the launch URL gets iss alone.
	f = sandboxPage(t, b, s).form(t, "#launch")
	v = f.data(t, fill{}, "action=launch")
	v.Set("client_id", "demo-clinician-app")
	v.Set("launch_type", "standalone")
	l = b.submitData(f, v)
	if l.away == nil || l.away.Query().Get("iss") != s.URL+"/fhir" || l.away.Query().Has("launch") {
		t.Errorf("standalone launch: %s, want the launch URL with iss only", l)
	}

	// Refusals name the fix, on the page.
	f = sandboxPage(t, b, s).form(t, "#launch")
	v = f.data(t, fill{set: map[string]string{"patient": "pat-amy-shaw", "encounter": "enc-jose-alvarez-1"}}, "action=launch")
	v.Set("client_id", "demo-clinician-app")
	v.Set("launch_type", "ehr")
	l = b.submitData(f, v)
	if e := l.page.byID("sandbox-error"); e == nil || !strings.Contains(rawText(e), "is not part of Patient/pat-amy-shaw's record") {
		t.Errorf("an encounter of another patient: %s", l)
	}
	f = sandboxPage(t, b, s).form(t, "#launch")
	v = f.data(t, fill{set: map[string]string{"patient": "pat-amy-shaw", "user": "admin"}}, "action=launch")
	v.Set("client_id", "demo-clinician-app")
	v.Set("launch_type", "ehr")
	l = b.submitData(f, v)
	if e := l.page.byID("sandbox-error"); e == nil || !strings.Contains(rawText(e), "not administrators") {
		t.Errorf("signing in as the admin: %s", l)
	}
}

// TestSandboxErrorInjection arms each error through the sandbox page: the
// client's next request of its kind gets it, once; the request after it
// gets the normal answer, and the page lists it as fired.
func TestSandboxErrorInjection(t *testing.T) {
	t.Parallel()
	s := startSandbox(t)
	_, key := demoClients(t, s)
	b := newHeadless(t, s.URL)
	backend := assertCreds(t, "demo-backend", s.tokenURL(), key)

	t.Run("token_invalid_client", func(t *testing.T) {
		inject(t, b, s, "demo-backend", "token_invalid_client")
		wantOAuthError(t, "injected", clientCredentials(t, s.URL, backend, ""), http.StatusUnauthorized, "invalid_client", "[sandbox: injected error")
		mustToken(t, s.URL, backend, "")
		wantFired(t, b, s, "demo-backend", "token_invalid_client")
	})
	t.Run("token_bad_jti", func(t *testing.T) {
		inject(t, b, s, "demo-backend", "token_bad_jti")
		wantOAuthError(t, "injected", clientCredentials(t, s.URL, backend, ""), http.StatusUnauthorized, "invalid_client", "was already used")
		mustToken(t, s.URL, backend, "")
		wantFired(t, b, s, "demo-backend", "token_bad_jti")
	})
	t.Run("token_invalid_scope", func(t *testing.T) {
		inject(t, b, s, "demo-backend", "token_invalid_scope")
		wantOAuthError(t, "injected", clientCredentials(t, s.URL, backend, "system/Patient.rs"), http.StatusBadRequest, "invalid_scope", "system/Patient.rs")
		mustToken(t, s.URL, backend, "system/Patient.rs")
	})
	t.Run("fhir_expired_access_token", func(t *testing.T) {
		tok := mustToken(t, s.URL, backend, "system/Patient.rs")
		inject(t, b, s, "demo-backend", "fhir_expired_access_token")
		r := do(t, http.MethodGet, s.URL+"/fhir/Patient?_count=1", nil, bearer(tok.AccessToken))
		if h := r.header.Get("WWW-Authenticate"); r.status != http.StatusUnauthorized || !strings.Contains(h, `error="invalid_token"`) || !strings.Contains(h, "expired") {
			t.Errorf("injected: %s, WWW-Authenticate %q; want 401 invalid_token, expired", r, h)
		}
		if r := do(t, http.MethodGet, s.URL+"/fhir/Patient?_count=1", nil, bearer(tok.AccessToken)); r.status != http.StatusOK {
			t.Errorf("the same token after the injection: %s, want 200", r)
		}
		wantFired(t, b, s, "demo-backend", "fhir_expired_access_token")
	})
	t.Run("token_wrong_secret", func(t *testing.T) {
		c := s.createClient(t, "sandbox secret backend", "--type", "confidential-symmetric", "--scope", "system/*.rs")
		cr := creds{id: c.ClientID, secret: c.ClientSecret}
		inject(t, b, s, c.ClientID, "token_wrong_secret")
		wantOAuthError(t, "injected", clientCredentials(t, s.URL, cr, ""), http.StatusUnauthorized, "invalid_client", "secret", "is wrong")
		mustToken(t, s.URL, cr, "")
	})

	// The browser flow of the demo patient app: authorize errors, then an
	// expired refresh token.
	amy := person{username: "amy.shaw", password: demoPassword(t, s.dataDir, "amy.shaw")}
	conf := &oauth2.Config{ClientID: "demo-patient-app", RedirectURL: appRedirect, Scopes: strings.Fields("openid fhirUser launch/patient patient/*.rs offline_access"),
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/oauth2/authorize", TokenURL: s.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st-inject", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.URL+"/fhir"))
	for _, tc := range []struct{ kind, code string }{
		{"authorize_invalid_request", "invalid_request"},
		{"authorize_access_denied", "access_denied"},
		{"authorize_invalid_scope", "invalid_scope"},
		{"authorize_server_error", "server_error"},
		{"authorize_temporarily_unavailable", "temporarily_unavailable"},
	} {
		inject(t, b, s, "demo-patient-app", tc.kind)
		fl := b.authorize(authURL, amy)
		if q := fl.query(); q.Get("error") != tc.code || q.Get("state") != "st-inject" || q.Get("iss") != s.URL {
			t.Errorf("%s: the app got %v, want error=%s with state and iss", tc.kind, q, tc.code)
		}
		wantFired(t, b, s, "demo-patient-app", tc.kind)
	}
	fl := b.authorize(authURL, amy)
	tok, err := conf.Exchange(t.Context(), fl.code(t), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("the authorization after the injections: %v", err)
	}
	inject(t, b, s, "demo-patient-app", "token_expired_refresh_token")
	refresh := func() reply {
		return postForm(t, s.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, creds{id: "demo-patient-app"})
	}
	wantOAuthError(t, "injected", refresh(), http.StatusBadRequest, "invalid_grant", "expired")
	if r := refresh(); r.status != http.StatusOK {
		t.Errorf("the same refresh token after the injection: %s, want 200", r)
	}

	// Kinds a client can never trigger are refused on the page.
	f := sandboxPage(t, b, s).form(t, "#inject")
	v := f.data(t, fill{set: map[string]string{"client_id": "demo-patient-app"}}, "action=inject")
	v.Set("kind", "token_bad_jti")
	l := b.submitData(f, v)
	if e := l.page.byID("sandbox-error"); e == nil || !strings.Contains(rawText(e), "not private_key_jwt") {
		t.Errorf("bad jti for a public client: %s", l)
	}
}
