package e2e

// End-to-end tests of the developer pages (issue 8 items 2-4,
// docs/portal.md): an app registered through the portal's form, whose
// page's authorization URL and curl commands (parsed from the page and
// sent as real HTTP requests) answer what the page says; the walkthrough
// to its final FHIR read; smartgate token --key-file. The page ids they use
// are listed at the top of each template.

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/net/html"
)

// byID returns the element of the page with this id, or nil.
func (p *htmlPage) byID(id string) *html.Node {
	if p.doc == nil {
		return nil
	}
	for n := range p.doc.Descendants() {
		if n.Type == html.ElementNode {
			if v, _ := attr(n, "id"); v == id {
				return n
			}
		}
	}
	return nil
}

// mustID returns the element with this id, or fails the test.
func (p *htmlPage) mustID(t *testing.T, id string) *html.Node {
	t.Helper()
	n := p.byID(id)
	if n == nil {
		t.Fatalf("the page has no #%s: %s", id, p)
	}
	return n
}

// rawText is an element's text exactly as the browser shows it in a
// <pre>: text nodes joined without anything added.
func rawText(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// shellWords splits a command line as a POSIX shell would for the
// commands the pages print: backslash-newline continuations, single and
// double quotes, $NAME and $(...) substitutions (from vars, keyed "NAME"
// and "$(...)"). It stops at a pipe.
func shellWords(t *testing.T, cmd string, vars map[string]string) []string {
	t.Helper()
	cmd = strings.ReplaceAll(cmd, "\\\n", " ")
	var words []string
	var cur strings.Builder
	inWord := false
	expand := func(s string, i int) (string, int) {
		// s[i] == '$'
		if strings.HasPrefix(s[i:], "$(") {
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				t.Fatalf("unclosed $( in %q", cmd)
			}
			key := s[i : i+end+1]
			v, ok := vars[key]
			if !ok {
				t.Fatalf("the command substitutes %s, which the test does not know: %q", key, cmd)
			}
			return v, i + end + 1
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		v, ok := vars[s[i+1:j]]
		if !ok {
			t.Fatalf("the command uses $%s, which the test does not know: %q", s[i+1:j], cmd)
		}
		return v, j
	}
	for i := 0; i < len(cmd); {
		c := cmd[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case c == '|' && !inWord:
			return words
		case c == '\'':
			end := strings.IndexByte(cmd[i+1:], '\'')
			if end < 0 {
				t.Fatalf("unclosed ' in %q", cmd)
			}
			cur.WriteString(cmd[i+1 : i+1+end])
			inWord, i = true, i+end+2
		case c == '"':
			i++
			for i < len(cmd) && cmd[i] != '"' {
				if cmd[i] == '$' {
					v, next := expand(cmd, i)
					cur.WriteString(v)
					i = next
					continue
				}
				cur.WriteByte(cmd[i])
				i++
			}
			inWord, i = true, i+1
		case c == '$':
			v, next := expand(cmd, i)
			cur.WriteString(v)
			inWord, i = true, next
		default:
			cur.WriteByte(c)
			inWord, i = true, i+1
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// runCurl sends what a curl command of the pages would send: -d and
// --data-urlencode form fields (POST), -u Basic credentials, -H headers.
func runCurl(t *testing.T, cmd string, vars map[string]string) reply {
	t.Helper()
	words := shellWords(t, cmd, vars)
	if len(words) < 2 || words[0] != "curl" {
		t.Fatalf("not a curl command: %q", cmd)
	}
	var target string
	var body []string
	h := http.Header{}
	for i := 1; i < len(words); i++ {
		w := words[i]
		next := func() string {
			i++
			if i >= len(words) {
				t.Fatalf("%s without a value in %q", w, cmd)
			}
			return words[i]
		}
		switch w {
		case "-s":
		case "-d":
			body = append(body, next())
		case "--data-urlencode":
			name, value, _ := strings.Cut(next(), "=")
			body = append(body, name+"="+url.QueryEscape(value))
		case "-u":
			id, secret, _ := strings.Cut(next(), ":")
			h.Set("Authorization", "Basic "+basicAuthRaw(id, secret))
		case "-H":
			name, value, _ := strings.Cut(next(), ":")
			h.Set(strings.TrimSpace(name), strings.TrimSpace(value))
		default:
			if strings.HasPrefix(w, "-") || target != "" {
				t.Fatalf("the test's curl does not know %q in %q", w, cmd)
			}
			target = w
		}
	}
	if body == nil {
		return do(t, http.MethodGet, target, nil, h)
	}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, http.MethodPost, target, strings.NewReader(strings.Join(body, "&")), h)
}

// basicAuthRaw is what curl -u sends: id:secret as given, base64.
func basicAuthRaw(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
}

// expectation is what an #expect-* element of the app page promises.
type expectation struct {
	status       int
	fields       []string
	resourceType string
}

func expectOf(t *testing.T, p *htmlPage, id string) expectation {
	t.Helper()
	n := p.mustID(t, id)
	var e expectation
	st, _ := attr(n, "data-expect-status")
	if _, err := fmt.Sscan(st, &e.status); err != nil {
		t.Fatalf("#%s has no data-expect-status: %v", id, err)
	}
	f, _ := attr(n, "data-expect-fields")
	e.fields = strings.Fields(f)
	e.resourceType, _ = attr(n, "data-expect-type")
	return e
}

// check compares a reply with what the page said.
func (e expectation) check(t *testing.T, what string, r reply) map[string]any {
	t.Helper()
	if r.status != e.status {
		t.Fatalf("%s: %s, the page says HTTP %d", what, r, e.status)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s: the answer is not JSON: %s", what, r)
	}
	for _, f := range e.fields {
		if _, ok := m[f]; !ok {
			t.Errorf("%s: the answer lacks %s, which the page promises: %s", what, f, r)
		}
	}
	if e.resourceType != "" && m["resourceType"] != e.resourceType {
		t.Errorf("%s: resourceType %v, the page says %s", what, m["resourceType"], e.resourceType)
	}
	return m
}

// registerInPortal fills in and submits the portal's #register form and returns
// the app page it lands on; clientType picks the client_type radio button
// (the form filler ticks only checkboxes).
func registerInPortal(t *testing.T, b *headless, base string, in fill, clientType string) *htmlPage {
	t.Helper()
	l := b.get(base + "/developers")
	if l.page == nil || l.page.status != http.StatusOK {
		t.Fatalf("GET /developers: %s", l)
	}
	for _, id := range []string{"approval-policy", "registration-policy", "client-types", "scopes", "scopes-patient", "scopes-system"} {
		l.page.mustID(t, id)
	}
	f := l.page.form(t, "#register")
	v := f.data(t, in, "action=register")
	v.Set("client_type", clientType)
	l = b.submitData(f, v)
	if l.page == nil || l.page.status != http.StatusOK || l.page.byID("app") == nil {
		t.Fatalf("registering through the portal did not land on the app page: %s (hops %v)", l, l.hops)
	}
	return l.page
}

// TestPortalPatientAppFirstCall: a public patient app registered through
// the form is enabled at once; its page's authorization URL works in the
// browser, and its curl commands for the token, a first FHIR call and a
// refresh answer what the page says. The secrets are shown once.
func TestPortalPatientAppFirstCall(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	b := newHeadless(t, s.URL)
	page := registerInPortal(t, b, s.URL, fill{
		set:  map[string]string{"client_name": "E2E portal patient app", "redirect_uris": registeredRedirect, "contact": "dev@example.org"},
		tick: map[string]map[string]bool{"scope": {"offline_access": true}},
	}, "public")
	st := page.mustID(t, "app-status")
	if v, _ := attr(st, "data-status"); v != "enabled" {
		t.Fatalf("a public patient-level app: status %q, want enabled at once: %s", v, rawText(st))
	}
	clientID := strings.TrimSpace(rawText(page.mustID(t, "app-client-id")))
	regToken := strings.TrimSpace(rawText(page.mustID(t, "app-registration-token")))
	if page.byID("app-secret") != nil {
		t.Error("a public client's page shows a client secret")
	}

	authURL, _ := attr(page.mustID(t, "authorize-link"), "href")
	if got := strings.TrimSpace(rawText(page.mustID(t, "authorize-url"))); got != authURL {
		t.Errorf("#authorize-url %q differs from #authorize-link %q", got, authURL)
	}
	fl := b.authorize(authURL, person{username: "amy.shaw", password: demoPassword(t, s.dataDir, "amy.shaw")})
	code := fl.code(t)
	if state := strings.TrimSpace(rawText(page.mustID(t, "pkce-state"))); fl.query().Get("state") != state {
		t.Errorf("state %q came back, the page generated %q", fl.query().Get("state"), state)
	}

	vars := map[string]string{"CODE": code}
	tok := expectOf(t, page, "expect-token").check(t, "the page's token request", runCurl(t, rawText(page.mustID(t, "curl-token")), vars))
	if tok["patient"] != "pat-amy-shaw" {
		t.Errorf("token response patient %v, want pat-amy-shaw", tok["patient"])
	}
	vars["ACCESS_TOKEN"], _ = tok["access_token"].(string)
	vars["PATIENT"], _ = tok["patient"].(string)
	res := expectOf(t, page, "expect-fhir").check(t, "the page's first FHIR call", runCurl(t, rawText(page.mustID(t, "curl-fhir")), vars))
	if res["id"] != "pat-amy-shaw" {
		t.Errorf("the first call read %v, want Patient pat-amy-shaw", res["id"])
	}
	rt, _ := tok["refresh_token"].(string)
	vars["$(jq -r .refresh_token token.json)"] = rt
	if r := runCurl(t, rawText(page.mustID(t, "curl-refresh")), vars); r.status != http.StatusOK {
		t.Errorf("the page's refresh command: %s", r)
	}

	// The secrets were shown once: the page again asks for the
	// registration access token, and with it shows no secret.
	l := b.get(s.URL + "/developers/apps/" + clientID)
	if l.page.byID("open-app") == nil || l.page.byID("app-registration-token") != nil || strings.Contains(string(l.page.body), regToken) {
		t.Fatalf("second visit: want the #open-app form and no token: %s", l)
	}
	l = b.submit(l.page.form(t, "#open-app"), fill{set: map[string]string{"registration_access_token": regToken}}, "action=open")
	if l.page == nil || l.page.byID("authorize-url") == nil || strings.Contains(string(l.page.body), regToken) {
		t.Fatalf("opened with the registration token: want the app page without the token: %s", l)
	}
}

// TestPortalBackendService: a backend service registered through the form
// with its JWK Set waits for approval (its token command says so); once
// an administrator enables it, the page's curl commands (with an assertion
// the test signs) and its smartgate token --key-file command work.
func TestPortalBackendService(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	key := newRSAKey(t, "portal-rs384", jose.RS384)
	b := newHeadless(t, s.URL)
	page := registerInPortal(t, b, s.URL, fill{
		set: map[string]string{"client_name": "E2E nightly export", "redirect_uris": "", "jwks": string(jwksJSON(t, key))},
		tick: map[string]map[string]bool{
			"scope": {"openid": false, "fhirUser": false, "launch/patient": false, "patient/*.rs": false, "system/*.rs": true},
		},
	}, "confidential-asymmetric")
	clientID := strings.TrimSpace(rawText(page.mustID(t, "app-client-id")))
	if v, _ := attr(page.mustID(t, "app-status"), "data-status"); v != "pending" || page.byID("app-pending") == nil {
		t.Fatalf("a self-registered backend service: status %q, want pending with #app-pending", v)
	}
	if page.byID("authorize") != nil {
		t.Error("a backend service's page shows an authorization URL")
	}
	vars := map[string]string{"$(assertion)": ""}
	sign := func() { vars["$(assertion)"] = key.sign(t, assertionClaims(clientID, s.tokenURL()), nil) }
	curlToken := rawText(page.mustID(t, "curl-backend-token"))
	sign()
	wantOAuthError(t, "token before approval", runCurl(t, curlToken, vars), http.StatusUnauthorized, "invalid_client", "waiting for an administrator", clientID)

	enable := strings.Fields(rawText(page.mustID(t, "app-enable-command")))
	if len(enable) < 4 || enable[0] != "smartgate" {
		t.Fatalf("#app-enable-command is not a smartgate command: %v", enable)
	}
	args := append([]string{}, enable[1:]...)
	if i := slices.Index(args, "--"); i >= 0 {
		args = append(args[:i], append([]string{"--data-dir", s.dataDir}, args[i:]...)...)
	}
	mustRun(t, s.env, args...)
	waitFor(t, revocationWait, "the enabled client gets a token", func() (bool, string) {
		sign()
		r := runCurl(t, curlToken, vars)
		return r.status == http.StatusOK, r.String()
	})
	sign()
	tok := expectOf(t, page, "expect-backend-token").check(t, "the page's token request", runCurl(t, curlToken, vars))
	vars["ACCESS_TOKEN"], _ = tok["access_token"].(string)
	expectOf(t, page, "expect-backend-fhir").check(t, "the page's first FHIR call", runCurl(t, rawText(page.mustID(t, "curl-backend-fhir")), vars))

	// The page's own assertion recipe (a shell function with openssl),
	// run in a directory holding private.pem, signs an assertion the
	// token endpoint takes.
	keyDir := t.TempDir()
	pemPath := filepath.Join(keyDir, "private.pem")
	if err := os.WriteFile(pemPath, []byte(key.pkcs8PEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Logf("SKIPPED the page's openssl assertion recipe: openssl is not on PATH")
	} else {
		sh := exec.Command("bash", "-c", rawText(page.mustID(t, "assertion-recipe"))+"\nassertion")
		sh.Dir = keyDir
		out, err := sh.Output()
		if err != nil {
			t.Fatalf("the page's assertion recipe failed: %v", err)
		}
		vars["$(assertion)"] = strings.TrimSpace(string(out))
		expectOf(t, page, "expect-backend-token").check(t, "the token request with the recipe's assertion", runCurl(t, curlToken, vars))
	}
	cli := shellWords(t, rawText(page.mustID(t, "token-cli")), nil)
	for i, w := range cli {
		if w == "private.pem" {
			cli[i] = pemPath
		}
	}
	if cli[0] != "smartgate" || cli[1] != "token" {
		t.Fatalf("#token-cli is not smartgate token: %v", cli)
	}
	r := mustRun(t, s.env, cli[1:]...)
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["access_token"] == nil || out["scope"] != "system/*.rs" {
		t.Fatalf("the page's smartgate token command printed no token response (%v): %s", err, r)
	}
}

// TestTokenKeyFile: smartgate token --client-id --key-file signs with the
// demo backend's private JWK (from dev-clients.json) and with a PEM key
// whose kid is its RFC 7638 thumbprint; the tokens work at the FHIR API;
// refusals say what to fix.
func TestTokenKeyFile(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	var dcs []struct {
		ClientID   string          `json:"client_id"`
		PrivateJWK json.RawMessage `json:"private_jwk"`
	}
	raw, err := os.ReadFile(filepath.Join(s.dataDir, "dev-clients.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dcs); err != nil {
		t.Fatal(err)
	}
	jwkPath := filepath.Join(t.TempDir(), "demo-backend.jwk")
	for _, dc := range dcs {
		if dc.ClientID == "demo-backend" {
			if err := os.WriteFile(jwkPath, dc.PrivateJWK, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	tokenOf := func(r result) string {
		t.Helper()
		var out map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("stdout is not the token response: %v\n%s", err, r)
		}
		at, _ := out["access_token"].(string)
		if at == "" || out["token_type"] != "Bearer" {
			t.Fatalf("token response %v lacks access_token or token_type", out)
		}
		if h := jwtHeader(t, at); h["typ"] != "at+jwt" {
			t.Errorf("access token header %v", h)
		}
		return at
	}
	at := tokenOf(mustRun(t, s.env, "token", "--client-id", "demo-backend", "--key-file", jwkPath, "--server", s.URL, "--scope", "system/Patient.rs"))
	if r := do(t, http.MethodGet, s.URL+"/fhir/Patient?_count=1", nil, bearer(at)); r.status != http.StatusOK {
		t.Errorf("the ES384 token at the FHIR API: %s", r)
	}

	// An RSA key as PEM; the client registered it with the thumbprint kid.
	key := newRSAKey(t, "", jose.RS384)
	pub := key.public()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	key.kid = base64.RawURLEncoding.EncodeToString(tp)
	c := s.createClient(t, "e2e key-file backend", "--type", "confidential-asymmetric", "--jwks-file", writeJWKSFile(t, key), "--scope", "system/*.rs")
	pemPath := filepath.Join(t.TempDir(), "rs.pem")
	if err := os.WriteFile(pemPath, []byte(key.pkcs8PEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	at = tokenOf(mustRun(t, s.env, "token", "--client-id", c.ClientID, "--key-file", pemPath, "--server", s.URL))
	if claims := jwtClaims(t, at); claims["client_id"] != c.ClientID || claims["scope"] != "system/*.rs" {
		t.Errorf("access token claims %v", claims)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--client-id", c.ClientID, "--key-file", pemPath, "--kid", "other"}, "kid 'other' is not in the client's registered keys"},
		{[]string{"--client-id", c.ClientID, "--key-file", pemPath, "--scope", "patient/*.rs"}, "invalid_scope"},
		{[]string{"--client-id", c.ClientID, "--key-file", writeJWKSFile(t, key)}, "only public keys"},
		{[]string{"--key-file", pemPath}, "needs both --client-id and --key-file"},
	} {
		r := smartgate(t, s.env, append(append([]string{"token"}, tc.args...), "--server", s.URL)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("smartgate token %v: want exit 1 naming %q; got %s", tc.args, tc.want, r)
		}
	}
}

// signInAndAllow walks the sign-in, patient picker and consent pages the
// browser meets and returns the first other page (here: the walkthrough's
// own callback, on the same server).
func signInAndAllow(t *testing.T, b *headless, l landing, who person) landing {
	t.Helper()
	for step := 0; step < 10; step++ {
		if l.page == nil {
			return l
		}
		p := l.page
		switch {
		case len(p.forms("#login")) == 1:
			l = b.submit(p.form(t, "#login"), fill{set: map[string]string{"username": who.username, "password": who.password}}, "action=login")
		case len(p.forms("#consent")) == 1:
			l = b.submit(p.form(t, "#consent"), fill{}, "decision=approve")
		default:
			return l
		}
	}
	t.Fatalf("more than 10 sign-in pages: %s", l)
	return l
}

// TestWalkthroughReachesItsFHIRRead: /docs/try on a dev server, step by
// step as a user clicks through it, to the final FHIR read.
func TestWalkthroughReachesItsFHIRRead(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	b := newHeadless(t, s.URL)
	l := b.get(s.URL + "/docs/try")
	if l.page.byID("try-unavailable") != nil {
		t.Fatalf("the walkthrough is unavailable on a dev server: %s", l)
	}
	l = b.submit(l.page.form(t, "#try-start"), fill{}, "action=start")
	for _, id := range []string{"step-discovery", "step-pkce", "step-authorize", "authorize-params"} {
		l.page.mustID(t, id)
	}
	if st, _ := attr(l.page.mustID(t, "discovery-response"), "data-status"); st != "200" {
		t.Errorf("discovery step: status %s, want 200", st)
	}
	authURL, _ := attr(l.page.mustID(t, "authorize-link"), "href")
	u, err := url.Parse(authURL)
	if err != nil || u.Query().Get("client_id") != "smartgate-walkthrough" || u.Query().Get("code_challenge_method") != "S256" {
		t.Fatalf("authorization URL %q", authURL)
	}
	l = signInAndAllow(t, b, b.get(authURL), person{username: "amy.shaw", password: demoPassword(t, s.dataDir, "amy.shaw")})
	if l.page == nil || l.page.byID("step-callback") == nil || l.page.byID("try-token") == nil {
		t.Fatalf("after consent: want the walkthrough's callback step with #try-token: %s (hops %v)", l, l.hops)
	}
	checks := rawText(l.page.mustID(t, "callback-checks"))
	if strings.Contains(checks, "NOT") || strings.Contains(checks, "must refuse") {
		t.Errorf("the callback checks failed: %s", checks)
	}
	l = b.submit(l.page.form(t, "#try-token"), fill{}, "action=token")
	resp := l.page.mustID(t, "token-response")
	if st, _ := attr(resp, "data-status"); st != "200" || !strings.Contains(rawText(resp), `"access_token"`) {
		t.Fatalf("token step: %s: %s", st, rawText(resp))
	}
	if !strings.Contains(rawText(l.page.mustID(t, "token-request")), "code_verifier=") {
		t.Error("the token step does not show the request with its code_verifier")
	}
	l = b.submit(l.page.form(t, "#try-fhir"), fill{}, "action=fhir")
	fr := l.page.mustID(t, "fhir-response")
	if st, _ := attr(fr, "data-status"); st != "200" {
		t.Fatalf("FHIR step: status %s: %s", st, rawText(fr))
	}
	if rt, _ := attr(fr, "data-resource-type"); rt != "Patient" || l.page.byID("try-done") == nil {
		t.Errorf("FHIR step: resourceType %q, #try-done present %v", rt, l.page.byID("try-done") != nil)
	}
	if !strings.Contains(rawText(l.page.mustID(t, "fhir-request")), "Authorization: Bearer ") {
		t.Error("the FHIR step does not show the Authorization header it sent")
	}
}
