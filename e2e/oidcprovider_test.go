package e2e

// A real third-party OpenID Connect provider for the federation tests
// (issue 7): the certified Node.js oidc-provider from npm, configured by
// e2e/oidcprovider/server.mjs, installed with `npm ci` in a temporary copy
// and started on loopback by the test. No hand-written mock stands in for
// it. Its development interactions are real HTML pages (login, consent,
// and a Cancel link that answers access_denied), which the headless form
// filler of formfill_test.go fills in like a person.
//
// Reuse: startOIDCProvider(t, opts) returns the running provider; with
// opts.Resource set it issues RFC 9068 at+jwt access tokens for that
// audience (resource indicators, RFC 8707), for the authorization code
// and client_credentials grants, so tests of external access tokens at
// the FHIR API can get real ones (see oidcProvider.clientCredentials).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// oidcProviderOptions configure server.mjs (its header documents each
// member): the clients, the accounts and their claims, and optionally a
// resource server whose access tokens are JWTs.
type oidcProviderOptions struct {
	Clients         []map[string]any          `json:"clients"`
	Accounts        map[string]map[string]any `json:"accounts"`
	ClaimsInIDToken bool                      `json:"claimsInIdToken,omitempty"`
	Resource        *opResource               `json:"resource,omitempty"`
}

// opResource is a resource server of the provider: access tokens for
// Audience are at+jwt, signed with Alg (ES256 or RS256).
type opResource struct {
	Audience       string         `json:"audience"`
	Scopes         string         `json:"scopes"`
	Alg            string         `json:"alg,omitempty"`
	TTL            int            `json:"ttl,omitempty"`
	DefaultClients []string       `json:"defaultClients,omitempty"`
	AccountClaims  []string       `json:"accountClaims,omitempty"`
	ExtraClaims    map[string]any `json:"extraClaims,omitempty"`
}

// oidcProvider is a running oidc-provider.
type oidcProvider struct {
	Issuer string
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

// oidcProviderProject is npmProject for e2e/oidcprovider (the npm
// oidc-provider and its server.mjs).
func oidcProviderProject(t *testing.T) string {
	t.Helper()
	return npmProject(t, "oidcprovider", "the tests against the oidc-provider identity provider")
}

// startOIDCProvider installs (once per call: pass the same dir to
// startOIDCProviderIn to start several) and starts a provider; it stops
// when the test ends.
func startOIDCProvider(t *testing.T, opts oidcProviderOptions) *oidcProvider {
	t.Helper()
	return startOIDCProviderIn(t, oidcProviderProject(t), opts)
}

// startOIDCProviderIn starts a provider from an installed project dir.
func startOIDCProviderIn(t *testing.T, dir string, opts oidcProviderOptions) *oidcProvider {
	t.Helper()
	conf, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	op := &oidcProvider{done: make(chan struct{})}
	op.cmd = exec.Command("node", "server.mjs")
	op.cmd.Dir = dir
	op.cmd.Env = nodeEnv("OP_CONFIG=" + string(conf))
	op.cmd.Stderr = &lockedWriter{mu: &op.mu, w: &op.stderr}
	stdout, err := op.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := op.cmd.Start(); err != nil {
		t.Fatalf("starting oidc-provider: %v", err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct{ Issuer string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Issuer != "" {
				ready <- line.Issuer
			}
		}
		_ = op.cmd.Wait()
		close(op.done)
	}()
	t.Cleanup(op.stop)
	select {
	case op.Issuer = <-ready:
	case <-op.done:
		t.Fatalf("oidc-provider exited before it listened:\n%s", op.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider did not listen within 30 s:\n%s", op.logs())
	}
	return op
}

// stop ends the provider (a test of a provider that went down calls it
// early) and waits for it.
func (op *oidcProvider) stop() {
	if op.cmd.Process != nil {
		_ = op.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-op.done:
	case <-time.After(5 * time.Second):
		_ = op.cmd.Process.Kill()
		<-op.done
	}
}

func (op *oidcProvider) logs() string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// opPerson is who signs in at the provider's development pages: the login
// name (any name signs in; its claims are the account's), or cancel to
// press the login page's Cancel link.
type opPerson struct {
	login  string
	cancel bool
}

// signIn takes a browser that was sent to the provider (l.away is the
// provider's authorization URL), signs in there as who, approves the
// consent page, and follows the provider's redirect back to smartgate:
// it returns where the browser landed at smartgate (a page, or a redirect
// away from smartgate, such as to the app). The browser's cookies are
// kept, at the provider too.
func (op *oidcProvider) signIn(t *testing.T, b *headless, l landing, who opPerson) landing {
	t.Helper()
	if l.away == nil || !strings.HasPrefix(l.away.String(), op.Issuer+"/") {
		t.Fatalf("want a redirect to the provider %s, got %s", op.Issuer, l)
	}
	back := op.browse(t, b, l.away.String(), who)
	return b.get(back.String())
}

// browse drives the provider's pages from u and returns the URL outside
// the provider the browser was sent to (smartgate's /login/callback).
func (op *oidcProvider) browse(t *testing.T, b *headless, u string, who opPerson) *url.URL {
	t.Helper()
	base, _ := url.Parse(op.Issuer)
	ob := &headless{t: t, base: base, jar: b.jar, hc: b.hc}
	l := ob.get(u)
	for step := 0; ; step++ {
		if l.away != nil {
			return l.away
		}
		if step > 6 {
			t.Fatalf("more than 6 pages at the provider; last %s\nprovider log:\n%s", l, op.logs())
		}
		p := l.page
		var login, consent *htmlForm
		for _, f := range p.forms("") {
			if _, ok := f.field("login"); ok {
				login = f
			}
			if v, _ := f.field("prompt"); v == "consent" {
				consent = f
			}
		}
		switch {
		case login != nil && who.cancel:
			abort := ""
			for n := range p.doc.Descendants() {
				if href, ok := attr(n, "href"); ok && n.Data == "a" && strings.Contains(href, "/abort") {
					abort = href
				}
			}
			if abort == "" {
				t.Fatalf("the provider's login page has no Cancel link: %s", p)
			}
			next, _ := p.url.Parse(abort)
			l = ob.get(next.String())
		case login != nil:
			l = ob.submit(login, fill{set: map[string]string{"login": who.login, "password": "any password"}}, "")
		case consent != nil:
			l = ob.submit(consent, fill{}, "")
		default:
			t.Fatalf("an unexpected page at the provider: %s\nprovider log:\n%s", p, op.logs())
		}
	}
}

// clientCredentials gets an access token from the provider with the
// client_credentials grant (client_secret_basic) for resource, or the
// client's default resource when resource is "".
func (op *oidcProvider) clientCredentials(t *testing.T, clientID, secret, scope, resource string) (map[string]any, int) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	if resource != "" {
		form.Set("resource", resource)
	}
	req, err := http.NewRequest(http.MethodPost, op.Issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("token request to oidc-provider: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body, resp.StatusCode
}

// TestOIDCProviderJWTAccessTokens checks the harness itself for the tests
// of external access tokens: with a resource server configured, the
// provider issues RFC 9068 at+jwt access tokens for its audience, with the
// scopes asked for and the extra claims.
func TestOIDCProviderJWTAccessTokens(t *testing.T) {
	t.Parallel()
	const aud = "http://127.0.0.1:1/fhir"
	op := startOIDCProvider(t, oidcProviderOptions{
		Clients: []map[string]any{{"client_id": "backend", "client_secret": opSecret, "grant_types": []string{"client_credentials"},
			"redirect_uris": []string{}, "response_types": []string{}, "scope": "system/Patient.rs"}},
		Resource: &opResource{Audience: aud, Scopes: "system/Patient.rs patient/*.rs", DefaultClients: []string{"backend"}, ExtraClaims: map[string]any{"patient": "pat-amy-shaw"}},
	})
	for _, resource := range []string{"", aud} {
		body, status := op.clientCredentials(t, "backend", opSecret, "system/Patient.rs", resource)
		tok, _ := body["access_token"].(string)
		if status != http.StatusOK || tok == "" {
			t.Fatalf("client_credentials (resource %q): HTTP %d %v\nprovider log:\n%s", resource, status, body, op.logs())
		}
		h, c := jwtHeader(t, tok), jwtClaims(t, tok)
		if h["typ"] != "at+jwt" || h["alg"] != "ES256" || c["aud"] != aud || c["iss"] != op.Issuer || c["scope"] != "system/Patient.rs" || c["patient"] != "pat-amy-shaw" {
			t.Errorf("access token (resource %q): header %v claims %v; want typ at+jwt, ES256, aud %s, iss %s, scope system/Patient.rs, patient", resource, h, c, aud, op.Issuer)
		}
	}
	if body, status := op.clientCredentials(t, "backend", opSecret, "system/Patient.rs", "http://127.0.0.1:2/other"); status != http.StatusBadRequest {
		t.Errorf("an unknown resource: HTTP %d %v, want 400 invalid_target", status, body)
	}
}
