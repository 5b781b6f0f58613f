package e2e

// EHR launches, pushed requests and authorize-post (issue 5 items 2 and 6).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// smartEHRLaunch is an EHR launch through POST /oauth2/launch, the launch's
// single use, and revoking the grant at /account/apps.
func smartEHRLaunch(t *testing.T, f *smartFixture) {
	// The EHR (here the app itself, created with --may-launch) makes a launch.
	r := postForm(t, f.s.URL+"/oauth2/launch", url.Values{"app_client_id": {f.ehrApp.ClientID}, "patient": {"pat-amy-shaw"}, "encounter": {"enc-amy-shaw-1"},
		"fhir_context": {"Condition/cond-amy-shaw-hypertension"}}, creds{id: f.ehrApp.ClientID, secret: f.ehrApp.ClientSecret})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /oauth2/launch: want 201, got %s", r)
	}
	var lr struct {
		Launch    string `json:"launch"`
		ISS       string `json:"iss"`
		LaunchURL string `json:"launch_url"`
		ExpiresIn int    `json:"expires_in"`
	}
	r.json(t, &lr)
	if lr.Launch == "" || lr.ISS != f.fhirBase || lr.ExpiresIn <= 0 || lr.ExpiresIn > 300 {
		t.Fatalf("POST /oauth2/launch: want launch, iss %s and expires_in up to 300; got %s", f.fhirBase, r)
	}
	lu, err := url.Parse(lr.LaunchURL)
	if err != nil || lu.Scheme+"://"+lu.Host+lu.Path != appLaunchURI || lu.Query().Get("iss") != f.fhirBase || lu.Query().Get("launch") != lr.Launch {
		t.Fatalf("launch_url %q: want %s?iss=%s&launch=%s", lr.LaunchURL, appLaunchURI, f.fhirBase, lr.Launch)
	}

	// The app opens its launch URL: it discovers the server from iss.
	resp, body := get(t, lu.Query().Get("iss")+"/.well-known/smart-configuration")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), f.s.URL+"/oauth2/authorize") {
		t.Fatalf("smart-configuration of the launch's iss: %d %.200s", resp.StatusCode, body)
	}
	b, ines := f.user(t, "ines.munoz")
	a := f.request(f.ehrApp, ehrScope, oauth2.SetAuthURLParam("launch", lr.Launch))
	tok, fl := a.run(t, b, ines)
	if !slices.Equal(fl.pages, []string{"login", "consent"}) {
		t.Errorf("an EHR launch showed pages %v, want [login consent] (the launch brings the patient: no picker)", fl.pages)
	}
	if tok.Extra("patient") != "pat-amy-shaw" || tok.Extra("encounter") != "enc-amy-shaw-1" {
		t.Errorf("EHR launch token response: patient %v encounter %v, want the launch's pat-amy-shaw and enc-amy-shaw-1", tok.Extra("patient"), tok.Extra("encounter"))
	}
	if tok.Extra("need_patient_banner") != true {
		t.Errorf("EHR launch: need_patient_banner %v, want true (the default)", tok.Extra("need_patient_banner"))
	}
	if got, want := fmt.Sprint(tok.Extra("fhirContext")), "[map[reference:Condition/cond-amy-shaw-hypertension]]"; got != want {
		t.Errorf("EHR launch: fhirContext %s, want %s", got, want)
	}
	at := jwtClaims(t, tok.AccessToken)
	if at["patient"] != "pat-amy-shaw" || at["encounter"] != "enc-amy-shaw-1" {
		t.Errorf("EHR launch access token: patient %v encounter %v", at["patient"], at["encounter"])
	}
	if tok.RefreshToken == "" {
		t.Errorf("EHR launch: no refresh token although online_access was granted")
	}
	f.wantFHIR(t, "the launch's encounter", tok.AccessToken, "/Encounter/enc-amy-shaw-1", http.StatusOK)

	// A launch is single use.
	again := f.request(f.ehrApp, ehrScope, oauth2.SetAuthURLParam("launch", lr.Launch))
	fl2 := b.authorize(again.url(), person{})
	q := fl2.query()
	if q == nil || q.Get("code") != "" || q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "launch") ||
		q.Get("state") != again.state || q.Get("iss") != f.s.URL {
		t.Errorf("reusing a launch: want a redirect with error=invalid_request about the launch, state and iss; got %s", fl2.last)
	}

	// /account/apps lists the grant; revoking it kills the tokens.
	grant, _ := at["grant"].(string)
	if grant == "" {
		t.Fatalf("access token has no grant claim: %v", at)
	}
	l := b.get(f.s.URL + "/account/apps")
	if l.page == nil || l.page.status != http.StatusOK {
		t.Fatalf("/account/apps for the signed-in user: %s", l)
	}
	var revoke *htmlForm
	for _, rf := range l.page.forms(".revoke") {
		if v, _ := rf.field("grant"); v == grant {
			revoke = rf
		}
	}
	if revoke == nil {
		t.Fatalf("/account/apps has no revoke form for grant %s: %s", grant, l.page)
	}
	if !strings.Contains(l.page.text(), "EHR-launched app") {
		t.Errorf("/account/apps does not name the app: %s", l.page.text())
	}
	l = b.submit(revoke, fill{}, "action=revoke")
	if l.page == nil || l.page.status != http.StatusOK || !strings.Contains(l.page.text(), "revoked") {
		t.Errorf("revoking at /account/apps: want the page again with a notice, got %s", l)
	}
	for _, rf := range l.page.forms(".revoke") {
		if v, _ := rf.field("grant"); v == grant {
			t.Errorf("/account/apps still lists the revoked grant %s", grant)
		}
	}
	f.waitFHIRRefused(t, "access token after revoking at /account/apps", tok.AccessToken, "/Patient/pat-amy-shaw")
	_, err = f.refresh(a.conf, tok.RefreshToken)
	wantInvalidGrant(t, "refresh token after revoking at /account/apps", err)
}

// smartLaunchCLI makes the launch with `smartgate launch` instead.
func smartLaunchCLI(t *testing.T, f *smartFixture) {
	// The contract's `smartgate launch` makes the same launch as POST /oauth2/launch.
	r := smartgate(t, f.s.env, "launch", "--client", f.ehrApp.ClientID, "--patient", "pat-amy-shaw", "--encounter", "enc-amy-shaw-1",
		"--issuer", f.s.URL, "--dev", "--data-dir", f.s.dataDir, "--output", "json")
	if r.code != 0 {
		knownBug(t, "`smartgate launch` (authorize-contract.md \"CLI\", issue 5 item 6) fails: %s", r)
	}
	var lr struct {
		Launch    string `json:"launch"`
		ISS       string `json:"iss"`
		LaunchURL string `json:"launch_url"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &lr); err != nil || lr.Launch == "" || lr.ISS != f.fhirBase || !strings.HasPrefix(lr.LaunchURL, appLaunchURI+"?") {
		t.Fatalf("smartgate launch --output json: want launch, iss %s and launch_url %s?...; got %s", f.fhirBase, appLaunchURI, r)
	}
	b, ines := f.user(t, "ines.munoz")
	a := f.request(f.ehrApp, ehrScope, oauth2.SetAuthURLParam("launch", lr.Launch))
	tok, _ := a.run(t, b, ines)
	if tok.Extra("patient") != "pat-amy-shaw" || tok.Extra("encounter") != "enc-amy-shaw-1" {
		t.Errorf("launch from the CLI: patient %v encounter %v", tok.Extra("patient"), tok.Extra("encounter"))
	}
}

// smartLaunchRefusals covers who may make launches and who may use them.
func smartLaunchRefusals(t *testing.T, f *smartFixture) {
	launch := func(caller cliClient, form url.Values) reply {
		t.Helper()
		return postForm(t, f.s.URL+"/oauth2/launch", form, creds{id: caller.ClientID, secret: caller.ClientSecret})
	}
	// Only clients an administrator allowed may launch.
	r := launch(f.clinicianApp, url.Values{"app_client_id": {f.ehrApp.ClientID}, "patient": {"pat-amy-shaw"}})
	if r.status < 400 || !strings.Contains(string(r.body), "--may-launch") {
		t.Errorf("POST /oauth2/launch by a client without --may-launch: want an error naming --may-launch, got %s", r)
	}
	r = launch(cliClient{ClientID: f.ehrApp.ClientID, ClientSecret: "wrong"}, url.Values{"patient": {"pat-amy-shaw"}})
	wantOAuthError(t, "POST /oauth2/launch with a wrong secret", r, http.StatusUnauthorized, "invalid_client")
	r = launch(f.ehrApp, url.Values{"app_client_id": {f.ehrApp.ClientID}, "patient": {"pat-nobody"}})
	wantOAuthError(t, "a launch for a patient that does not exist", r, http.StatusBadRequest, "invalid_request", "pat-nobody")

	newLaunch := func(patient string) string {
		t.Helper()
		r := launch(f.ehrApp, url.Values{"app_client_id": {f.ehrApp.ClientID}, "patient": {patient}})
		if r.status != http.StatusCreated {
			t.Fatalf("POST /oauth2/launch: want 201, got %s", r)
		}
		var lr struct{ Launch string }
		r.json(t, &lr)
		return lr.Launch
	}
	// A patient user may not open another patient's launch.
	b, amy := f.user(t, "amy.shaw")
	a := f.request(f.ehrApp, ehrScope, oauth2.SetAuthURLParam("launch", newLaunch("pat-jose-alvarez")))
	fl := b.authorize(a.url(), amy)
	f.wantRedirectError(t, "amy.shaw opening a launch for another patient", fl.last, "access_denied", a.state, "pat-jose-alvarez")
	// A launch is bound to the app it was made for; another app presenting
	// it is refused and does not use it up.
	amyLaunch := newLaunch("pat-amy-shaw")
	c := f.request(f.clinicianApp, "launch openid patient/*.rs", oauth2.SetAuthURLParam("launch", amyLaunch))
	f.wantRedirectError(t, "another app using the launch", b.get(c.url()), "invalid_request", c.state, "launch")
	own := f.request(f.ehrApp, ehrScope, oauth2.SetAuthURLParam("launch", amyLaunch))
	if tok := own.exchange(t, b.authorize(own.url(), amy)); tok.Extra("patient") != "pat-amy-shaw" {
		t.Fatalf("the launch's own app after another app tried it: patient %v, want pat-amy-shaw", tok.Extra("patient"))
	}
	// An unknown launch.
	u := f.request(f.ehrApp, ehrScope, oauth2.SetAuthURLParam("launch", "no-such-launch"))
	f.wantRedirectError(t, "an unknown launch", b.get(u.url()), "invalid_request", u.state, "launch")
	// launch= without the launch scope.
	n := f.request(f.ehrApp, "openid patient/*.rs", oauth2.SetAuthURLParam("launch", newLaunch("pat-amy-shaw")))
	f.wantRedirectError(t, "launch= without the launch scope", b.get(n.url()), "invalid_scope", n.state, "launch")
}

// smartPushedAuthorizationRequest covers RFC 9126: push, authorize with
// request_uri once, --require-par.
func smartPushedAuthorizationRequest(t *testing.T, f *smartFixture) {
	b, amy := f.user(t, "amy.shaw")
	a := f.request(f.patientApp, patientScope)
	r := postForm(t, f.s.URL+"/oauth2/par", a.params(t), creds{id: f.patientApp.ClientID})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /oauth2/par: want 201, got %s", r)
	}
	var pr struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int    `json:"expires_in"`
	}
	r.json(t, &pr)
	if !strings.HasPrefix(pr.RequestURI, "urn:ietf:params:oauth:request_uri:") || pr.ExpiresIn <= 0 {
		t.Fatalf("PAR response: want a urn:ietf:params:oauth:request_uri: and expires_in, got %s", r)
	}
	authURL := f.s.URL + "/oauth2/authorize?" + url.Values{"client_id": {f.patientApp.ClientID}, "request_uri": {pr.RequestURI}}.Encode()
	fl := b.authorize(authURL, amy)
	tok := a.exchange(t, fl)
	if tok.Extra("patient") != "pat-amy-shaw" {
		t.Errorf("pushed request: patient %v", tok.Extra("patient"))
	}
	a.verifyIDToken(t, tok) // the pushed nonce came back

	// A request_uri is single use: the second time is an error page
	// (it stands in for the redirect_uri, so nothing can be trusted).
	l := b.get(authURL)
	if l.away != nil || l.page.status != http.StatusBadRequest || !l.page.isHTML() || !strings.Contains(l.page.text(), "request_uri") {
		t.Errorf("reusing a request_uri: want a 400 HTML page about request_uri, got %s", l)
	}

	// A confidential client pushes with its secret.
	c := f.request(f.clinicianApp, "openid fhirUser launch/patient patient/*.rs")
	r = postForm(t, f.s.URL+"/oauth2/par", c.params(t), creds{id: f.clinicianApp.ClientID, secret: f.clinicianApp.ClientSecret})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /oauth2/par by a confidential client: want 201, got %s", r)
	}
	// A wrong secret: 401 invalid_client.
	r = postForm(t, f.s.URL+"/oauth2/par", c.params(t), creds{id: f.clinicianApp.ClientID, secret: "wrong"})
	wantOAuthError(t, "PAR with a wrong secret", r, http.StatusUnauthorized, "invalid_client")
	// Errors in a pushed request are JSON, at once.
	bad := a.params(t)
	bad.Del("code_challenge")
	bad.Del("code_challenge_method")
	r = postForm(t, f.s.URL+"/oauth2/par", bad, creds{id: f.patientApp.ClientID})
	wantOAuthError(t, "PAR without code_challenge", r, http.StatusBadRequest, "invalid_request", "code_challenge")

	// A request_uri works only for the client that pushed it.
	o := f.request(f.patientApp, patientScope)
	r = postForm(t, f.s.URL+"/oauth2/par", o.params(t), creds{id: f.patientApp.ClientID})
	r.json(t, &pr)
	stolen := f.s.URL + "/oauth2/authorize?" + url.Values{"client_id": {f.consentApp.ClientID}, "request_uri": {pr.RequestURI}}.Encode()
	if l := b.get(stolen); l.away != nil || l.page.status != http.StatusBadRequest || !strings.Contains(l.page.text(), "request_uri") {
		t.Errorf("a request_uri used with another client_id: want a 400 HTML page about request_uri, got %s", l)
	}

	// A client registered with --require-par must push.
	rp := f.s.createClient(t, "PAR-only app", "--type", "public", "--redirect-uri", registeredRedirect, "--scope", patientScope,
		"--grant-type", "authorization_code", "--grant-type", "refresh_token", "--require-par")
	ra := f.request(rp, patientScope)
	if l := b.get(ra.url()); l.away != nil && l.away.Query().Get("code") != "" {
		t.Errorf("a --require-par client got a code without pushing its request: %s", l)
	} else if l.away == nil && (l.page.status != http.StatusBadRequest || !strings.Contains(l.page.text(), "/oauth2/par")) {
		t.Errorf("a --require-par client without PAR: want an error naming /oauth2/par, got %s", l)
	}
	r = postForm(t, f.s.URL+"/oauth2/par", ra.params(t), creds{id: rp.ClientID})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /oauth2/par by a --require-par client: want 201, got %s", r)
	}
	r.json(t, &pr)
	fl = b.authorize(f.s.URL+"/oauth2/authorize?"+url.Values{"client_id": {rp.ClientID}, "request_uri": {pr.RequestURI}}.Encode(), amy)
	ra.exchange(t, fl)
}

// smartAuthorizePost sends the authorization request as a form POST (SMART
// authorize-post).
func smartAuthorizePost(t *testing.T, f *smartFixture) {
	b, amy := f.user(t, "amy.shaw")
	a := f.request(f.patientApp, patientScope)
	fl := b.authorizePost(f.s.URL+"/oauth2/authorize", a.params(t), amy)
	tok := a.exchange(t, fl)
	if tok.Extra("patient") != "pat-amy-shaw" {
		t.Errorf("authorize-post: patient %v", tok.Extra("patient"))
	}
	a.verifyIDToken(t, tok)
}
