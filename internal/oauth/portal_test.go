package oauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/config"
	"smartgate/internal/scope"
	"smartgate/internal/store"
)

// portalBrowser is a browser on the portal: it keeps the CSRF and flash
// cookies the pages set, as a cookie jar would.
type portalBrowser struct {
	t       *testing.T
	f       *oauthFixture
	p       *Portal
	cookies map[string]*http.Cookie
	session func(*http.Request)
}

func newPortalBrowser(t *testing.T, f *oauthFixture) *portalBrowser {
	return &portalBrowser{t: t, f: f, p: NewPortal(f.s), cookies: map[string]*http.Cookie{}}
}

func (b *portalBrowser) do(h handler, r *http.Request) *httptest.ResponseRecorder {
	for _, c := range b.cookies {
		r.AddCookie(c)
	}
	if b.session != nil {
		b.session(r)
	}
	w := b.f.browse(h, r)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return w
}

// csrf loads a page for its CSRF cookie and returns the token.
func (b *portalBrowser) csrf() string {
	b.t.Helper()
	b.do(b.p.Developers, httptest.NewRequest(http.MethodGet, "/developers", nil))
	c := b.cookies["__Host-smartgate-csrf"]
	if c == nil {
		b.t.Fatal("GET /developers set no CSRF cookie")
	}
	return c.Value
}

func (b *portalBrowser) post(h handler, path string, form url.Values, withCSRF bool) *httptest.ResponseRecorder {
	if withCSRF {
		form.Set("csrf_token", b.csrf())
	}
	r := formRequest(path, form)
	r.SetPathValue("client_id", strings.TrimPrefix(path, "/developers/apps/"))
	return b.do(h, r)
}

func (b *portalBrowser) get(h handler, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.SetPathValue("client_id", strings.TrimPrefix(path, "/developers/apps/"))
	return b.do(h, r)
}

func registration(name, typ string, scopes ...string) url.Values {
	return url.Values{"client_name": {name}, "client_type": {typ}, "redirect_uris": {"https://app.example.com/cb\n"}, "scope": scopes}
}

// TestPortalRegistersAndShowsSecretsOnce: the form registers under the
// approval policy; the app page shows the secret and the registration
// access token once; later it opens only with that token, without them.
func TestPortalRegistersAndShowsSecretsOnce(t *testing.T) {
	f := newOAuthFixture(t, nil)
	b := newPortalBrowser(t, f)
	w := b.post(b.p.Register, "/developers/register", registration("Ward board", ConfidentialSymmetric, "openid", "fhirUser", "launch/patient", "user/*.rs", "online_access"), true)
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/developers/apps/") {
		t.Fatalf("register: %d %q, want 303 to the app page; body %s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
	id := strings.TrimPrefix(w.Header().Get("Location"), "/developers/apps/")
	c, err := f.s.Clients.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != store.ClientPending || c.Metadata.TokenEndpointAuthMethod != "client_secret_basic" ||
		!cmp.Equal(c.Metadata.GrantTypes, []string{"authorization_code", "refresh_token"}) {
		t.Errorf("registered %s %s %v; want pending client_secret_basic with authorization_code and refresh_token", c.Status, c.Metadata.TokenEndpointAuthMethod, c.Metadata.GrantTypes)
	}
	page := b.get(b.p.App, "/developers/apps/"+id)
	body := page.Body.String()
	for _, want := range []string{`id="app-secret"`, `id="app-registration-token"`, `id="app-pending"`, "smartgate client enable --dev -- " + id, `id="curl-token"`, `-u &#34;` + id + `:$CLIENT_SECRET&#34;`} {
		if !strings.Contains(body, want) {
			t.Errorf("first view lacks %s", want)
		}
	}
	secret := between(body, `<pre id="app-secret">CLIENT_SECRET='`, `'</pre>`)
	regToken := between(body, `<pre id="app-registration-token">`, `</pre>`)
	if !secretMatches(secret, c.SecretHash) || regToken == "" {
		t.Fatalf("the page's secret %q does not match the client's, or no registration token", secret)
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q, want the strict page policy without scripts", csp)
	}

	again := b.get(b.p.App, "/developers/apps/"+id).Body.String()
	if strings.Contains(again, secret) || strings.Contains(again, regToken) || !strings.Contains(again, `id="open-app"`) {
		t.Errorf("second view shows a secret or lacks the token form:\n%s", again)
	}
	w = b.post(b.p.App, "/developers/apps/"+id, url.Values{"registration_access_token": {"wrong"}}, true)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `id="app-error"`) {
		t.Errorf("a wrong registration token: %d, want 401 with #app-error", w.Code)
	}
	w = b.post(b.p.App, "/developers/apps/"+id, url.Values{"registration_access_token": {regToken}}, true)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `id="authorize-url"`) || strings.Contains(w.Body.String(), secret) {
		t.Errorf("with the registration token: %d; want the app page without the secret", w.Code)
	}
	// A new secret: shown once, the old one stops working.
	w = b.post(b.p.App, "/developers/apps/"+id, url.Values{"registration_access_token": {regToken}, "action": {"rotate-secret"}}, true)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("rotate-secret: %d, want 303", w.Code)
	}
	body = b.get(b.p.App, "/developers/apps/"+id).Body.String()
	fresh := between(body, `<pre id="app-secret">CLIENT_SECRET='`, `'</pre>`)
	c, _ = f.s.Clients.Get(t.Context(), id)
	if fresh == "" || fresh == secret || !secretMatches(fresh, c.SecretHash) || strings.Contains(body, regToken) {
		t.Errorf("after rotate-secret the page shows %q; want the new secret once and not the registration token", fresh)
	}
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}

// TestPortalRegistrationPolicy: under registration.policy token only a
// signed-in user registers; forms without their CSRF token are refused.
func TestPortalRegistrationPolicy(t *testing.T) {
	f := newOAuthFixture(t, func(c *config.Config) { c.Registration.Policy = "token" })
	b := newPortalBrowser(t, f)
	page := b.get(b.p.Developers, "/developers").Body.String()
	if !strings.Contains(page, `id="sign-in-to-register"`) || strings.Contains(page, `id="register"`) {
		t.Errorf("policy token, nobody signed in: the page should ask to sign in instead of showing the form")
	}
	form := registration("Spa", Public, "openid", "launch/patient", "patient/*.rs")
	if w := b.post(b.p.Register, "/developers/register", form, true); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "signed-in users") {
		t.Errorf("policy token, nobody signed in: %d, want 403 naming the rule", w.Code)
	}
	if clients, _ := f.st.ListClients(t.Context()); len(clients) != 0 {
		t.Errorf("a refused registration stored %d clients", len(clients))
	}
	_, b.session = f.signIn(t, "dev1", store.RolePatient, "")
	w := b.post(b.p.Register, "/developers/register", registration("Spa", Public, "openid", "launch/patient", "patient/*.rs"), true)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("signed in: %d, want 303; %s", w.Code, w.Body.String())
	}
	id := strings.TrimPrefix(w.Header().Get("Location"), "/developers/apps/")
	if c, _ := f.s.Clients.Get(t.Context(), id); c.Status != store.ClientEnabled || c.Verified {
		t.Errorf("a public patient-level app: %s verified %v, want enabled and unverified", c.Status, c.Verified)
	}
	w = b.post(b.p.Register, "/developers/register", registration("No CSRF", Public, "openid"), false)
	if w.Code != http.StatusForbidden && w.Code != http.StatusBadRequest {
		t.Errorf("no csrf_token: %d, want a refusal", w.Code)
	}
}

// TestPortalRefusalsKeepTheForm: a registration the rules refuse comes back
// with the reason and the values typed.
func TestPortalRefusalsKeepTheForm(t *testing.T) {
	f := newOAuthFixture(t, nil)
	b := newPortalBrowser(t, f)
	form := registration("Backend", Public, "system/*.rs")
	w := b.post(b.p.Register, "/developers/register", form, true)
	body := w.Body.String()
	if w.Code != http.StatusBadRequest || !strings.Contains(body, `id="register-error"`) || !strings.Contains(body, "needs a confidential client") {
		t.Errorf("a public backend service: %d, want 400 explaining client_credentials needs a confidential client", w.Code)
	}
	if !strings.Contains(body, `value="Backend"`) || !strings.Contains(body, `value="system/*.rs" checked`) {
		t.Error("the refused form lost what was typed")
	}
}

// TestMetadataFromForm: the grant types follow from the scopes.
func TestMetadataFromForm(t *testing.T) {
	for _, tc := range []struct {
		typ    string
		scopes []string
		extra  string
		grants []string
		method string
	}{
		{Public, []string{"openid", "launch/patient", "patient/*.rs"}, "", []string{"authorization_code"}, "none"},
		{Public, []string{"patient/*.rs", "offline_access"}, "", []string{"authorization_code", "refresh_token"}, "none"},
		{ConfidentialAsymmetric, []string{"system/*.rs"}, "system/Group.rs", []string{"client_credentials"}, "private_key_jwt"},
		{ConfidentialSymmetric, []string{"user/*.rs", "system/*.rs"}, "", []string{"authorization_code", "client_credentials"}, "client_secret_basic"},
	} {
		md, err := metadataFromForm(registerForm{Name: "x", Type: tc.typ, Scopes: tc.scopes, ScopeExtra: tc.extra})
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(md.GrantTypes, tc.grants) || md.TokenEndpointAuthMethod != tc.method {
			t.Errorf("%s %v: grants %v method %s, want %v %s", tc.typ, tc.scopes, md.GrantTypes, md.TokenEndpointAuthMethod, tc.grants, tc.method)
		}
	}
	if _, err := metadataFromForm(registerForm{Type: Public}); err == nil {
		t.Error("an app without a name was accepted")
	}
}

// TestScopeCatalogueCoversScopesSupported: the portal explains every
// scope discovery advertises, and each of its checkboxes is a valid scope.
func TestScopeCatalogueCoversScopesSupported(t *testing.T) {
	var listed []string
	for _, g := range scopeCatalogue {
		for _, s := range g.Scopes {
			listed = append(listed, s.Scope, s.V1)
			if _, bad := scope.ParseList(s.Scope + " " + s.V1); len(bad) > 0 {
				t.Errorf("catalogue entry %s / %s does not parse: %v", s.Scope, s.V1, bad)
			}
		}
	}
	for _, s := range Scopes() {
		if !slices.Contains(listed, s) {
			t.Errorf("scopes_supported has %s, which the portal does not explain", s)
		}
	}
}

// TestCurlCommandQuoting: values the shell would mangle are quoted.
func TestCurlCommandQuoting(t *testing.T) {
	got := curlCommand("https://x/oauth2/token", [][2]string{{"-d", "grant_type=client_credentials"}, {"-d", "scope=system/*.rs system/Group.rs"}, {"-d", `code="$CODE"`}, {"-u", `"id:$CLIENT_SECRET"`}}, " | jq .")
	want := "curl -s https://x/oauth2/token \\\n  -d grant_type=client_credentials \\\n  -d 'scope=system/*.rs system/Group.rs' \\\n  -d code=\"$CODE\" \\\n  -u \"id:$CLIENT_SECRET\" | jq ."
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("curlCommand (-want +got):\n%s", diff)
	}
}

// TestWalkthroughOnlyInDevMode: outside dev mode /docs/try explains and
// offers no start button; starting is refused.
func TestWalkthroughOnlyInDevMode(t *testing.T) {
	f := newOAuthFixture(t, func(c *config.Config) { c.Dev = false })
	b := newPortalBrowser(t, f)
	w := b.get(b.p.Try, "/docs/try")
	if !strings.Contains(w.Body.String(), `id="try-unavailable"`) || strings.Contains(w.Body.String(), `id="try-start"`) {
		t.Errorf("outside dev mode: want #try-unavailable and no #try-start:\n%s", w.Body.String())
	}
	w = b.post(b.p.TryStart, "/docs/try/start", url.Values{}, true)
	if w.Code != http.StatusConflict {
		t.Errorf("start outside dev mode: %d, want 409", w.Code)
	}
}
