package e2e

// Login sessions (issue 5 items 4 and 11): logout, cookies, prompt and
// max_age, /account/apps.

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// smartLogout is OpenID Connect RP-initiated logout, with id_token_hint and
// with the confirmation page.
func smartLogout(t *testing.T, f *smartFixture) {
	const scope = "openid fhirUser launch/patient patient/*.rs online_access"
	reg := mustRegister(t, f.s.URL, "", map[string]any{
		"client_name":                "Logout app",
		"token_endpoint_auth_method": "none",
		"redirect_uris":              []string{registeredRedirect},
		"post_logout_redirect_uris":  []string{appLoggedOut},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"scope":                      scope,
	})
	if reg.Status != "enabled" {
		t.Fatalf("a self-registered public app with patient-level scopes: status %q, want enabled", reg.Status)
	}
	app := cliClient{ClientID: reg.ClientID}
	b, amy := f.user(t, "amy.shaw")
	// An offline_access grant from the same session outlives the logout.
	off := f.request(f.patientApp, patientScope)
	offTok, _ := off.run(t, b, amy)
	a := f.request(app, scope)
	fl := b.authorize(a.url(), amy)
	if !strings.Contains(strings.ToLower(fl.consentText), "unverified") {
		t.Errorf("the consent page for a self-registered app does not say it is unverified: %q", fl.consentText)
	}
	tok := a.exchange(t, fl)
	idToken, _ := tok.Extra("id_token").(string)
	if tok.RefreshToken == "" || idToken == "" {
		t.Fatalf("online_access + openid: want a refresh token and an id_token, got refresh %v id_token %v", tok.RefreshToken != "", idToken != "")
	}
	f.wantFHIR(t, "before logout", tok.AccessToken, "/Patient/pat-amy-shaw", http.StatusOK)

	// An unregistered post_logout_redirect_uri is never followed.
	bad := f.s.URL + "/oauth2/logout?" + url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"http://127.0.0.1:47001/elsewhere"}, "state": {"s1"}}.Encode()
	if l := b.get(bad); l.away != nil || l.page.status != http.StatusBadRequest {
		t.Errorf("logout with an unregistered post_logout_redirect_uri: want a 400 page, got %s", l)
	}
	if b.cookie("smartgate-session") == "" {
		t.Fatalf("the refused logout dropped the session cookie")
	}

	// RP-initiated logout with id_token_hint: at once, back to the app with state.
	l := b.get(f.s.URL + "/oauth2/logout?" + url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {appLoggedOut}, "state": {"bye-123"}}.Encode())
	if l.away == nil || l.away.Scheme+"://"+l.away.Host+l.away.Path != appLoggedOut || l.away.Query().Get("state") != "bye-123" {
		t.Fatalf("logout: want a redirect to %s?state=bye-123, got %s", appLoggedOut, l)
	}
	if b.cookie("smartgate-session") != "" {
		t.Errorf("the session cookie is still set after logout")
	}
	// The session is over: the next authorization shows the login page.
	next := f.request(app, scope)
	if l := b.get(next.url()); l.page == nil || len(l.page.forms("#login")) != 1 {
		t.Errorf("after logout, authorize: want the login page, got %s", l)
	}
	// online_access ended with the session.
	_, err := f.refresh(a.conf, tok.RefreshToken)
	wantInvalidGrant(t, "online_access refresh token after logout", err)
	f.waitFHIRRefused(t, "online_access access token after logout", tok.AccessToken, "/Patient/pat-amy-shaw")
	if _, err := f.refresh(off.conf, offTok.RefreshToken); err != nil {
		t.Errorf("an offline_access refresh token stopped working at logout: %v", err)
	}

	// Without id_token_hint the user confirms on a page first.
	b2, amy2 := f.user(t, "amy.shaw")
	l = b2.get(f.s.URL + "/account/apps")
	if l.page == nil || len(l.page.forms("#login")) != 1 {
		t.Fatalf("/account/apps without a session: want the login page, got %s", l)
	}
	b2.submit(l.page.form(t, "#login"), fill{set: map[string]string{"username": amy2.username, "password": amy2.password}}, "action=login")
	l = b2.get(f.s.URL + "/oauth2/logout?" + url.Values{"client_id": {app.ClientID}, "post_logout_redirect_uri": {appLoggedOut}, "state": {"bye-456"}}.Encode())
	if l.page == nil || len(l.page.forms("#logout")) != 1 {
		t.Fatalf("logout without id_token_hint: want a confirmation page with form #logout, got %s", l)
	}
	if b2.cookie("smartgate-session") == "" {
		t.Errorf("showing the logout confirmation page already ended the session")
	}
	l = b2.submit(l.page.form(t, "#logout"), fill{}, "confirm=yes")
	if l.away == nil || l.away.Scheme+"://"+l.away.Host+l.away.Path != appLoggedOut || l.away.Query().Get("state") != "bye-456" {
		t.Fatalf("confirmed logout: want a redirect to %s?state=bye-456, got %s", appLoggedOut, l)
	}
	if l := b2.get(f.s.URL + "/account/apps"); l.page == nil || len(l.page.forms("#login")) != 1 {
		t.Errorf("after the confirmed logout, /account/apps: want the login page, got %s", l)
	}
}

// smartPagesAndCookies checks login_hint, the pages' caching and framing
// headers and the cookies' attributes.
func smartPagesAndCookies(t *testing.T, f *smartFixture) {
	b, amy := f.user(t, "amy.shaw")
	a := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("login_hint", "amy.shaw"))
	l := b.get(a.url())
	if l.page == nil || len(l.page.forms("#login")) != 1 {
		t.Fatalf("authorize without a session: want the login page, got %s", l)
	}
	p := l.page
	if v, _ := p.form(t, "#login").field("username"); v != "amy.shaw" {
		t.Errorf("login_hint=amy.shaw: the username field holds %q", v)
	}
	if cc := p.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("login page Cache-Control %q, want no-store", cc)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") && p.header.Get("X-Frame-Options") == "" {
		t.Errorf("login page can be framed (no CSP frame-ancestors 'none', no X-Frame-Options): CSP %q", csp)
	}
	fl := b.continueFlow(l, amy)
	a.exchange(t, fl)
	seen := map[string]bool{}
	for _, raw := range fl.setCookies {
		ck, err := http.ParseSetCookie(raw)
		if err != nil {
			t.Errorf("Set-Cookie %q: %v", raw, err)
			continue
		}
		if ck.MaxAge < 0 || ck.Value == "" {
			continue // a deletion
		}
		seen[ck.Name] = true
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
			t.Errorf("cookie %s: HttpOnly %v SameSite %v Path %q Domain %q; want HttpOnly, SameSite=Lax, Path=/, no Domain (%s)", ck.Name, ck.HttpOnly, ck.SameSite, ck.Path, ck.Domain, raw)
		}
	}
	for _, name := range []string{"smartgate-session", "smartgate-csrf"} {
		if !seen[name] {
			t.Errorf("the flow set no %s cookie (contract: plain-HTTP dev servers use smartgate-session and smartgate-csrf); Set-Cookie headers: %v", name, fl.setCookies)
		}
	}
}

// smartPromptLoginAndMaxAge checks prompt=login and max_age against an
// existing session.
func smartPromptLoginAndMaxAge(t *testing.T, f *smartFixture) {
	b, amy := f.user(t, "amy.shaw")
	a := f.request(f.patientApp, patientScope)
	tok, _ := a.run(t, b, amy)
	_, c1 := a.verifyIDToken(t, tok)
	time.Sleep(1100 * time.Millisecond) // auth_time counts seconds
	for _, tc := range []struct {
		name  string
		opt   oauth2.AuthCodeOption
		pages []string
	}{
		{"prompt=login", oauth2.SetAuthURLParam("prompt", "login"), []string{"login"}},
		{"max_age=3600", oauth2.SetAuthURLParam("max_age", "3600"), nil},
	} {
		r := f.request(f.patientApp, patientScope, tc.opt)
		fl := b.authorize(r.url(), amy)
		if !slices.Equal(fl.pages, tc.pages) {
			t.Errorf("%s with a session: pages %v, want %v", tc.name, fl.pages, tc.pages)
		}
		tok := r.exchange(t, fl)
		_, c := r.verifyIDToken(t, tok)
		if len(tc.pages) > 0 {
			if c["auth_time"].(float64) <= c1["auth_time"].(float64) {
				t.Errorf("%s: id_token auth_time %v is not later than the first sign-in's %v", tc.name, c["auth_time"], c1["auth_time"])
			}
			c1 = c
		} else if c["auth_time"] != c1["auth_time"] {
			t.Errorf("%s: id_token auth_time %v, want the session's %v", tc.name, c["auth_time"], c1["auth_time"])
		}
	}

	// max_age=0 asks for a fresh sign-in, like prompt=login (OpenID
	// Connect Core §3.1.2.1); once the user signed in during this
	// request, the request goes on.
	time.Sleep(1100 * time.Millisecond)
	r := f.request(f.patientApp, patientScope, oauth2.SetAuthURLParam("max_age", "0"))
	l := b.get(r.url())
	if l.page == nil || len(l.page.forms("#login")) != 1 {
		t.Fatalf("max_age=0 with a session: want the login page, got %s", l)
	}
	l = b.submit(l.page.form(t, "#login"), fill{set: map[string]string{"username": amy.username, "password": amy.password}}, "action=login")
	if l.page != nil && len(l.page.forms("#login")) == 1 {
		knownBug(t, "max_age=0: after the user signs in, the login page comes back again and again, so the app never gets a code: "+
			"proceedAs (internal/oauth/authorize.go:457-459) compares max_age with the age of the sign-in that just happened during this request "+
			"(a few milliseconds > 0 s); skip the max_age check when p.LoginAt != 0, as the prompt=login check does")
	}
	tok0 := r.exchange(t, b.continueFlow(l, amy))
	if _, c := r.verifyIDToken(t, tok0); c["auth_time"].(float64) <= c1["auth_time"].(float64) {
		t.Errorf("max_age=0: id_token auth_time %v is not later than the previous sign-in's %v", c["auth_time"], c1["auth_time"])
	}
}

// smartAccountAppsNeedsSignIn checks that /account/apps sends a visitor
// without a session to sign in and back.
func smartAccountAppsNeedsSignIn(t *testing.T, f *smartFixture) {
	b, ines := f.user(t, "ines.munoz")
	l := b.get(f.s.URL + "/account/apps")
	if l.page == nil || len(l.page.forms("#login")) != 1 || !strings.Contains(strings.Join(l.hops, " "), "/login?next=%2Faccount%2Fapps") {
		t.Fatalf("/account/apps without a session: want a redirect to /login?next=/account/apps, got %s (hops %v)", l, l.hops)
	}
	l = b.submit(l.page.form(t, "#login"), fill{set: map[string]string{"username": ines.username, "password": ines.password}}, "action=login")
	if l.page == nil || l.page.status != http.StatusOK || l.page.url.Path != "/account/apps" {
		t.Fatalf("signing in from /account/apps: want to land on /account/apps, got %s", l)
	}
	if !strings.Contains(l.page.text(), "Clinician app") || len(l.page.forms(".revoke")) == 0 {
		t.Errorf("/account/apps for ines.munoz does not list the Clinician app she authorized (with a revoke form): %s", l.page.text())
	}
}
