package e2e

// The refusals of the SMART browser flow (issue 5 items 2, 3, 4, 5, 7, 10,
// 12): each negative case the issue names, driven like the positive flows
// in authorize_test.go.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// wantRedirectError checks an authorization error response (RFC 6749
// §4.1.2.1, RFC 9207): a redirect to the app with error, an
// error_description naming each of words, iss, the request's state (none
// when state is ""), and no code.
func (f *smartFixture) wantRedirectError(t *testing.T, what string, l landing, code, state string, words ...string) {
	t.Helper()
	if l.away == nil {
		t.Errorf("%s: want a redirect to the app with error=%s, got %s", what, code, l)
		return
	}
	q := l.away.Query()
	if got := l.away.Scheme + "://" + l.away.Host + l.away.Path; got != appRedirect {
		t.Errorf("%s: the error went to %s, want the request's redirect_uri %s", what, got, appRedirect)
	}
	if q.Get("code") != "" {
		t.Errorf("%s: the redirect carries a code: %s", what, l.away)
	}
	if q.Get("error") != code {
		t.Errorf("%s: error %q, want %q (%s)", what, q.Get("error"), code, l.away)
	}
	for _, w := range words {
		if !strings.Contains(q.Get("error_description"), w) {
			t.Errorf("%s: error_description does not name %q: %q", what, w, q.Get("error_description"))
		}
	}
	if q.Get("iss") != f.s.URL {
		t.Errorf("%s: iss %q, want %q (RFC 9207: every response carries iss)", what, q.Get("iss"), f.s.URL)
	}
	if q.Get("state") != state {
		t.Errorf("%s: state %q, want %q", what, q.Get("state"), state)
	}
}

// wantErrorPage checks that an answer is the server's own HTML error page
// with status, never a redirect, naming each of words.
func wantErrorPage(t *testing.T, what string, l landing, status int, words ...string) {
	t.Helper()
	if l.away != nil {
		t.Errorf("%s: want an HTML error page, got a redirect to %s", what, l.away)
		return
	}
	p := l.page
	if p.status != status || !p.isHTML() {
		t.Errorf("%s: want HTTP %d text/html, got %s", what, status, p)
	}
	for _, w := range words {
		if !strings.Contains(p.text(), w) {
			t.Errorf("%s: the page does not say %q: %s", what, w, p.text())
		}
	}
}

func authorizeErrors(t *testing.T, f *smartFixture) {
	// Amy signs in once in this browser and consents to the patient app;
	// from then on each authorization comes straight back with a code.
	b, amy := f.user(t, "amy.shaw")
	warm := f.request(f.patientApp, patientScope)
	warmTok, _ := warm.run(t, b, amy)
	// freshCode runs an authorization that needs no page and returns the
	// request and its code.
	freshCode := func(t *testing.T) (*authRequest, string) {
		t.Helper()
		a := f.request(f.patientApp, patientScope)
		fl := b.authorize(a.url(), person{})
		return a, a.code(t, fl)
	}

	t.Run("MissingOrBadParameters", func(t *testing.T) {
		a := f.request(f.patientApp, patientScope)
		for _, tc := range []struct {
			name   string
			change map[string]string
			code   string
			state  string
			words  []string
		}{
			{"missing state", map[string]string{"state": ""}, "invalid_request", "", []string{"state"}},
			{"missing aud", map[string]string{"aud": ""}, "invalid_request", a.state, []string{"aud", f.fhirBase}},
			{"missing code_challenge", map[string]string{"code_challenge": "", "code_challenge_method": ""}, "invalid_request", a.state, []string{"code_challenge"}},
			{"code_challenge without method (plain)", map[string]string{"code_challenge_method": ""}, "invalid_request", a.state, []string{"code_challenge_method", "S256"}},
			{"code_challenge_method=plain", map[string]string{"code_challenge_method": "plain", "code_challenge": a.verifier}, "invalid_request", a.state, []string{"plain", "S256"}},
			{"wrong aud", map[string]string{"aud": "https://fhir.example.org/r4"}, "invalid_request", a.state, []string{"aud", f.fhirBase}},
			{"aud is the issuer, not the FHIR base", map[string]string{"aud": f.s.URL}, "invalid_request", a.state, []string{"aud"}},
			{"unsupported response_type", map[string]string{"response_type": "token"}, "unsupported_response_type", a.state, []string{"token"}},
			{"unknown scope", map[string]string{"scope": "openid launch/patient patient/*.rs nonsense/scope"}, "invalid_scope", a.state, []string{"nonsense/scope"}},
		} {
			// Amy is signed in and has consented: any code here would be a bug.
			l := b.get(a.urlWith(t, tc.change))
			f.wantRedirectError(t, tc.name, l, tc.code, tc.state, tc.words...)
		}
		// A trailing slash on aud is tolerated.
		ok := f.request(f.patientApp, patientScope)
		fl := b.authorize(ok.urlWith(t, map[string]string{"aud": f.fhirBase + "/"}), person{})
		ok.exchange(t, fl)
	})

	t.Run("UnknownClientOrRedirectURIShowsPage", func(t *testing.T) {
		a := f.request(f.patientApp, patientScope)
		for _, tc := range []struct {
			name   string
			change map[string]string
			words  []string
		}{
			{"unknown client_id", map[string]string{"client_id": "no-such-client"}, []string{"no-such-client"}},
			{"missing client_id", map[string]string{"client_id": ""}, []string{"client_id"}},
			{"unregistered redirect_uri", map[string]string{"redirect_uri": "https://attacker.example/callback"}, []string{"redirect_uri"}},
			{"redirect_uri with another path", map[string]string{"redirect_uri": "http://127.0.0.1:47001/other"}, []string{"redirect_uri"}},
			{"missing redirect_uri", map[string]string{"redirect_uri": ""}, []string{"redirect_uri"}},
		} {
			wantErrorPage(t, tc.name, b.get(a.urlWith(t, tc.change)), http.StatusBadRequest, tc.words...)
		}
	})

	t.Run("ScriptsGetJSON", func(t *testing.T) {
		a := f.request(f.patientApp, patientScope)
		check := func(what string, r reply) {
			t.Helper()
			e := wantOAuthError(t, what, r, http.StatusBadRequest, "invalid_request", "browser")
			if !strings.Contains(e.Description, "client_credentials") && !strings.Contains(e.Description, "docs/flows") {
				t.Errorf("%s: the error does not point a script to the right flow: %q", what, e.Description)
			}
		}
		check("GET with Accept: application/json", do(t, http.MethodGet, a.url(), nil, http.Header{"Accept": {"application/json"}}))
		body, _ := json.Marshal(map[string]string{"response_type": "code", "client_id": f.patientApp.ClientID, "redirect_uri": appRedirect, "state": a.state})
		check("POST with a JSON body", do(t, http.MethodPost, f.s.URL+"/oauth2/authorize", bytes.NewReader(body), http.Header{"Content-Type": {"application/json"}}))
		// A browser accepting HTML (and JSON) is a browser.
		r := do(t, http.MethodGet, a.url(), nil, http.Header{"Accept": {"text/html,application/json;q=0.9"}})
		if r.status != http.StatusSeeOther {
			t.Errorf("GET accepting text/html and JSON: want the browser flow (303), got %s", r)
		}
	})

	t.Run("CodeReuseRevokesTokens", func(t *testing.T) {
		a, code := freshCode(t)
		tok, err := a.conf.Exchange(f.ctx, code, oauth2.VerifierOption(a.verifier))
		if err != nil {
			t.Fatalf("first exchange: %v", err)
		}
		f.wantFHIR(t, "token of the first exchange", tok.AccessToken, "/Patient/pat-amy-shaw", http.StatusOK)
		_, err = a.conf.Exchange(f.ctx, code, oauth2.VerifierOption(a.verifier))
		wantInvalidGrant(t, "second exchange of the same code", err)
		f.waitFHIRRefused(t, "access token of the first exchange after the code was replayed", tok.AccessToken, "/Patient/pat-amy-shaw")
		_, err = f.refresh(a.conf, tok.RefreshToken)
		wantInvalidGrant(t, "refresh token of the first exchange after the code was replayed", err)
	})

	t.Run("CodeOfAnotherClient", func(t *testing.T) {
		a, code := freshCode(t)
		other := f.config(f.clinicianApp, patientScope)
		_, err := other.Exchange(f.ctx, code, oauth2.VerifierOption(a.verifier))
		wantInvalidGrant(t, "a code exchanged by another (confidential) client", err)
		a2, code2 := freshCode(t)
		_, err = f.config(f.consentApp, patientScope).Exchange(f.ctx, code2, oauth2.VerifierOption(a2.verifier))
		wantInvalidGrant(t, "a code exchanged by another public client", err)
	})

	t.Run("Verifier", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			opts func(a *authRequest) []oauth2.AuthCodeOption
		}{
			{"missing code_verifier", func(*authRequest) []oauth2.AuthCodeOption { return nil }},
			{"wrong code_verifier", func(*authRequest) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.VerifierOption(oauth2.GenerateVerifier())}
			}},
			{"code_verifier equal to the challenge", func(a *authRequest) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.VerifierOption(oauth2.S256ChallengeFromVerifier(a.verifier))}
			}},
		} {
			a, code := freshCode(t)
			_, err := a.conf.Exchange(f.ctx, code, tc.opts(a)...)
			wantInvalidGrant(t, tc.name, err, "code_verifier")
		}
	})

	t.Run("RedirectURIMismatchAtToken", func(t *testing.T) {
		a, code := freshCode(t)
		conf := *a.conf
		conf.RedirectURL = "http://127.0.0.1:47002/callback" // registered (any port), but not the request's
		_, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(a.verifier))
		wantInvalidGrant(t, "redirect_uri differing from the authorization request's", err, "redirect_uri")
	})

	t.Run("RefreshTokenOfAnotherClient", func(t *testing.T) {
		if warmTok.RefreshToken == "" {
			t.Fatal("no refresh token to test with")
		}
		_, err := f.refresh(f.config(f.clinicianApp, ""), warmTok.RefreshToken)
		wantInvalidGrant(t, "a refresh token used by another (confidential) client", err)
		_, err = f.refresh(f.config(f.consentApp, ""), warmTok.RefreshToken)
		wantInvalidGrant(t, "a refresh token used by another public client", err)
		// It still works for its own client.
		if _, err := f.refresh(warm.conf, warmTok.RefreshToken); err != nil {
			t.Errorf("the refresh token no longer works for its own client after other clients tried it: %v", err)
		}
	})

	t.Run("ConsentDenied", func(t *testing.T) {
		a := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("prompt", "consent"))
		fl := b.authorize(a.url(), person{deny: true})
		if len(fl.pages) != 1 || fl.pages[0] != "consent" {
			t.Errorf("prompt=consent with a session: pages %v, want [consent]", fl.pages)
		}
		f.wantRedirectError(t, "consent denied", fl.last, "access_denied", a.state)
	})

	t.Run("PromptNoneWithoutSession", func(t *testing.T) {
		fresh := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("prompt", "none"))
		f.wantRedirectError(t, "prompt=none without a session", fresh.get(a.url()), "login_required", a.state)
		// With a session and remembered consent, prompt=none returns a code.
		ok := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("prompt", "none"))
		ok.exchange(t, b.authorize(ok.url(), person{}))
	})

	t.Run("WrongPassword", func(t *testing.T) {
		fresh := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope)
		l := fresh.get(a.url())
		if l.page == nil || len(l.page.forms("#login")) != 1 {
			t.Fatalf("authorize without a session: want the login page, got %s", l)
		}
		l = fresh.submit(l.page.form(t, "#login"), fill{set: map[string]string{"username": "admin", "password": "not-the-password"}}, "action=login")
		if l.page == nil || l.page.status != http.StatusUnauthorized || len(l.page.forms("#login")) != 1 || !strings.Contains(l.page.text(), "The username or password is wrong.") {
			t.Fatalf("wrong password: want the login page again with 401 and \"The username or password is wrong.\", got %s", l)
		}
		if fresh.cookie("smartgate-session") != "" {
			t.Errorf("a failed login set a session cookie")
		}
		// An unknown user reads the same (no account enumeration).
		l = fresh.submit(l.page.form(t, "#login"), fill{set: map[string]string{"username": "nobody.here", "password": "x"}}, "action=login")
		if l.page == nil || l.page.status != http.StatusUnauthorized || !strings.Contains(l.page.text(), "The username or password is wrong.") {
			t.Errorf("unknown user: want the same 401 page, got %s", l)
		}
	})

	t.Run("FormWithoutCSRFToken", func(t *testing.T) {
		fresh := newHeadless(t, f.s.URL)
		a := f.request(f.patientApp, patientScope)
		l := fresh.get(a.url())
		if l.page == nil || len(l.page.forms("#login")) != 1 {
			t.Fatalf("authorize without a session: want the login page, got %s", l)
		}
		form := l.page.form(t, "#login")
		if v, _ := form.field("csrf_token"); v == "" || v != fresh.cookie("smartgate-csrf") {
			t.Errorf("the login form's csrf_token %q is not the smartgate-csrf cookie %q (double submit)", v, fresh.cookie("smartgate-csrf"))
		}
		data := form.data(t, fill{set: map[string]string{"username": "amy.shaw", "password": amy.password}}, "action=login")
		without := url.Values{}
		for k, v := range data {
			if k != "csrf_token" {
				without[k] = v
			}
		}
		wantErrorPage(t, "login form posted without csrf_token", fresh.submitData(form, without), http.StatusForbidden)
		wrong := url.Values{}
		for k, v := range data {
			wrong[k] = v
		}
		wrong.Set("csrf_token", strings.Repeat("A", 43))
		wantErrorPage(t, "login form posted with a csrf_token that is not the cookie's", fresh.submitData(form, wrong), http.StatusForbidden)
		if fresh.cookie("smartgate-session") != "" {
			t.Errorf("a login without a valid csrf_token set a session cookie")
		}
		// The consent form too: sign in properly, then post consent without the token.
		fa := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("prompt", "consent"))
		l = b.get(fa.url())
		if l.page == nil || len(l.page.forms("#consent")) != 1 {
			t.Fatalf("prompt=consent with a session: want the consent page, got %s", l)
		}
		cf := l.page.form(t, "#consent")
		cd := cf.data(t, fill{}, "decision=approve")
		cd.Del("csrf_token")
		wantErrorPage(t, "consent form posted without csrf_token", b.submitData(cf, cd), http.StatusForbidden)
	})

	t.Run("PendingClient", func(t *testing.T) {
		const scope = "openid fhirUser launch/patient user/*.rs"
		reg := mustRegister(t, f.s.URL, "", map[string]any{
			"client_name":                "Self-registered clinician app",
			"token_endpoint_auth_method": "none",
			"redirect_uris":              []string{registeredRedirect},
			"grant_types":                []string{"authorization_code"},
			"response_types":             []string{"code"},
			"scope":                      scope,
		})
		if reg.Status != "pending" {
			t.Fatalf("a self-registered app with user/ scopes: status %q, want pending", reg.Status)
		}
		a := f.request(cliClient{ClientID: reg.ClientID}, scope)
		l := b.get(a.url())
		if l.away != nil {
			t.Fatalf("a pending client at authorize: want an HTML page, got a redirect to %s", l.away)
		}
		if !l.page.isHTML() || l.page.status < 400 || !strings.Contains(l.page.text(), "smartgate client enable "+reg.ClientID) {
			t.Errorf("a pending client at authorize: want an HTML error page naming `smartgate client enable %s`, got %s", reg.ClientID, l.page)
		}
		// A disabled client likewise.
		d := f.s.createClient(t, "Disabled app", "--type", "public", "--redirect-uri", registeredRedirect, "--scope", patientScope,
			"--grant-type", "authorization_code")
		f.s.clientAct(t, "disable", d.ClientID)
		da := f.request(d, patientScope)
		var dl landing
		waitFor(t, revocationWait, "a disabled client refused at authorize", func() (bool, string) {
			dl = b.get(da.url())
			return dl.away == nil && dl.page.status >= 400, dl.String()
		})
		if !dl.page.isHTML() || !strings.Contains(dl.page.text(), "smartgate client enable "+d.ClientID) {
			t.Errorf("a disabled client at authorize: want an HTML error page naming `smartgate client enable %s`, got %s", d.ClientID, dl.page)
		}
		for _, p := range []*htmlPage{l.page, dl.page} {
			if p.status == http.StatusUnauthorized && strings.HasPrefix(p.header.Get("WWW-Authenticate"), "Basic") {
				knownBug(t, "the authorize page for a pending or disabled client is HTTP 401 with WWW-Authenticate %q: a browser answers that with its own username/password dialog for the app's end user instead of showing the page; "+
					"/oauth2/authorize is no client-authentication endpoint, so the page should be 400 or 403 without WWW-Authenticate (internal/oauth/registry.go statusError adds the header; internal/oauth/authorize.go validateAuthorize returns it to the HTML writer)", p.header.Get("WWW-Authenticate"))
			}
		}
	})

	t.Run("PasswordGrantOffByDefault", func(t *testing.T) {
		c := f.s.createClient(t, "Password app", "--type", "confidential-symmetric", "--scope", patientScope,
			"--grant-type", "authorization_code", "--grant-type", "password", "--grant-type", "refresh_token", "--redirect-uri", registeredRedirect)
		conf := f.config(c, patientScope)
		_, err := conf.PasswordCredentialsToken(f.ctx, "amy.shaw", amy.password)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusBadRequest || re.ErrorCode == "" || !strings.Contains(re.ErrorDescription, "password") {
			t.Errorf("the password grant with the default configuration: want a 400 error about the password grant, got %v", err)
		}
	})
}

// TestAuthorizePasswordGrant turns the password grant on for patients
// (authorize.password_grant_roles) and checks who may use it.
func TestAuthorizePasswordGrant(t *testing.T) {
	t.Parallel()
	f := newSmartFixture(t, "SMARTGATE_AUTHORIZE_PASSWORD_GRANT_ROLES=patient")
	c := f.s.createClient(t, "Password app", "--type", "confidential-symmetric", "--scope", patientScope,
		"--grant-type", "authorization_code", "--grant-type", "password", "--grant-type", "refresh_token", "--redirect-uri", registeredRedirect)
	conf := f.config(c, "openid fhirUser launch/patient patient/*.rs offline_access")

	tok, err := conf.PasswordCredentialsToken(f.ctx, "amy.shaw", demoPassword(t, f.s.dataDir, "amy.shaw"))
	if err != nil {
		t.Fatalf("password grant for patient amy.shaw with password_grant_roles=patient: %v", err)
	}
	if tok.Extra("patient") != "pat-amy-shaw" || tok.RefreshToken == "" {
		t.Errorf("password grant: patient %v refresh token %v; want pat-amy-shaw and one", tok.Extra("patient"), tok.RefreshToken != "")
	}
	f.wantFHIR(t, "password-grant token", tok.AccessToken, "/Patient/pat-amy-shaw", http.StatusOK)

	for _, tc := range []struct{ user, why string }{
		{"admin", "administrators never may"},
		{"ines.munoz", "practitioner is not in password_grant_roles"},
	} {
		_, err := conf.PasswordCredentialsToken(f.ctx, tc.user, demoPassword(t, f.s.dataDir, tc.user))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusBadRequest || re.ErrorCode == "" {
			t.Errorf("password grant for %s (%s): want a 400 error, got %v", tc.user, tc.why, err)
		}
	}
	_, err = conf.PasswordCredentialsToken(f.ctx, "amy.shaw", "wrong-password")
	wantInvalidGrant(t, "password grant with a wrong password", err, "username or password is wrong")
}
