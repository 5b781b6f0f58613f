package e2e

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// chromiumPath is Debian's Chromium (package chromium). The tests never
// download a browser of their own.
const chromiumPath = "/usr/bin/chromium"

// browserScope is what the test SMART app asks for and registers: a
// patient-level app with the patient's identity and a refresh token.
const browserScope = "openid fhirUser launch/patient patient/Patient.rs offline_access"

// browserProject checks for Chromium, Node.js and npm, then copies e2e/browser
// (the driver script, the app pages and the locked packages) to a temporary
// directory and installs playwright-core and fhirclient there with `npm ci`.
// It skips the test loudly when Chromium is missing, unless
// SMARTGATE_REQUIRE_BROWSER=1 makes that a failure (and likewise for Node.js
// with SMARTGATE_REQUIRE_NODE=1).
func browserProject(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("SMARTGATE_REQUIRE_BROWSER") == "1" {
			t.Fatalf("%s: %v, and SMARTGATE_REQUIRE_BROWSER=1: install Debian's chromium (apt-get install --no-install-recommends chromium)", chromiumPath, err)
		}
		t.Skipf("SKIPPED: %s is missing: the real-browser SMART launch test did not run (apt-get install --no-install-recommends chromium, or set SMARTGATE_REQUIRE_BROWSER=1 to make this a failure)", chromiumPath)
	}
	// .npmrc leaves out fhirclient's optional React Native dependencies.
	return npmProject(t, "browser", "the real-browser tests")
}

// smartApp serves the test SMART app from the installed project dir:
// launch.html and index.html, fhirclient's browser build, and config.js
// naming the server, the client and the scope it asks for.
func smartApp(t *testing.T, dir, iss, clientID, scope string) http.Handler {
	t.Helper()
	config, err := json.Marshal(map[string]string{"iss": iss, "clientId": clientID, "scope": scope})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"/config.js": []byte("window.smartApp = " + string(config) + ";\n")}
	for path, src := range map[string]string{
		"/launch.html":    "app/launch.html",
		"/index.html":     "app/index.html",
		"/fhir-client.js": "node_modules/fhirclient/build/fhir-client.js",
	} {
		b, err := os.ReadFile(filepath.Join(dir, src))
		if err != nil {
			t.Fatalf("the SMART app's %s: %v", path, err)
		}
		files[path] = b
	}
	// Not http.FileServer: it redirects /index.html to ./ and drops the
	// query, which carries the authorization response.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if r.URL.Path == "/favicon.ico" {
			w.WriteHeader(http.StatusNoContent) // no 404 noise in the console
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", mime.TypeByExtension(filepath.Ext(r.URL.Path)))
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
}

// devUser returns the password and fhirUser of a demo user from
// <data-dir>/dev-users.json.
func devUser(t *testing.T, dataDir, username string) (password, fhirUser string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "dev-users.json"))
	if err != nil {
		t.Fatalf("dev-users.json: %v", err)
	}
	var users []struct{ Username, Password, FHIRUser string }
	if err := json.Unmarshal(raw, &users); err != nil {
		t.Fatalf("dev-users.json: %v", err)
	}
	for _, u := range users {
		if u.Username == username {
			return u.Password, u.FHIRUser
		}
	}
	t.Fatalf("dev-users.json has no user %s", username)
	return "", ""
}

// browserReport is what standalone.mjs prints.
type browserReport struct {
	OK          bool              `json:"ok"`
	Step        string            `json:"step"`
	Navigations []string          `json:"navigations"`
	Authorize   map[string]string `json:"authorize"`
	Login       *struct {
		URL string `json:"url"`
	} `json:"login"`
	Consent *struct {
		URL    string `json:"url"`
		Scopes []struct {
			Value   string `json:"value"`
			Checked bool   `json:"checked"`
		} `json:"scopes"`
		Text string `json:"text"`
	} `json:"consent"`
	App *struct {
		URL     string `json:"url"`
		Result  string `json:"result"`
		Error   string `json:"error"`
		Details struct {
			Patient         string `json:"patient"`
			FHIRUser        string `json:"fhirUser"`
			Scope           string `json:"scope"`
			TokenType       string `json:"token_type"`
			HasIDToken      bool   `json:"has_id_token"`
			HasRefreshToken bool   `json:"has_refresh_token"`
			ResourceType    string `json:"resourceType"`
			ID              string `json:"id"`
			Name            string `json:"name"`
		} `json:"details"`
	} `json:"app"`
	Console    []string `json:"console"`
	Error      string   `json:"error"`
	URL        string   `json:"url"`
	PageText   string   `json:"pageText"`
	Screenshot string   `json:"screenshot"`
}

// diagnosis is everything a reader needs when the browser run failed.
func (r browserReport) diagnosis() string {
	return fmt.Sprintf("failed at step %q: %s\npage %s\nscreenshot: %s (kept with go test -artifacts)\nnavigations:\n  %s\nbrowser console:\n  %s\npage text:\n%s",
		r.Step, r.Error, r.URL, r.Screenshot, strings.Join(r.Navigations, "\n  "), strings.Join(r.Console, "\n  "), r.PageText)
}

// lastLines is the last n lines of a log.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestBrowserSMARTStandaloneLaunch: the HL7 reference SMART client
// (fhirclient, its browser build) in headless Chromium runs a SMART App
// Launch 2.2 standalone patient launch against `serve --dev`: discovery,
// authorization code with PKCE S256 through the real login and consent
// pages, the token exchange and a FHIR read with the token, all from a page
// on another origin (so CORS too). The demo patient user gets their own
// record in context, without a patient picker.
func TestBrowserSMARTStandaloneLaunch(t *testing.T) {
	t.Parallel()
	dir := browserProject(t)
	s := startDev(t)
	password, fhirUser := devUser(t, s.dataDir, "amy.shaw")

	appURL, _ := startBrowserApp(t, s, dir, "e2e browser SMART app", browserScope, []string{"authorization_code", "refresh_token"},
		"enabled", "a public app asking only patient-level scopes should be enabled at once")
	redirectURI := appURL + "/index.html"

	artifacts := t.ArtifactDir()
	out := runNode(t, dir, "standalone.mjs",
		"CHROMIUM="+chromiumPath,
		"ARTIFACT_DIR="+artifacts,
		"APP_URL="+appURL,
		"ISSUER="+s.URL,
		"USERNAME=amy.shaw",
		"PASSWORD="+password,
		"STEP_TIMEOUT_MS=15000",
	)
	var r browserReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("standalone.mjs output is not its JSON report: %v\n%s", err, out)
	}
	if !r.OK {
		t.Fatalf("the browser launch %s\nsmartgate log (the end):\n%s", r.diagnosis(), lastLines(s.stderr.String(), 40))
	}
	t.Logf("navigations:\n  %s", strings.Join(r.Navigations, "\n  "))

	// fhirclient's authorization request (SMART App Launch 2.2 section
	// "Request authorization"): PKCE S256, aud = the FHIR base.
	if a := r.Authorize; a == nil {
		t.Errorf("no request to %s/oauth2/authorize among the navigations", s.URL)
	} else if a["code_challenge_method"] != "S256" || a["code_challenge"] == "" || a["aud"] != s.URL+"/fhir" || a["scope"] != browserScope {
		t.Errorf("authorization request %v: want code_challenge_method S256, a code_challenge, aud %s/fhir and scope %q", a, s.URL, browserScope)
	}
	if r.Login.URL != s.URL+"/login" {
		t.Errorf("login page at %s, want %s/login", r.Login.URL, s.URL)
	}

	// The consent page lists every requested scope, ticked (the contract:
	// one checkbox per requested scope).
	if r.Consent.URL != s.URL+"/consent" {
		t.Errorf("consent page at %s, want %s/consent", r.Consent.URL, s.URL)
	}
	var listed []string
	for _, sc := range r.Consent.Scopes {
		listed = append(listed, sc.Value)
		if !sc.Checked {
			t.Errorf("consent page: scope %s is not ticked by default", sc.Value)
		}
	}
	for _, want := range strings.Fields(browserScope) {
		if !slices.Contains(listed, want) {
			t.Errorf("consent page lists scopes %v; %s is missing\npage text:\n%s", listed, want, r.Consent.Text)
		}
	}

	// The app read the patient in context: the patient user's own record.
	d := r.App.Details
	if d.Patient != "pat-amy-shaw" || d.ID != "pat-amy-shaw" || d.ResourceType != "Patient" || !strings.HasPrefix(r.App.Result, "pat-amy-shaw: ") {
		t.Errorf("app shows %q (patient in context %q, read %s/%s); want Patient pat-amy-shaw", r.App.Result, d.Patient, d.ResourceType, d.ID)
	}
	if d.Name == "" {
		t.Errorf("app read Patient %s without a name: %q", d.ID, r.App.Result)
	}
	if r.App.URL != redirectURI {
		t.Errorf("the app ended at %s, want the redirect URI %s", r.App.URL, redirectURI)
	}
	// The authorization response carries code, state and iss (RFC 9207).
	answered := false
	for _, n := range r.Navigations {
		if params, ok := strings.CutPrefix(n, "GET "+redirectURI+" ?"); ok {
			names := strings.Split(params, "&")
			answered = answered || slices.Contains(names, "code") && slices.Contains(names, "iss") && slices.Contains(names, "state")
		}
	}
	if !answered {
		t.Errorf("no navigation to %s with code, iss and state (RFC 9207) in:\n  %s", redirectURI, strings.Join(r.Navigations, "\n  "))
	}
	granted := strings.Fields(d.Scope)
	for _, want := range []string{"openid", "fhirUser", "launch/patient", "patient/Patient.rs", "offline_access"} {
		if !slices.Contains(granted, want) {
			t.Errorf("token response scope %q lacks %s (all were approved)", d.Scope, want)
		}
	}
	if !d.HasIDToken || d.FHIRUser != fhirUser {
		t.Errorf("id_token: present %v, fhirUser %q; want one with fhirUser %s", d.HasIDToken, d.FHIRUser, fhirUser)
	}
	if !d.HasRefreshToken {
		t.Error("no refresh_token although offline_access was granted")
	}
	if !strings.EqualFold(d.TokenType, "bearer") {
		t.Errorf("token_type %q, want Bearer", d.TokenType)
	}
	t.Logf("consent page listed %v; the app shows %q with scope %q", listed, r.App.Result, d.Scope)
	if len(r.Console) > 0 {
		t.Logf("browser console:\n  %s", strings.Join(r.Console, "\n  "))
	}
}
