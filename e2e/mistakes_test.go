package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smartgate/internal/problem"
)

// explained checks the contract every refusal keeps (USERS.md, "what went
// wrong"): the answer names the cause and the fix (words), carries the
// request id, and its error_uri points at a catalogue entry that exists
// and is served.
func explained(t *testing.T, s *devServer, what string, r reply, status int, words ...string) {
	t.Helper()
	var body struct {
		Error, ErrorDescription, ErrorURI, RequestID string
		Issue                                        []struct {
			Details struct {
				Coding []struct{ Code string } `json:"coding"`
				Text   string                  `json:"text"`
			} `json:"details"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("%s: the answer is not JSON: %s", what, r)
	}
	_ = json.Unmarshal(r.body, &body)
	desc, uri, rid := stringOf(raw["error_description"]), stringOf(raw["error_uri"]), stringOf(raw["request_id"])
	if len(body.Issue) == 1 { // a FHIR OperationOutcome
		desc = body.Issue[0].Details.Text
		diag := body.Issue[0].Diagnostics
		if i := strings.Index(diag, "See "); i >= 0 {
			uri = strings.Fields(diag[i+4:])[0]
		}
		if i := strings.Index(diag, "request id "); i >= 0 {
			rid = strings.TrimRight(strings.Fields(diag[i+len("request id "):])[0], ")")
		}
	}
	if r.status != status {
		t.Errorf("%s: HTTP %d, want %d: %s", what, r.status, status, r)
	}
	for _, w := range words {
		if !strings.Contains(desc, w) {
			t.Errorf("%s: the description does not say %q: %q", what, w, desc)
		}
	}
	if rid == "" || rid != r.header.Get("X-Request-Id") {
		t.Errorf("%s: request id %q in the body, %q in X-Request-Id", what, rid, r.header.Get("X-Request-Id"))
	}
	id, ok := strings.CutPrefix(uri, s.URL+"/docs/errors#")
	if !ok {
		t.Errorf("%s: error_uri %q does not point into %s/docs/errors", what, uri, s.URL)
		return
	}
	if _, known := problem.Lookup(problem.ID(id)); !known {
		t.Errorf("%s: error_uri names %q, which the catalogue does not have", what, id)
	}
	page := do(t, http.MethodGet, s.URL+"/docs/errors", nil, http.Header{"Accept": {"text/html"}})
	if page.status != 200 || !strings.Contains(string(page.body), `id="`+id+`"`) {
		t.Errorf("%s: /docs/errors has no entry with id %q", what, id)
	}
}

func stringOf(v any) string { s, _ := v.(string); return s }

func form(v url.Values) (*strings.Reader, http.Header) {
	return strings.NewReader(v.Encode()), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
}

// TestReportedMistakes replays each mistake USERS.md reports from the
// system smartgate replaces, and checks that the answer now names the
// cause and the fix.
func TestReportedMistakes(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	backend := s.createClient(t, "mistakes backend", "--type", "confidential-symmetric", "--grant-type", "client_credentials", "--scope", "system/Patient.rs")
	basic := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	basic.Set("Authorization", "Basic "+basicAuth(backend.ClientID, backend.ClientSecret))
	tokenURL := s.URL + "/oauth2/token"

	// 1. A code that never came from /authorize (the saved browser state
	// was missing), and an authorization request without state.
	b, h := form(url.Values{"grant_type": {"authorization_code"}, "code": {"made-up"}, "client_id": {"demo-patient-app"}, "redirect_uri": {"http://127.0.0.1:9/callback"}, "code_verifier": {strings.Repeat("v", 43)}})
	explained(t, s, "a code that never came from authorize", do(t, http.MethodPost, tokenURL, b, h), 400, "code is not known here", "issued by another server")
	q := url.Values{"response_type": {"code"}, "client_id": {"demo-patient-app"}, "redirect_uri": {"http://127.0.0.1:9/callback"}, "scope": {"openid patient/*.rs launch/patient"},
		"aud": {s.URL + "/fhir"}, "code_challenge": {strings.Repeat("A", 43)}, "code_challenge_method": {"S256"}}
	r := do(t, http.MethodGet, s.URL+"/oauth2/authorize?"+q.Encode(), nil, http.Header{"Accept": {"text/html"}})
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || loc == nil || loc.Query().Get("error") != "invalid_request" || !strings.Contains(loc.Query().Get("error_description"), "state is missing") ||
		!strings.HasPrefix(loc.Query().Get("error_uri"), s.URL+"/docs/errors#") {
		t.Errorf("authorize without state: %s Location %q; want a redirect naming state, with error_uri", r, r.header.Get("Location"))
	}

	// 2. The authorize request as a JSON POST from a script.
	r = do(t, http.MethodPost, s.URL+"/oauth2/authorize", strings.NewReader(`{"client_id":"demo-patient-app","response_type":"code"}`), http.Header{"Content-Type": {"application/json"}})
	explained(t, s, "authorize as a JSON POST", r, 400, "browser step", "client_credentials", "smartgate token")

	// 3. A token from another server, 4. a bearer value that is not a JWT.
	other := startDev(t)
	otherClient := other.createClient(t, "other", "--type", "confidential-symmetric", "--grant-type", "client_credentials", "--scope", "system/Patient.rs")
	ob, oh := form(url.Values{"grant_type": {"client_credentials"}})
	oh.Set("Authorization", "Basic "+basicAuth(otherClient.ClientID, otherClient.ClientSecret))
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	do(t, http.MethodPost, other.URL+"/oauth2/token", ob, oh).json(t, &tr)
	r = do(t, http.MethodGet, s.URL+"/fhir/Patient", nil, http.Header{"Authorization": {"Bearer " + tr.AccessToken}})
	explained(t, s, "a token from another server", r, 401, "not issued here")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("a token from another server: WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	r = do(t, http.MethodGet, s.URL+"/fhir/Patient", nil, http.Header{"Authorization": {"Bearer not-a-jwt"}})
	explained(t, s, "a bearer value that is not a JWT", r, 401, "not a signed JWT", "send the access_token value")

	// 6. A scope that is unknown (mistyped), or not registered.
	b, _ = form(url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patiet.rs"}})
	explained(t, s, "an unknown scope", do(t, http.MethodPost, tokenURL, b, basic), 400, "system/Patiet.rs", "Patient")
	b, _ = form(url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs"}})
	explained(t, s, "a scope not registered", do(t, http.MethodPost, tokenURL, b, basic), 400, "system/Observation.rs", "regist")
	disc := do(t, http.MethodGet, s.URL+"/.well-known/openid-configuration", nil, nil)
	if !strings.Contains(string(disc.body), `"scopes_supported"`) {
		t.Errorf("discovery lists no scopes_supported")
	}

	// 9. A disabled client: the answer names the command that enables it.
	s.clientAct(t, "disable", backend.ClientID)
	waitFor(t, propagation, "the disabled client is refused", func() (bool, string) {
		b, _ := form(url.Values{"grant_type": {"client_credentials"}})
		r := do(t, http.MethodPost, tokenURL, b, basic)
		return r.status == 401, r.String()
	})
	b, _ = form(url.Values{"grant_type": {"client_credentials"}})
	explained(t, s, "a disabled client", do(t, http.MethodPost, tokenURL, b, basic), 401, "disabled", "smartgate client enable "+backend.ClientID)

	// 8. The password grant while it is off.
	b, h = form(url.Values{"grant_type": {"password"}, "username": {"amy.shaw"}, "password": {"x"}, "client_id": {"demo-patient-app"}})
	explained(t, s, "the password grant while off", do(t, http.MethodPost, tokenURL, b, h), 400, "password grant is off", "authorize.password_grant_roles")

	// 7. An http:// issuer outside dev mode, and 4. key files: world-
	// readable or unreadable. Each refusal names the setting and points at
	// its catalogue entry.
	kekFile := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kekFile, []byte(newKEK(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func() []string
		id    problem.ID
		words []string
	}{
		{"http issuer", func() []string {
			return []string{"serve", "--issuer", "http://ehr.example.org", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}
		}, problem.InsecureIssuer, []string{"issuer", "https://"}},
		{"world-readable KEK file", func() []string {
			f := filepath.Join(t.TempDir(), "kek")
			_ = os.WriteFile(f, []byte(newKEK(t)+"\n"), 0o600)
			_ = os.Chmod(f, 0o644)
			return []string{"serve", "--issuer", "https://ehr.example.org", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--config", writeConfig(t, "kek_file: "+f+"\ntrusted_proxies: [127.0.0.1]\n")}
		}, problem.KEKPermissions, []string{"chmod 600"}},
		{"unreadable KEK file", func() []string {
			missing := filepath.Join(t.TempDir(), "no-such-kek")
			return []string{"serve", "--issuer", "https://ehr.example.org", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--config", writeConfig(t, "kek_file: "+missing+"\ntrusted_proxies: [127.0.0.1]\n")}
		}, problem.KEKMissing, []string{"no-such-kek"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := refused(t, baseEnv(), tc.setup()...)
			if !strings.Contains(res.stderr, "docs/errors.md#"+string(tc.id)) && !strings.Contains(res.stderr, string(tc.id)) {
				t.Errorf("%s: the refusal does not point at %s: %s", tc.name, tc.id, res)
			}
			for _, w := range tc.words {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("%s: the refusal does not say %q: %s", tc.name, w, res)
				}
			}
			if strings.Contains(res.stderr, "goroutine") || strings.Contains(res.stderr, "panic") {
				t.Errorf("%s: a stack trace reached the user: %s", tc.name, res)
			}
		})
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "smartgate.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
