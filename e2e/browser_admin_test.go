package e2e

// Real-browser tests of smartgate's own pages (issue 8 item 6), in the
// harness of browser_test.go (Debian's Chromium driven by playwright-core,
// the HL7 reference SMART client as the app): an administrator approves a
// pending app in the console and the app then completes a launch; a
// patient revokes an app at /account/apps and its token dies; the
// walkthrough at /docs/try reaches its FHIR read.
//
// With SMARTGATE_SCREENSHOTS=1 (run locally, never in CI) the scripts also
// write a screenshot of each smartgate page they pass through to docs/img,
// under the names the docs use:
//
//	SMARTGATE_SCREENSHOTS=1 go test ./e2e -run Browser -count=1

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pageReport is what the scripts built on e2e/browser/lib.mjs print.
type pageReport struct {
	OK          bool            `json:"ok"`
	Step        string          `json:"step"`
	Navigations []string        `json:"navigations"`
	Console     []string        `json:"console"`
	Screenshots []string        `json:"screenshots"`
	Facts       json.RawMessage `json:"facts"`
	Error       string          `json:"error"`
	URL         string          `json:"url"`
	PageText    string          `json:"pageText"`
	Screenshot  string          `json:"screenshot"`
}

// screenshotDir is docs/img when SMARTGATE_SCREENSHOTS=1, else "" (the
// scripts then write nothing).
func screenshotDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("SMARTGATE_SCREENSHOTS") != "1" {
		return ""
	}
	dir, err := filepath.Abs(filepath.Join("..", "docs", "img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runPage runs a page script of the installed project dir against s,
// fails the test with everything a reader needs unless the script got to
// its end, and decodes the script's facts into facts. With screenshots on,
// it checks that the script wrote exactly the named shots, which the docs
// link to.
func runPage(t *testing.T, s *devServer, dir, script string, facts any, shots []string, extraEnv ...string) pageReport {
	t.Helper()
	shotDir := screenshotDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = nodeEnv(append([]string{
		"CHROMIUM=" + chromiumPath,
		"ARTIFACT_DIR=" + t.ArtifactDir(),
		"ISSUER=" + s.URL,
		"STEP_TIMEOUT_MS=20000",
		"SCREENSHOT_DIR=" + shotDir,
	}, extraEnv...)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	var r pageReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("%s's output is not its JSON report: %v\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	if !r.OK {
		t.Fatalf("%s failed at step %q: %s\npage %s\nscreenshot: %s (kept with go test -artifacts)\nfacts so far: %s\nnavigations:\n  %s\nbrowser console:\n  %s\npage text:\n%s\nsmartgate log (the end):\n%s",
			script, r.Step, r.Error, r.URL, r.Screenshot, r.Facts, strings.Join(r.Navigations, "\n  "), strings.Join(r.Console, "\n  "), r.PageText, lastLines(s.stderr.String(), 40))
	}
	if err := json.Unmarshal(r.Facts, facts); err != nil {
		t.Fatalf("%s's facts: %v\n%s", script, err, r.Facts)
	}
	t.Logf("%s: navigations:\n  %s", script, strings.Join(r.Navigations, "\n  "))
	if shotDir != "" {
		if !slices.Equal(r.Screenshots, shots) {
			t.Errorf("%s wrote screenshots %v, want %v (the names the docs link to)", script, r.Screenshots, shots)
		}
		t.Logf("screenshots in %s: %v", shotDir, r.Screenshots)
	}
	return r
}

// startBrowserApp registers the test app (e2e/browser/app) with s as a
// public client named name, redirecting to its index.html, fails unless
// the registration's status is wantStatus (why says why it should be), and
// starts the app with the client id. The app's address is its redirect
// URI, so it is known before the registration, and the client id before
// the app serves config.js. It returns the app's origin and the client id.
func startBrowserApp(t *testing.T, s *devServer, dir, name, scope string, grants []string, wantStatus, why string) (appURL, clientID string) {
	t.Helper()
	app := httptest.NewUnstartedServer(nil)
	t.Cleanup(app.Close)
	appURL = "http://" + app.Listener.Addr().String()
	reg := mustRegister(t, s.URL, "", map[string]any{
		"client_name":                name,
		"redirect_uris":              []string{appURL + "/index.html"},
		"token_endpoint_auth_method": "none",
		"grant_types":                grants,
		"response_types":             []string{"code"},
		"scope":                      scope,
	})
	if reg.Status != wantStatus {
		t.Fatalf("%s; registration says %q: %s", why, reg.Status, reg.StatusDescription)
	}
	app.Config.Handler = smartApp(t, dir, s.URL+"/fhir", reg.ClientID, scope)
	app.Start()
	return appURL, reg.ClientID
}

// consentScopes is the checkboxes of the consent page.
type consentScopes []struct {
	Value   string `json:"value"`
	Checked bool   `json:"checked"`
}

// check fails unless every scope in want is listed and ticked.
func (c consentScopes) check(t *testing.T, want string) {
	t.Helper()
	var listed []string
	for _, sc := range c {
		listed = append(listed, sc.Value)
		if !sc.Checked {
			t.Errorf("consent page: scope %s is not ticked by default", sc.Value)
		}
	}
	for _, w := range strings.Fields(want) {
		if !slices.Contains(listed, w) {
			t.Errorf("consent page lists scopes %v; %s is missing", listed, w)
		}
	}
}

// TestBrowserAdminApprovesPendingApp: a public app asking for user/ scopes
// registers itself with POST /oauth2/register and waits for approval. The
// demo admin signs in to the console (/admin/apps sends them through
// /login and back), finds the app among those waiting and approves it.
// Then, in another browser context, the app (fhirclient) launches for the
// practitioner ines.munoz: sign-in, the patient picker (a search, then a
// pick), consent, and a read of the picked Patient with the token.
func TestBrowserAdminApprovesPendingApp(t *testing.T) {
	t.Parallel()
	dir := browserProject(t)
	s := startDev(t)
	adminPassword, _ := devUser(t, s.dataDir, "admin")
	password, fhirUser := devUser(t, s.dataDir, "ines.munoz")
	const (
		name    = "Ward dashboard"
		scope   = "openid fhirUser launch/patient user/Patient.rs"
		patient = "pat-eleanor-brooks"
	)

	appURL, clientID := startBrowserApp(t, s, dir, name, scope, []string{"authorization_code"},
		"pending", "an app asking for user/ scopes should wait for approval")

	var f struct {
		AdminLoginURL  string        `json:"adminLoginURL"`
		AdminLoginNext string        `json:"adminLoginNext"`
		AdminAppsURL   string        `json:"adminAppsURL"`
		PendingRow     string        `json:"pendingRow"`
		ApprovedURL    string        `json:"approvedURL"`
		Notice         string        `json:"notice"`
		Status         string        `json:"status"`
		LoginText      string        `json:"loginText"`
		PickerURL      string        `json:"pickerURL"`
		Offered        []string      `json:"offered"`
		ConsentURL     string        `json:"consentURL"`
		ConsentText    string        `json:"consentText"`
		ConsentScopes  consentScopes `json:"consentScopes"`
		App            struct {
			URL     string `json:"url"`
			Result  string `json:"result"`
			Details struct {
				Patient      string `json:"patient"`
				FHIRUser     string `json:"fhirUser"`
				Scope        string `json:"scope"`
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				Name         string `json:"name"`
			} `json:"details"`
		} `json:"app"`
	}
	runPage(t, s, dir, "admin.mjs", &f,
		[]string{"admin-login", "admin-apps", "admin-app", "clinician-login", "select-patient", "clinician-consent"},
		"ADMIN_USERNAME=admin", "ADMIN_PASSWORD="+adminPassword,
		"CLIENT_ID="+clientID, "APP_NAME="+name, "APP_URL="+appURL,
		"USERNAME=ines.munoz", "PASSWORD="+password,
		"PATIENT_SEARCH=Brooks", "PATIENT="+patient,
	)

	// The console.
	if f.AdminLoginURL != s.URL+"/login" || f.AdminLoginNext != "/admin/apps" {
		t.Errorf("/admin/apps before signing in went to %s with next=%q, want %s/login with next=/admin/apps", f.AdminLoginURL, f.AdminLoginNext, s.URL)
	}
	if f.AdminAppsURL != s.URL+"/admin/apps" {
		t.Errorf("signing in went to %s, want back to %s/admin/apps", f.AdminAppsURL, s.URL)
	}
	if !strings.Contains(f.PendingRow, name) || !strings.Contains(f.PendingRow, "user/Patient.rs") {
		t.Errorf("the pending app's row %q lacks its name or scopes", f.PendingRow)
	}
	if f.ApprovedURL != s.URL+"/admin/apps/"+clientID || !strings.Contains(f.Notice, "approved") || !strings.HasPrefix(f.Status, "enabled") {
		t.Errorf("approving: page %s, notice %q, status %q; want the app's page saying it is enabled (approved)", f.ApprovedURL, f.Notice, f.Status)
	}

	// The launch of the approved app.
	if !strings.Contains(f.LoginText, name) {
		t.Errorf("the sign-in page does not name the app %q: %s", name, f.LoginText)
	}
	if f.PickerURL != s.URL+"/select-patient" {
		t.Errorf("the patient picker at %s, want %s/select-patient", f.PickerURL, s.URL)
	}
	if !slices.Contains(f.Offered, patient) {
		t.Errorf("the picker's search for Brooks offered %v, without %s", f.Offered, patient)
	}
	if f.ConsentURL != s.URL+"/consent" || !strings.Contains(f.ConsentText, "Patient/"+patient) {
		t.Errorf("consent page at %s, want %s/consent naming Patient/%s: %s", f.ConsentURL, s.URL, patient, f.ConsentText)
	}
	f.ConsentScopes.check(t, scope)
	d := f.App.Details
	if d.Patient != patient || d.ResourceType != "Patient" || d.ID != patient || d.Name == "" {
		t.Errorf("the app shows %q (patient in context %q, read %s/%s); want the picked Patient %s with a name", f.App.Result, d.Patient, d.ResourceType, d.ID, patient)
	}
	if d.FHIRUser != fhirUser {
		t.Errorf("id_token fhirUser %q, want %s", d.FHIRUser, fhirUser)
	}
	if granted := strings.Fields(d.Scope); !slices.Contains(granted, "user/Patient.rs") || !slices.Contains(granted, "launch/patient") {
		t.Errorf("token response scope %q lacks user/Patient.rs or launch/patient", d.Scope)
	}
	if f.App.URL != appURL+"/index.html" {
		t.Errorf("the app ended at %s, want its redirect URI %s/index.html", f.App.URL, appURL)
	}
}

// TestBrowserRevokeAtAccountApps: a patient launches an app (fhirclient:
// sign-in, consent, a Patient read), then opens /account/apps in the same
// browser and clicks "Revoke access for …". The app's access token, which
// read the patient a moment before, is refused with 401 invalid_token
// within revocationWait.
func TestBrowserRevokeAtAccountApps(t *testing.T) {
	t.Parallel()
	dir := browserProject(t)
	s := startDev(t)
	password, _ := devUser(t, s.dataDir, "amy.shaw")
	const name = "My patient app"

	appURL, _ := startBrowserApp(t, s, dir, name, browserScope, []string{"authorization_code", "refresh_token"},
		"enabled", "a public app asking only patient-level scopes should be enabled at once")

	type read struct {
		Status          int    `json:"status"`
		WWWAuthenticate string `json:"wwwAuthenticate"`
		MS              int64  `json:"ms"`
	}
	var f struct {
		LoginText      string   `json:"loginText"`
		ConsentText    string   `json:"consentText"`
		AppResult      string   `json:"appResult"`
		AccessToken    string   `json:"accessToken"`
		Before         read     `json:"before"`
		AccountAppsURL string   `json:"accountAppsURL"`
		Listed         string   `json:"listed"`
		Notice         string   `json:"notice"`
		StillListed    int      `json:"stillListed"`
		After          read     `json:"after"`
		Tries          []string `json:"tries"`
	}
	runPage(t, s, dir, "revoke.mjs", &f,
		[]string{"login", "consent", "account-apps", "account-apps-revoked"},
		"APP_URL="+appURL, "APP_NAME="+name,
		"USERNAME=amy.shaw", "PASSWORD="+password, "PATIENT=pat-amy-shaw",
		"REVOKE_WAIT_MS="+strconv.FormatInt(revocationWait.Milliseconds(), 10),
	)

	if !strings.HasPrefix(f.AppResult, "pat-amy-shaw: ") {
		t.Errorf("the app shows %q, want Patient pat-amy-shaw", f.AppResult)
	}
	if f.Before.Status != http.StatusOK {
		t.Errorf("before the revoke, the app's token got HTTP %d", f.Before.Status)
	}
	if f.AccountAppsURL != s.URL+"/account/apps" || !strings.Contains(f.Listed, name) || !strings.Contains(f.Listed, "amy.shaw") {
		t.Errorf("/account/apps (at %s) does not list %q for amy.shaw: %s", f.AccountAppsURL, name, f.Listed)
	}
	if want := "Access for " + name + " was revoked"; !strings.Contains(f.Notice, want) || f.StillListed != 0 {
		t.Errorf("after the revoke: notice %q (want %q), the app's revoke button %d times on the page (want 0)", f.Notice, want, f.StillListed)
	}
	if f.After.Status != http.StatusUnauthorized || !strings.Contains(f.After.WWWAuthenticate, "invalid_token") || f.After.MS > revocationWait.Milliseconds() {
		t.Errorf("after the revoke, the app's token got HTTP %d (WWW-Authenticate %q) %d ms later; want 401 invalid_token within %s\ntries: %v",
			f.After.Status, f.After.WWWAuthenticate, f.After.MS, revocationWait, f.Tries)
	}
	t.Logf("the revoked token was refused %d ms after the revoke: %v", f.After.MS, f.Tries)

	// And it stays refused, whoever asks.
	r := do(t, http.MethodGet, s.URL+"/fhir/Patient/pat-amy-shaw", nil, bearer(f.AccessToken))
	if r.status != http.StatusUnauthorized {
		t.Errorf("the revoked token, sent again from Go: %s", r)
	}
}

// TestBrowserWalkthrough: /docs/try clicked through in a real browser as a
// newcomer would (Start, the authorization URL, sign-in and consent as the
// demo patient, the token request, the FHIR read), then on to the
// developer portal from the last step's link.
func TestBrowserWalkthrough(t *testing.T) {
	t.Parallel()
	dir := browserProject(t)
	s := startDev(t)
	password, _ := devUser(t, s.dataDir, "amy.shaw")

	var f struct {
		Step             string `json:"step"`
		DiscoveryStatus  string `json:"discoveryStatus"`
		AuthorizeURL     string `json:"authorizeURL"`
		CallbackURL      string `json:"callbackURL"`
		CallbackChecks   string `json:"callbackChecks"`
		TokenStatus      string `json:"tokenStatus"`
		TokenRequest     string `json:"tokenRequest"`
		FHIRStatus       string `json:"fhirStatus"`
		FHIRResourceType string `json:"fhirResourceType"`
		FHIRRequest      string `json:"fhirRequest"`
		Done             string `json:"done"`
		DevelopersURL    string `json:"developersURL"`
	}
	runPage(t, s, dir, "walkthrough.mjs", &f,
		[]string{"try-start", "try-authorize", "try-login", "try-consent", "try-callback", "try-token", "try-fhir", "developers"},
		"USERNAME=amy.shaw", "PASSWORD="+password,
	)

	if f.Step != "authorize" || f.DiscoveryStatus != "200" {
		t.Errorf("after Start: step %q, discovery status %q; want authorize and 200", f.Step, f.DiscoveryStatus)
	}
	if u, err := url.Parse(f.AuthorizeURL); err != nil || u.Query().Get("client_id") != "smartgate-walkthrough" || u.Query().Get("code_challenge_method") != "S256" {
		t.Errorf("authorization URL %q: want client_id smartgate-walkthrough and code_challenge_method S256", f.AuthorizeURL)
	}
	if f.CallbackURL != s.URL+"/docs/try/callback" {
		t.Errorf("after consent the browser went to %s, want %s/docs/try/callback", f.CallbackURL, s.URL)
	}
	if strings.Contains(f.CallbackChecks, "NOT") || strings.Contains(f.CallbackChecks, "must refuse") {
		t.Errorf("the callback checks failed: %s", f.CallbackChecks)
	}
	if f.TokenStatus != "200" || !strings.Contains(f.TokenRequest, "code_verifier=") {
		t.Errorf("token step: status %q, request %q; want 200 and a request with its code_verifier", f.TokenStatus, f.TokenRequest)
	}
	if f.FHIRStatus != "200" || f.FHIRResourceType != "Patient" || !strings.Contains(f.FHIRRequest, "Authorization: Bearer ") {
		t.Errorf("FHIR step: status %q, resourceType %q, request %q; want 200, Patient and the Authorization header", f.FHIRStatus, f.FHIRResourceType, f.FHIRRequest)
	}
	if !strings.Contains(f.Done, "Done.") {
		t.Errorf("#try-done says %q", f.Done)
	}
	if f.DevelopersURL != s.URL+"/developers" {
		t.Errorf("the last step's portal link went to %s", f.DevelopersURL)
	}
}
