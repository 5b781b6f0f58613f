package admin

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// fakePages stands in for the sign-in pages: who is signed in, and a
// fixed CSRF token checked as the double-submit cookie would be.
type fakePages struct {
	user *store.User
	amr  []string
}

func (p *fakePages) SignedIn(*http.Request) (*store.LoginSession, store.User, bool) {
	if p.user == nil {
		return nil, store.User{}, false
	}
	return &store.LoginSession{UserID: p.user.ID, AMR: p.amr}, *p.user, true
}

func (p *fakePages) CSRFToken(http.ResponseWriter, *http.Request) string { return "csrf-ok" }

func (p *fakePages) CheckCSRF(r *http.Request) error {
	if r.PostForm.Get("csrf_token") != "csrf-ok" {
		return problem.New(problem.FormExpired, "the form's security token is missing")
	}
	return nil
}

// consoleServer serves the console as the server does: errors on the
// HTML surface.
func consoleServer(t *testing.T, f *fixture, pages Pages, requireTOTP bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	errs := &problem.Writer{BaseURL: "http://127.0.0.1:8080", Log: slog.New(slog.DiscardHandler)}
	for _, rt := range NewConsole(f.svc, pages, requireTOTP).Routes() {
		h := rt.Handler
		for _, m := range rt.Methods {
			mux.Handle(m+" "+rt.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := h(w, r); err != nil {
					errs.Write(w, r, problem.SurfaceHTML, err)
				}
			}))
		}
	}
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func page(t *testing.T, method, u string, form url.Values) (int, http.Header, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = noRedirect.PostForm(u, form)
	} else {
		resp, err = noRedirect.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, b.String()
}

func TestConsoleAccess(t *testing.T) {
	f := newFixture(t)
	pages := &fakePages{}
	ts := consoleServer(t, f, pages, false)

	status, h, _ := page(t, "GET", ts.URL+"/admin/audit?action=client.*", nil)
	if status != http.StatusSeeOther || h.Get("Location") != "/login?next="+url.QueryEscape("/admin/audit?action=client.*") {
		t.Errorf("not signed in: %d Location %q, want 303 to /login with next", status, h.Get("Location"))
	}
	prac := f.newUser("pra.user", store.RolePractitioner, "Practitioner/p1")
	pages.user = &prac
	status, _, body := page(t, "GET", ts.URL+"/admin", nil)
	if status != http.StatusForbidden || !strings.Contains(body, "not an administrator") {
		t.Errorf("a practitioner: %d %s", status, body)
	}
	pages.user = &f.admin
	for _, p := range []string{"/admin", "/admin/apps", "/admin/users", "/admin/users/root.admin", "/admin/keys", "/admin/settings", "/admin/audit"} {
		status, h, body := page(t, "GET", ts.URL+p, nil)
		if status != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, status, body)
			continue
		}
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") || strings.Contains(body, "<script") {
			t.Errorf("GET %s: CSP %q or a script on the page", p, csp)
		}
		if h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", p, h.Get("Cache-Control"))
		}
		// Every form that posts carries the CSRF token; every field has a label.
		if strings.Count(body, `method="post"`) != strings.Count(body, `name="csrf_token" value="csrf-ok"`) {
			t.Errorf("GET %s: %d POST forms but %d CSRF fields", p, strings.Count(body, `method="post"`), strings.Count(body, `name="csrf_token"`))
		}
		for _, line := range strings.Split(body, "\n") {
			if i := strings.Index(line, "<input id=\""); i >= 0 {
				id := line[i+len(`<input id="`):]
				id = id[:strings.Index(id, `"`)]
				if !strings.Contains(body, `<label for="`+id+`"`) {
					t.Errorf("GET %s: input #%s has no label", p, id)
				}
			}
		}
		if strings.Contains(body, "<th>") {
			t.Errorf("GET %s: a table header without scope", p)
		}
	}
	status, _, body = page(t, "POST", ts.URL+"/admin/settings", url.Values{"key": {"registration.policy"}, "value": {"token"}, "action": {"set"}})
	if status != http.StatusForbidden || !strings.Contains(body, "security token") {
		t.Errorf("POST without the CSRF token: %d", status)
	}
	if f.live.Load().Registration.Policy != "open" {
		t.Error("a POST without the CSRF token changed the setting")
	}

	// login.require_totp_for_admins: a sign-in without a TOTP code is refused.
	strict := consoleServer(t, f, pages, true)
	pages.amr = []string{"pwd"}
	status, _, body = page(t, "GET", strict.URL+"/admin", nil)
	if status != http.StatusForbidden || !strings.Contains(body, "two-factor") {
		t.Errorf("an admin without TOTP when it is required: %d %s", status, body)
	}
	pages.amr = []string{"pwd", "otp", "mfa"}
	if status, _, _ = page(t, "GET", strict.URL+"/admin", nil); status != http.StatusOK {
		t.Errorf("an admin with TOTP when it is required: %d", status)
	}
}

func TestConsoleActions(t *testing.T) {
	f := newFixture(t)
	pages := &fakePages{user: &f.admin}
	ts := consoleServer(t, f, pages, false)
	post := func(path string, v url.Values) (int, string) {
		t.Helper()
		v.Set("csrf_token", "csrf-ok")
		status, _, body := page(t, "POST", ts.URL+path, v)
		return status, body
	}
	c := f.selfRegistered("Ward app")
	status, body := post("/admin/apps/"+c.ID, url.Values{"action": {"approve"}})
	if status != http.StatusOK || !strings.Contains(body, "Ward app is enabled (approved)") {
		t.Errorf("approve: %d %s", status, body)
	}
	if es := f.events("client.approve"); len(es) != 1 || es[0].Actor != "user:"+f.admin.ID || !strings.Contains(es[0].Detail, `"via":"console"`) {
		t.Errorf("approve audit: %+v", es)
	}
	status, body = post("/admin/apps/"+c.ID, url.Values{"action": {"update"}, "redirect_uris": {"https://a.example.org/cb\r\nftp://bad"}, "scope": {"openid"}})
	if status != http.StatusBadRequest || !strings.Contains(body, `id="admin-error"`) || !strings.Contains(body, "ftp://bad") {
		t.Errorf("update with a bad redirect URI: want 400 with the error and the typed value kept: %d", status)
	}
	status, body = post("/admin/apps/"+c.ID, url.Values{"action": {"rotate-secret"}})
	if status != http.StatusOK || !strings.Contains(body, `id="new-secret"`) {
		t.Errorf("rotate: %d", status)
	}
	status, body = post("/admin/users", url.Values{"username": {"amy"}, "role": {"patient"}, "fhir_user": {"Patient/p1"}, "password": {"short"}})
	if status != http.StatusBadRequest || !strings.Contains(body, `value="amy"`) {
		t.Errorf("create with a weak password: want 400 with the form kept: %d", status)
	}
	status, body = post("/admin/users", url.Values{"username": {"amy"}, "role": {"patient"}, "fhir_user": {"Patient/p1"}, "password": {testPassword}})
	if status != http.StatusOK || !strings.Contains(body, "User amy is created") {
		t.Errorf("create user: %d", status)
	}
	status, body = post("/admin/users/amy", url.Values{"action": {"revoke-grant"}, "grant": {"someone-elses"}})
	if status != http.StatusNotFound || !strings.Contains(body, "no live grant") {
		t.Errorf("revoking a grant not on the page: %d", status)
	}
	status, body = post("/admin/keys", url.Values{"alg": {"RS256"}, "action": {"rotate"}})
	if status != http.StatusOK || !strings.Contains(body, `id="rotated"`) {
		t.Errorf("rotate keys: %d", status)
	}
	status, body = post("/admin/settings", url.Values{"key": {"tokens.backend_token_ttl"}, "value": {"2m"}, "action": {"set"}})
	if status != http.StatusOK || f.live.Load().Tokens.BackendTokenTTL.D().String() != "2m0s" {
		t.Errorf("set a setting: %d, live %s", status, f.live.Load().Tokens.BackendTokenTTL.D())
	}
	status, body = post("/admin/settings", url.Values{"key": {"tokens.backend_token_ttl"}, "value": {"2 minutes"}, "action": {"set"}})
	if status != http.StatusBadRequest || !strings.Contains(body, `aria-invalid="true"`) || !strings.Contains(body, `value="2 minutes"`) {
		t.Errorf("an invalid value: want 400, the field marked invalid and the typed value kept: %d", status)
	}
	status, body = page2(t, ts.URL+"/admin/audit.csv?action=client.*")
	if status != http.StatusOK || !strings.HasPrefix(body, "id,time,actor") || !strings.Contains(body, "client.approve") {
		t.Errorf("CSV export: %d %s", status, body)
	}
}

func page2(t *testing.T, u string) (int, string) {
	t.Helper()
	status, _, body := page(t, "GET", u, nil)
	return status, body
}

// TestPasswordGrantWarning: turning the password grant on at runtime logs
// the development-only warning (USERS.md item 8).
func TestPasswordGrantWarning(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	f.settings.log = slog.New(slog.NewJSONHandler(&logs, nil))
	if _, err := f.svc.SetSetting(f.ctx(), f.actor, "authorize.password_grant_roles", "practitioner"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "the password grant is on") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("no warning logged when the password grant was turned on: %s", logs.String())
	}
	logs.Reset()
	if _, err := f.svc.SetSetting(f.ctx(), f.actor, "tokens.refresh_idle_ttl", "48h"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "password grant") {
		t.Errorf("the warning repeats on an unrelated change: %s", logs.String())
	}
}
