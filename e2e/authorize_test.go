package e2e

// End-to-end tests of SMART App Launch for people (issue 5): the real
// binary, driven by golang.org/x/oauth2 and github.com/coreos/go-oidc/v3
// through the headless form filler of formfill_test.go, which signs in,
// picks patients and consents on the real pages. This file has the fixture
// and the helpers; the subtests are in authorize_standalone_test.go,
// authorize_launch_test.go, authorize_session_test.go and (the refusals)
// authorize_errors_test.go.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const (
	// registeredRedirect is every test app's registered redirect_uri; the
	// apps use it on another loopback port (any port matches, RFC 8252
	// §7.3). Nothing listens there: the form filler stops at the redirect.
	registeredRedirect = "http://127.0.0.1/callback"
	appRedirect        = "http://127.0.0.1:47001/callback"
	appLaunchURI       = "http://127.0.0.1:47001/launch"
	appLoggedOut       = "http://127.0.0.1:47001/logged-out"

	patientScope   = "openid fhirUser profile launch/patient patient/*.rs offline_access"
	clinicianScope = "openid fhirUser profile launch launch/patient online_access offline_access user/*.cruds patient/*.rs"
	ehrScope       = "launch openid fhirUser patient/*.rs online_access"
)

// smartCapabilities are the SMART 2.2 capabilities issue 5 item 13 lists,
// exactly.
var smartCapabilities = []string{
	"authorize-post", "client-confidential-asymmetric", "client-confidential-symmetric", "client-public",
	"context-banner", "context-ehr-encounter", "context-ehr-patient", "context-standalone-patient", "context-style",
	"launch-ehr", "launch-standalone",
	"permission-offline", "permission-online", "permission-patient", "permission-user", "permission-v1", "permission-v2",
	"sso-openid-connect",
}

// smartFixture is a dev server with the apps the tests use, and an OpenID
// provider discovered from its issuer with go-oidc.
type smartFixture struct {
	s        *devServer
	fhirBase string
	ctx      context.Context
	provider *oidc.Provider

	patientApp   cliClient // public, standalone patient launch
	clinicianApp cliClient // confidential-symmetric, practitioner with the picker
	ehrApp       cliClient // confidential-symmetric, --may-launch: launches itself
	consentApp   cliClient // public, for the consent-memory test alone
}

func newSmartFixture(t *testing.T, extraEnv ...string) *smartFixture {
	t.Helper()
	s := startDev(t, extraEnv...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 10 * time.Second})
	ctx = oidc.ClientContext(ctx, &http.Client{Timeout: 10 * time.Second})
	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatalf("go-oidc NewProvider(%s) refused the discovery document: %v", s.URL, err)
	}
	f := &smartFixture{s: s, fhirBase: s.URL + "/fhir", ctx: ctx, provider: provider}
	grants := []string{"--grant-type", "authorization_code", "--grant-type", "refresh_token"}
	app := func(name, typ, scope string, more ...string) cliClient {
		args := append([]string{"--type", typ, "--redirect-uri", registeredRedirect, "--scope", scope}, grants...)
		return s.createClient(t, name, append(args, more...)...)
	}
	f.patientApp = app("Patient app", "public", patientScope)
	f.clinicianApp = app("Clinician app", "confidential-symmetric", clinicianScope)
	f.ehrApp = app("EHR-launched app", "confidential-symmetric", ehrScope, "--may-launch", "--initiate-login-uri", appLaunchURI)
	f.consentApp = app("Consent memory app", "public", patientScope)
	return f
}

// user is a demo user at a fresh browser.
func (f *smartFixture) user(t *testing.T, username string) (*headless, person) {
	t.Helper()
	return newHeadless(t, f.s.URL), person{username: username, password: demoPassword(t, f.s.dataDir, username)}
}

// config is the x/oauth2 configuration of a client: the endpoints from
// go-oidc's discovery, the secret in HTTP Basic for confidential clients,
// client_id in the form for public ones.
func (f *smartFixture) config(c cliClient, scope string) *oauth2.Config {
	ep := f.provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if c.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Endpoint: ep, RedirectURL: appRedirect, Scopes: strings.Fields(scope)}
}

// authRequest is one authorization request of an app: its state, nonce
// and PKCE verifier, fresh each time.
type authRequest struct {
	f                      *smartFixture
	client                 cliClient
	conf                   *oauth2.Config
	state, nonce, verifier string
	extra                  []oauth2.AuthCodeOption
}

func (f *smartFixture) request(c cliClient, scope string, extra ...oauth2.AuthCodeOption) *authRequest {
	return &authRequest{f: f, client: c, conf: f.config(c, scope), state: "st-" + newJTI(), nonce: "n-" + newJTI(), verifier: oauth2.GenerateVerifier(), extra: extra}
}

// url is the authorization URL, as x/oauth2 builds it, with aud (SMART)
// and the nonce (go-oidc).
func (a *authRequest) url() string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.verifier), oauth2.SetAuthURLParam("aud", a.f.fhirBase), oidc.Nonce(a.nonce)}
	return a.conf.AuthCodeURL(a.state, append(opts, a.extra...)...)
}

// params are the parameters of url, for a form POST or a PAR push.
func (a *authRequest) params(t *testing.T) url.Values {
	t.Helper()
	u, err := url.Parse(a.url())
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// urlWith is url with some parameters changed (an empty value removes it).
func (a *authRequest) urlWith(t *testing.T, change map[string]string) string {
	t.Helper()
	u, err := url.Parse(a.url())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, v := range change {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// code checks a successful authorization response (RFC 6749 §4.1.2 and
// RFC 9207: code, the request's state and iss) and returns the code.
func (a *authRequest) code(t *testing.T, fl flow) string {
	t.Helper()
	code := fl.code(t)
	q := fl.query()
	if q.Get("state") != a.state {
		t.Errorf("authorization response state %q, want the request's %q", q.Get("state"), a.state)
	}
	if q.Get("iss") != a.f.s.URL {
		t.Errorf("authorization response iss %q, want the issuer %q (RFC 9207)", q.Get("iss"), a.f.s.URL)
	}
	if got := fl.callback.Scheme + "://" + fl.callback.Host + fl.callback.Path; got != appRedirect {
		t.Errorf("the code went to %s, want the request's redirect_uri %s", got, appRedirect)
	}
	return code
}

// exchange trades the flow's code for tokens with x/oauth2.
func (a *authRequest) exchange(t *testing.T, fl flow) *oauth2.Token {
	t.Helper()
	code := a.code(t, fl)
	tok, err := a.conf.Exchange(a.f.ctx, code, oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("code exchange for client %s: %v", a.client.ClientID, err)
	}
	if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") {
		t.Fatalf("token response lacks an access token of type Bearer: %+v", tok)
	}
	return tok
}

// run authorizes as who and exchanges the code.
func (a *authRequest) run(t *testing.T, b *headless, who person) (*oauth2.Token, flow) {
	t.Helper()
	fl := b.authorize(a.url(), who)
	return a.exchange(t, fl), fl
}

// verifyIDToken checks the token response's id_token with go-oidc: the
// signature (JWKS from discovery), iss, aud, exp, and the nonce.
func (a *authRequest) verifyIDToken(t *testing.T, tok *oauth2.Token) (*oidc.IDToken, map[string]any) {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatalf("token response has no id_token although openid was granted (scope %v)", tok.Extra("scope"))
	}
	idt, err := a.f.provider.Verifier(&oidc.Config{ClientID: a.client.ClientID}).Verify(a.f.ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc refused the id_token: %v", err)
	}
	if idt.Issuer != a.f.s.URL || !slices.Equal(idt.Audience, []string{a.client.ClientID}) {
		t.Errorf("id_token iss %q aud %v, want %q and [%s]", idt.Issuer, idt.Audience, a.f.s.URL, a.client.ClientID)
	}
	if idt.Nonce != a.nonce {
		t.Errorf("id_token nonce %q, want the request's %q", idt.Nonce, a.nonce)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if h := jwtHeader(t, raw); h["alg"] != "RS256" || h["kid"] == nil {
		t.Errorf("id_token header %v, want alg RS256 and a kid", h)
	}
	return idt, claims
}

// jwtClaims decodes a JWT's payload without verifying it (the server
// verifies access tokens; the tests read their claims).
func jwtClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	return jwtSegment(t, raw, 1)
}

func jwtHeader(t *testing.T, raw string) map[string]any {
	t.Helper()
	return jwtSegment(t, raw, 0)
}

func jwtSegment(t *testing.T, raw string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d parts): %.40s...", len(parts), raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("JWT segment %d is not base64url: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT segment %d is not JSON: %v", i, err)
	}
	return m
}

// fhir reads path (relative to the FHIR base) with an access token.
func (f *smartFixture) fhir(t *testing.T, accessToken, path string) reply {
	t.Helper()
	return do(t, http.MethodGet, f.fhirBase+path, nil, http.Header{"Authorization": {"Bearer " + accessToken}, "Accept": {"application/fhir+json"}})
}

// wantFHIR checks the status of a FHIR read.
func (f *smartFixture) wantFHIR(t *testing.T, what, accessToken, path string, status int) reply {
	t.Helper()
	r := f.fhir(t, accessToken, path)
	if r.status != status {
		t.Errorf("%s: GET /fhir%s: want HTTP %d, got %s", what, path, status, r)
	}
	return r
}

// waitFHIRRefused waits until the FHIR API refuses the access token with
// 401 invalid_token (revocation reaches every verifier within about a
// second: DESIGN.md "Tokens and grants").
func (f *smartFixture) waitFHIRRefused(t *testing.T, what, accessToken, path string) {
	t.Helper()
	waitFor(t, revocationWait, what, func() (bool, string) {
		r := f.fhir(t, accessToken, path)
		return r.status == http.StatusUnauthorized && strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token"),
			fmt.Sprintf("%s WWW-Authenticate %q", r, r.header.Get("WWW-Authenticate"))
	})
}

// refresh runs the refresh_token grant with x/oauth2's TokenSource (which
// refreshes a token without an access token).
func (f *smartFixture) refresh(conf *oauth2.Config, refreshToken string) (*oauth2.Token, error) {
	return conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// wantInvalidGrant checks an x/oauth2 error: 400 invalid_grant.
func wantInvalidGrant(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Errorf("%s: want a 400 invalid_grant error response, got %v", what, err)
		return
	}
	if re.Response.StatusCode != http.StatusBadRequest || re.ErrorCode != "invalid_grant" {
		t.Errorf("%s: want HTTP 400 invalid_grant, got %d %q %q", what, re.Response.StatusCode, re.ErrorCode, re.ErrorDescription)
	}
	for _, w := range words {
		if !strings.Contains(re.ErrorDescription, w) {
			t.Errorf("%s: error_description does not say %q: %q", what, w, re.ErrorDescription)
		}
	}
}

// scopeSet is a space-separated scope list as a sorted set.
func scopeSet(s any) []string {
	str, _ := s.(string)
	out := strings.Fields(str)
	slices.Sort(out)
	return out
}

// TestAuthorizeSMART drives the SMART App Launch flows for people through
// the real pages with x/oauth2 and go-oidc, on one dev server.
func TestAuthorizeSMART(t *testing.T) {
	t.Parallel()
	f := newSmartFixture(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *smartFixture)
	}{
		{"Discovery", smartDiscovery},
		{"StandalonePatientLaunch", smartStandalonePatientLaunch},
		{"PractitionerPicksPatient", smartPractitionerPicksPatient},
		{"RefreshRotationAndScopes", smartRefreshRotationAndScopes},
		{"ConsentRememberedAndUnticked", smartConsentRememberedAndUnticked},
		{"EHRLaunch", smartEHRLaunch},
		{"LaunchCLI", smartLaunchCLI},
		{"PushedAuthorizationRequest", smartPushedAuthorizationRequest},
		{"AuthorizePost", smartAuthorizePost},
		{"Logout", smartLogout},
		{"PagesAndCookies", smartPagesAndCookies},
		{"PromptLoginAndMaxAge", smartPromptLoginAndMaxAge},
		{"LaunchRefusals", smartLaunchRefusals},
		{"AccountAppsNeedsSignIn", smartAccountAppsNeedsSignIn},
		{"DemoClients", smartDemoClients},
		{"Errors", authorizeErrors},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, f) })
	}
}
