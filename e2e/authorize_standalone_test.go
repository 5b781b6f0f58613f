package e2e

// Standalone launches (issue 5 items 5, 6, 8, 9, 10, 13): discovery, a
// patient and a practitioner signing in, refresh and consent.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// smartDiscovery checks the openid-configuration that go-oidc accepted in
// newSmartFixture (its issuer equals the URL it was fetched from) and that
// smart-configuration lists exactly the capabilities of issue 5 item 13.
func smartDiscovery(t *testing.T, f *smartFixture) {
	var oc struct {
		Issuer                 string   `json:"issuer"`
		AuthorizationEndpoint  string   `json:"authorization_endpoint"`
		TokenEndpoint          string   `json:"token_endpoint"`
		JWKSURI                string   `json:"jwks_uri"`
		UserinfoEndpoint       string   `json:"userinfo_endpoint"`
		EndSessionEndpoint     string   `json:"end_session_endpoint"`
		PAREndpoint            string   `json:"pushed_authorization_request_endpoint"`
		ResponseTypes          []string `json:"response_types_supported"`
		SubjectTypes           []string `json:"subject_types_supported"`
		IDTokenAlgs            []string `json:"id_token_signing_alg_values_supported"`
		CodeChallengeMethods   []string `json:"code_challenge_methods_supported"`
		ISSParameterSupported  bool     `json:"authorization_response_iss_parameter_supported"`
		ScopesSupported        []string `json:"scopes_supported"`
		ClaimsSupported        []string `json:"claims_supported"`
		GrantTypesSupported    []string `json:"grant_types_supported"`
		RegistrationEndpoint   string   `json:"registration_endpoint"`
		TokenEndpointAuthMeths []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := f.provider.Claims(&oc); err != nil {
		t.Fatal(err)
	}
	u := f.s.URL
	for name, c := range map[string][2]string{
		"issuer":                                {oc.Issuer, u},
		"authorization_endpoint":                {oc.AuthorizationEndpoint, u + "/oauth2/authorize"},
		"token_endpoint":                        {oc.TokenEndpoint, u + "/oauth2/token"},
		"jwks_uri":                              {oc.JWKSURI, u + "/oauth2/jwks"},
		"userinfo_endpoint":                     {oc.UserinfoEndpoint, u + "/oauth2/userinfo"},
		"end_session_endpoint":                  {oc.EndSessionEndpoint, u + "/oauth2/logout"},
		"pushed_authorization_request_endpoint": {oc.PAREndpoint, u + "/oauth2/par"},
		"registration_endpoint":                 {oc.RegistrationEndpoint, u + "/oauth2/register"},
	} {
		if c[0] != c[1] {
			t.Errorf("openid-configuration %s = %q, want %q", name, c[0], c[1])
		}
	}
	if !slices.Equal(oc.ResponseTypes, []string{"code"}) || !slices.Contains(oc.SubjectTypes, "public") ||
		!slices.Contains(oc.IDTokenAlgs, "RS256") || !slices.Equal(oc.CodeChallengeMethods, []string{"S256"}) || !oc.ISSParameterSupported {
		t.Errorf("openid-configuration: response_types %v subject_types %v id_token algs %v code_challenge_methods %v iss parameter %v; want [code], public, RS256, [S256], true",
			oc.ResponseTypes, oc.SubjectTypes, oc.IDTokenAlgs, oc.CodeChallengeMethods, oc.ISSParameterSupported)
	}
	for _, sc := range []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access", "online_access"} {
		if !slices.Contains(oc.ScopesSupported, sc) {
			t.Errorf("openid-configuration scopes_supported lacks %s: %v", sc, oc.ScopesSupported)
		}
	}
	for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"} {
		if !slices.Contains(oc.ClaimsSupported, c) {
			t.Errorf("openid-configuration claims_supported lacks %s: %v", c, oc.ClaimsSupported)
		}
	}
	if !slices.Contains(oc.GrantTypesSupported, "authorization_code") || !slices.Contains(oc.GrantTypesSupported, "refresh_token") {
		t.Errorf("openid-configuration grant_types_supported %v lacks authorization_code or refresh_token", oc.GrantTypesSupported)
	}
	if slices.Contains(oc.GrantTypesSupported, "password") {
		t.Errorf("openid-configuration advertises the password grant, which is off: %v", oc.GrantTypesSupported)
	}

	resp, body := get(t, f.fhirBase+"/.well-known/smart-configuration")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("smart-configuration: HTTP %d %s", resp.StatusCode, body)
	}
	var sc struct {
		Issuer                string   `json:"issuer"`
		AuthorizationEndpoint string   `json:"authorization_endpoint"`
		TokenEndpoint         string   `json:"token_endpoint"`
		JWKSURI               string   `json:"jwks_uri"`
		ManagementEndpoint    string   `json:"management_endpoint"`
		Capabilities          []string `json:"capabilities"`
		CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
		ISSParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	}
	if err := json.Unmarshal(body, &sc); err != nil {
		t.Fatalf("smart-configuration is not JSON: %v: %s", err, body)
	}
	got := slices.Clone(sc.Capabilities)
	slices.Sort(got)
	want := slices.Clone(smartCapabilities)
	slices.Sort(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("smart-configuration capabilities are not exactly the 18 of issue 5 (-want +got):\n%s", d)
	}
	if sc.Issuer != u || sc.AuthorizationEndpoint != oc.AuthorizationEndpoint || sc.TokenEndpoint != oc.TokenEndpoint || sc.JWKSURI != oc.JWKSURI {
		t.Errorf("smart-configuration issuer/endpoints differ from openid-configuration: %s", body)
	}
	if sc.ManagementEndpoint != u+"/account/apps" || !slices.Equal(sc.CodeChallengeMethods, []string{"S256"}) || !sc.ISSParameterSupported {
		t.Errorf("smart-configuration: management_endpoint %q code_challenge_methods %v iss parameter %v; want %s/account/apps, [S256], true",
			sc.ManagementEndpoint, sc.CodeChallengeMethods, sc.ISSParameterSupported, u)
	}
}

// smartStandalonePatientLaunch is a patient app's standalone launch by the
// demo patient: no picker, her own record in context, the banner and style,
// an id_token verified by go-oidc, userinfo, and patient/ scopes confined to
// her record.
func smartStandalonePatientLaunch(t *testing.T, f *smartFixture) {
	b, amy := f.user(t, "amy.shaw")
	a := f.request(f.patientApp, patientScope)
	before := time.Now().Add(-time.Second).Unix()
	tok, fl := a.run(t, b, amy)
	if !slices.Equal(fl.pages, []string{"login", "consent"}) {
		t.Errorf("a patient's standalone launch showed pages %v, want [login consent] (a patient user gets their own record, no picker)", fl.pages)
	}
	for _, sc := range strings.Fields(patientScope) {
		if on, ok := fl.consent[sc]; !ok || !on {
			t.Errorf("the consent page does not offer scope %s ticked: %v", sc, fl.consent)
		}
	}
	if got := tok.Extra("patient"); got != "pat-amy-shaw" {
		t.Errorf("token response patient %v, want pat-amy-shaw", got)
	}
	if got := tok.Extra("need_patient_banner"); got != true {
		t.Errorf("token response need_patient_banner %v, want true", got)
	}
	if d := cmp.Diff(scopeSet(patientScope), scopeSet(tok.Extra("scope"))); d != "" {
		t.Errorf("granted scope differs from the requested and approved one (-want +got):\n%s", d)
	}
	if tok.RefreshToken == "" {
		t.Errorf("no refresh_token although offline_access was granted")
	}
	if d := time.Until(tok.Expiry); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("access token expires in %s, want about 1 h (user grants)", d)
	}
	style, _ := tok.Extra("smart_style_url").(string)
	if style == "" {
		t.Errorf("token response has no smart_style_url (context-style)")
	} else {
		resp, body := get(t, style)
		var doc map[string]any
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &doc) != nil {
			t.Errorf("smart_style_url %s: want 200 with a JSON style document, got %d %.200s", style, resp.StatusCode, body)
		}
	}
	at := jwtClaims(t, tok.AccessToken)
	if at["patient"] != "pat-amy-shaw" || at["aud"] != f.fhirBase || at["client_id"] != f.patientApp.ClientID || at["iss"] != f.s.URL {
		t.Errorf("access token claims patient %v aud %v client_id %v iss %v; want pat-amy-shaw, %s, %s, %s", at["patient"], at["aud"], at["client_id"], at["iss"], f.fhirBase, f.patientApp.ClientID, f.s.URL)
	}

	idt, claims := a.verifyIDToken(t, tok)
	if want := f.fhirBase + "/Patient/pat-amy-shaw"; claims["fhirUser"] != want {
		t.Errorf("id_token fhirUser %v, want the absolute URL %s", claims["fhirUser"], want)
	}
	if authTime, _ := claims["auth_time"].(float64); int64(authTime) < before || int64(authTime) > time.Now().Unix()+1 {
		t.Errorf("id_token auth_time %v is not the time of this sign-in (after %d)", claims["auth_time"], before)
	}
	if at["sub"] != idt.Subject {
		t.Errorf("access token sub %v differs from the id_token's %q", at["sub"], idt.Subject)
	}

	// userinfo through go-oidc, with the access token.
	ui, err := f.provider.UserInfo(f.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("go-oidc UserInfo: %v", err)
	}
	var uc map[string]any
	if err := ui.Claims(&uc); err != nil {
		t.Fatal(err)
	}
	if ui.Subject != idt.Subject || uc["fhirUser"] != f.fhirBase+"/Patient/pat-amy-shaw" || uc["preferred_username"] != "amy.shaw" {
		t.Errorf("userinfo %v: want sub %s, fhirUser %s/Patient/pat-amy-shaw, preferred_username amy.shaw", uc, idt.Subject, f.fhirBase)
	}

	// The FHIR API serves Amy's record and hides everyone else's.
	f.wantFHIR(t, "own record", tok.AccessToken, "/Patient/pat-amy-shaw", http.StatusOK)
	f.wantFHIR(t, "another patient's record under patient/ scopes", tok.AccessToken, "/Patient/pat-jose-alvarez", http.StatusNotFound)
}

// smartPractitionerPicksPatient is a practitioner's standalone launch: she
// searches the picker by name and picks a patient, whose data the token then
// reads, and nobody else's.
func smartPractitionerPicksPatient(t *testing.T, f *smartFixture) {
	b, ines := f.user(t, "ines.munoz")
	ines.search, ines.pick = url.Values{"name": {"Brooks"}}, "pat-eleanor-brooks"
	const scope = "openid fhirUser launch/patient patient/*.rs offline_access"
	a := f.request(f.clinicianApp, scope)
	tok, fl := a.run(t, b, ines)
	if !slices.Equal(fl.pages, []string{"login", "select-patient", "consent"}) {
		t.Errorf("a practitioner's standalone launch showed pages %v, want [login select-patient consent]", fl.pages)
	}
	if got := tok.Extra("patient"); got != "pat-eleanor-brooks" {
		t.Errorf("token response patient %v, want the picked pat-eleanor-brooks", got)
	}
	if got := jwtClaims(t, tok.AccessToken)["patient"]; got != "pat-eleanor-brooks" {
		t.Errorf("access token patient claim %v, want pat-eleanor-brooks", got)
	}
	_, claims := a.verifyIDToken(t, tok)
	if want := f.fhirBase + "/Practitioner/pra-ines-munoz"; claims["fhirUser"] != want {
		t.Errorf("id_token fhirUser %v, want the absolute URL %s", claims["fhirUser"], want)
	}
	f.wantFHIR(t, "the picked patient", tok.AccessToken, "/Patient/pat-eleanor-brooks", http.StatusOK)
	r := f.wantFHIR(t, "the picked patient's observations", tok.AccessToken, "/Observation?patient=pat-eleanor-brooks&_count=5", http.StatusOK)
	var bundle struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if json.Unmarshal(r.body, &bundle) != nil || len(bundle.Entry) == 0 {
		t.Errorf("Observation search for the picked patient returned no entries: %.300s", r.body)
	}
	f.wantFHIR(t, "another patient under patient/ scopes", tok.AccessToken, "/Patient/pat-amy-shaw", http.StatusNotFound)
	f.wantFHIR(t, "another patient's observation under patient/ scopes", tok.AccessToken, "/Observation/obs-amy-shaw-bp-1", http.StatusNotFound)

	// The picker searches: a name that matches nobody offers nobody.
	b2, ines2 := f.user(t, "ines.munoz")
	l := b2.get(f.request(f.clinicianApp, scope).url())
	l = b2.submit(l.page.form(t, "#login"), fill{set: map[string]string{"username": ines2.username, "password": ines2.password}}, "action=login")
	if l.page == nil || len(l.page.forms("#patient-search")) != 1 {
		t.Fatalf("after signing in, want the patient picker; got %s", l)
	}
	l = b2.submit(l.page.form(t, "#patient-search"), fill{set: map[string]string{"name": "Nobody-Matches-This"}}, "")
	if l.page == nil || len(l.page.forms(".pick")) != 0 {
		t.Errorf("a search for a name nobody has still offers patients: %s", l)
	}
}

// smartRefreshRotationAndScopes covers refresh with x/oauth2: rotation,
// narrowing, widening refused, and reuse of a rotated token revoking the
// grant (DESIGN.md "Tokens and grants").
func smartRefreshRotationAndScopes(t *testing.T, f *smartFixture) {
	b, amy := f.user(t, "amy.shaw")
	a := f.request(f.patientApp, patientScope)
	tok, _ := a.run(t, b, amy)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh_token for offline_access")
	}
	first := tok.RefreshToken

	// x/oauth2 refreshes: new access and refresh tokens (rotation).
	tok2, err := f.refresh(a.conf, first)
	if err != nil {
		t.Fatalf("refresh with x/oauth2: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == first || tok2.AccessToken == tok.AccessToken {
		t.Fatalf("refresh did not rotate: refresh token new=%v, access token new=%v", tok2.RefreshToken != first && tok2.RefreshToken != "", tok2.AccessToken != tok.AccessToken)
	}
	if tok2.Extra("patient") != "pat-amy-shaw" || tok2.Extra("need_patient_banner") != true {
		t.Errorf("refreshed token response lost the launch context: patient %v need_patient_banner %v", tok2.Extra("patient"), tok2.Extra("need_patient_banner"))
	}
	if d := cmp.Diff(scopeSet(patientScope), scopeSet(tok2.Extra("scope"))); d != "" {
		t.Errorf("a refresh without scope keeps the grant's scopes (-want +got):\n%s", d)
	}
	f.wantFHIR(t, "refreshed access token", tok2.AccessToken, "/Patient/pat-amy-shaw", http.StatusOK)

	// Narrowing on refresh (RFC 6749 §6).
	narrow := "launch/patient patient/Patient.rs offline_access"
	r := postForm(t, f.s.tokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2.RefreshToken}, "scope": {narrow}}, creds{id: f.patientApp.ClientID})
	if r.status != http.StatusOK {
		t.Fatalf("refresh narrowing the scope to %q: want 200, got %s", narrow, r)
	}
	var nt struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
	}
	r.json(t, &nt)
	if d := cmp.Diff(scopeSet(narrow), scopeSet(nt.Scope)); d != "" {
		t.Errorf("narrowed refresh: granted scope (-want +got):\n%s", d)
	}
	f.wantFHIR(t, "narrowed token reads Patient", nt.AccessToken, "/Patient/pat-amy-shaw", http.StatusOK)
	f.wantFHIR(t, "narrowed token no longer reads Observation", nt.AccessToken, "/Observation?patient=pat-amy-shaw", http.StatusForbidden)

	// Widening: a scope outside the grant is dropped, never granted...
	r = postForm(t, f.s.tokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {nt.RefreshToken}, "scope": {"patient/Patient.rs user/*.rs"}}, creds{id: f.patientApp.ClientID})
	if r.status == http.StatusOK {
		var wt struct {
			RefreshToken string `json:"refresh_token"`
			Scope        string `json:"scope"`
		}
		r.json(t, &wt)
		if slices.Contains(strings.Fields(wt.Scope), "user/*.rs") {
			t.Errorf("a refresh widened the grant to user/*.rs: scope %q", wt.Scope)
		}
		nt.RefreshToken = wt.RefreshToken
	} else {
		wantOAuthError(t, "refresh widening the scope", r, http.StatusBadRequest, "invalid_scope", "user/*.rs")
	}
	// ...and a refresh asking only for more is refused.
	r = postForm(t, f.s.tokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {nt.RefreshToken}, "scope": {"user/*.rs"}}, creds{id: f.patientApp.ClientID})
	wantOAuthError(t, "refresh asking only for a scope outside the grant", r, http.StatusBadRequest, "invalid_scope", "user/*.rs")

	// Reuse of a rotated refresh token: invalid_grant, and the whole
	// grant is revoked (its newest refresh and access tokens too).
	_, err = f.refresh(a.conf, first)
	wantInvalidGrant(t, "reusing a rotated refresh token", err)
	f.waitFHIRRefused(t, "the newest access token after refresh-token reuse", tok2.AccessToken, "/Patient/pat-amy-shaw")
	_, err = f.refresh(a.conf, nt.RefreshToken)
	wantInvalidGrant(t, "the newest refresh token after refresh-token reuse revoked the grant", err)
}

// smartConsentRememberedAndUnticked checks that unticked scopes are not
// granted and that consent is remembered per user, client and scope set.
func smartConsentRememberedAndUnticked(t *testing.T, f *smartFixture) {
	b, amy := f.user(t, "amy.shaw")
	// First time: untick fhirUser and offline_access.
	a := f.request(f.consentApp, patientScope)
	amy.untick = []string{"fhirUser", "offline_access"}
	tok, fl := a.run(t, b, amy)
	if !slices.Equal(fl.pages, []string{"login", "consent"}) {
		t.Errorf("first authorization showed pages %v, want [login consent]", fl.pages)
	}
	granted := scopeSet(tok.Extra("scope"))
	for _, sc := range amy.untick {
		if slices.Contains(granted, sc) {
			t.Errorf("unticked scope %s was granted: scope %v", sc, granted)
		}
	}
	if d := cmp.Diff(scopeSet("openid profile launch/patient patient/*.rs"), granted); d != "" {
		t.Errorf("granted scope after unticking fhirUser and offline_access (-want +got):\n%s", d)
	}
	if tok.RefreshToken != "" {
		t.Errorf("a refresh token was issued although offline_access was unticked")
	}
	if _, claims := a.verifyIDToken(t, tok); claims["fhirUser"] != nil {
		t.Errorf("id_token carries fhirUser %v although fhirUser was unticked", claims["fhirUser"])
	}
	at := jwtClaims(t, tok.AccessToken)
	if slices.Contains(strings.Fields(fmt.Sprint(at["scope"])), "fhirUser") {
		t.Errorf("access token scope %v carries the unticked fhirUser", at["scope"])
	}

	// The same request again from the same session: the remembered
	// consent covers it, so straight back with a code.
	amy.untick = nil
	a2 := f.request(f.consentApp, "openid profile launch/patient patient/*.rs")
	tok2, fl2 := a2.run(t, b, person{})
	if len(fl2.pages) != 0 {
		t.Errorf("second authorization with the same session and the consented scopes showed pages %v, want none", fl2.pages)
	}
	if tok2.Extra("patient") != "pat-amy-shaw" {
		t.Errorf("remembered consent: patient %v, want pat-amy-shaw", tok2.Extra("patient"))
	}
	// Asking again for what was unticked shows the consent page.
	a3 := f.request(f.consentApp, patientScope)
	_, fl3 := a3.run(t, b, amy)
	if !slices.Equal(fl3.pages, []string{"consent"}) {
		t.Errorf("a request for scopes the user unticked before showed pages %v, want [consent]", fl3.pages)
	}
	// Now everything is consented: no page at all.
	a4 := f.request(f.consentApp, patientScope)
	tok4, fl4 := a4.run(t, b, person{})
	if len(fl4.pages) != 0 {
		t.Errorf("after consenting to every scope, a new authorization showed pages %v, want none", fl4.pages)
	}
	if d := cmp.Diff(scopeSet(patientScope), scopeSet(tok4.Extra("scope"))); d != "" {
		t.Errorf("remembered full consent: granted scope (-want +got):\n%s", d)
	}
}

// smartDemoClients runs a flow with demo-patient-app from
// <data-dir>/dev-clients.json.
func smartDemoClients(t *testing.T, f *smartFixture) {
	raw, err := os.ReadFile(f.s.dataDir + "/dev-clients.json")
	if err != nil {
		knownBug(t, "serve --dev writes no <data-dir>/dev-clients.json (authorize-contract.md \"Dev mode\", DESIGN.md \"Dev mode\"): %v", err)
	}
	var clients []struct {
		ClientID     string   `json:"client_id"`
		ClientSecret string   `json:"client_secret"`
		Type         string   `json:"type"`
		RedirectURIs []string `json:"redirect_uris"`
		Scope        string   `json:"scope"`
	}
	if err := json.Unmarshal(raw, &clients); err != nil {
		t.Fatalf("dev-clients.json is not a JSON array of clients: %v: %s", err, raw)
	}
	var patientApp *cliClient
	ids := []string{}
	for _, c := range clients {
		ids = append(ids, c.ClientID)
		if c.ClientID == "demo-patient-app" {
			patientApp = &cliClient{ClientID: c.ClientID}
			if c.Type != "public" || !slices.Contains(c.RedirectURIs, registeredRedirect) {
				t.Errorf("demo-patient-app: type %q redirect_uris %v; want public with %s", c.Type, c.RedirectURIs, registeredRedirect)
			}
		}
	}
	for _, want := range []string{"demo-patient-app", "demo-clinician-app", "demo-backend"} {
		if !slices.Contains(ids, want) {
			t.Errorf("dev-clients.json lacks %s: %v", want, ids)
		}
	}
	if patientApp == nil {
		t.FailNow()
	}
	b, amy := f.user(t, "amy.shaw")
	a := f.request(*patientApp, "openid fhirUser launch/patient patient/*.rs offline_access")
	tok, _ := a.run(t, b, amy)
	if tok.Extra("patient") != "pat-amy-shaw" {
		t.Errorf("demo-patient-app: patient %v", tok.Extra("patient"))
	}
}
