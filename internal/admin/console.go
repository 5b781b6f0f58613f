package admin

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"smartgate/internal/identity"
	"smartgate/internal/problem"
	"smartgate/internal/requestid"
	"smartgate/internal/store"
	"smartgate/web"
)

// Pages is what the console needs from the sign-in pages (oauth.Server):
// administrators sign in through /login like any user, and every form
// carries the same double-submit CSRF token.
type Pages interface {
	SignedIn(r *http.Request) (*store.LoginSession, store.User, bool)
	CSRFToken(w http.ResponseWriter, r *http.Request) string
	CheckCSRF(r *http.Request) error
}

// Console is the admin console at /admin: server-rendered pages, no
// script, a strict Content-Security-Policy, every form a plain POST with
// a CSRF token, and every action a call of the same Service the API uses.
type Console struct {
	svc         *Service
	pages       Pages
	requireTOTP bool
}

// NewConsole returns the console. requireTOTP (login.require_totp_for_admins)
// refuses a session whose sign-in had no TOTP code (e.g. one through an
// upstream provider).
func NewConsole(svc *Service, pages Pages, requireTOTP bool) *Console {
	return &Console{svc: svc, pages: pages, requireTOTP: requireTOTP}
}

var consoleTemplates = map[string]*template.Template{}

func init() {
	for _, p := range []string{"admin-home.html", "admin-apps.html", "admin-app.html", "admin-users.html", "admin-user.html",
		"admin-keys.html", "admin-settings.html", "admin-audit.html"} {
		consoleTemplates[p] = web.Templates(p, "admin-nav.html")
	}
}

// Routes lists the console's pages.
func (c *Console) Routes() []Route {
	get := []string{http.MethodGet}
	getPost := []string{http.MethodGet, http.MethodPost}
	return []Route{
		{"/admin", get, c.page(c.home)},
		{"/admin/apps", get, c.page(c.apps)},
		{"/admin/apps/{id}", getPost, c.page(c.app)},
		{"/admin/users", getPost, c.page(c.users)},
		{"/admin/users/{username}", getPost, c.page(c.user)},
		{"/admin/keys", getPost, c.page(c.keys)},
		{"/admin/settings", getPost, c.page(c.settings)},
		{"/admin/audit", get, c.page(c.audit)},
		{"/admin/audit.csv", get, c.page(c.auditCSV)},
	}
}

// view is one page being answered: who is signed in and what the page
// shows.
type view struct {
	w     http.ResponseWriter
	r     *http.Request
	actor Actor
	data  map[string]any
}

// fail shows an error that the administrator can fix on the page itself
// (a bad redirect URI, a weak password) above the page, with its status;
// any other error goes to the server's error page.
func (v *view) fail(err error) (int, error) {
	pe := problem.From(err)
	status := pe.HTTPStatus()
	if status < 400 || status >= 500 || pe.ID == problem.FormExpired || pe.ID == problem.AdminRequired {
		return 0, err
	}
	v.data["Error"] = pe.Description
	return status, nil
}

// page wraps a console handler: sign-in, the admin check, the CSRF check
// of a POST, and the data every page has.
func (c *Console) page(h func(v *view) error) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		sess, u, ok := c.pages.SignedIn(r)
		if !ok {
			next := r.URL.Path
			if r.Method == http.MethodGet && r.URL.RawQuery != "" {
				next += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return nil
		}
		if u.Role != store.RoleAdmin {
			return problem.New(problem.AdminRequired, "you are signed in as %s, who is not an administrator; sign out (at /account/apps) and sign in as an administrator", u.Username).WithHint("An administrator gives the admin role with: smartgate user create --role admin")
		}
		if c.requireTOTP && !slices.Contains(sess.AMR, identity.AMROTP) {
			return problem.New(problem.AdminRequired, "login.require_totp_for_admins is on, and this sign-in of %s had no two-factor code; sign out (at /account/apps) and sign in again with your password and the code", u.Username)
		}
		v := &view{w: w, r: r, actor: Actor{ID: "user:" + u.ID, Name: u.Username, Via: "console"},
			data: map[string]any{"Admin": u.Username, "CSRF": c.pages.CSRFToken(w, r)}}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				return problem.New(problem.InvalidRequest, "the form could not be read; reload the page and try again")
			}
			if err := c.pages.CheckCSRF(r); err != nil {
				return err
			}
		}
		return h(v)
	}
}

// render writes a console page under the console's Content-Security-Policy:
// nothing but this site's style sheet, forms only to this site, no framing.
func (c *Console) render(v *view, status int, page, section string) error {
	h := v.w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	v.data["Section"] = section
	v.data["RequestID"] = requestid.From(v.r.Context())
	var b strings.Builder
	if err := consoleTemplates[page].ExecuteTemplate(&b, "layout", v.data); err != nil {
		return problem.Internal(err)
	}
	if status == 0 {
		status = http.StatusOK
	}
	v.w.WriteHeader(status)
	_, _ = v.w.Write([]byte(b.String()))
	return nil
}

func (c *Console) home(v *view) error {
	ctx := v.r.Context()
	apps, err := c.svc.ListApps(ctx)
	if err != nil {
		return err
	}
	users, err := c.svc.ListUsers(ctx)
	if err != nil {
		return err
	}
	pending := 0
	for _, a := range apps {
		if a.Status == store.ClientPending {
			pending++
		}
	}
	v.data["Pending"], v.data["Apps"], v.data["Users"], v.data["Keys"] = pending, len(apps), len(users), len(c.svc.Keys())
	return c.render(v, http.StatusOK, "admin-home.html", "home")
}

func (c *Console) apps(v *view) error {
	apps, err := c.svc.ListApps(v.r.Context())
	if err != nil {
		return err
	}
	var pending, others []App
	for _, a := range apps {
		if a.Status == store.ClientPending {
			pending = append(pending, a)
		} else {
			others = append(others, a)
		}
	}
	v.data["Pending"], v.data["Others"] = pending, others
	return c.render(v, http.StatusOK, "admin-apps.html", "apps")
}

// lines splits a textarea into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (c *Console) app(v *view) error {
	ctx, id := v.r.Context(), v.r.PathValue("id")
	status := http.StatusOK
	if v.r.Method == http.MethodPost {
		var err error
		var app App
		switch action := v.r.PostForm.Get("action"); action {
		case "approve", "enable":
			if app, err = c.svc.SetAppStatus(ctx, v.actor, id, store.ClientEnabled); err == nil {
				how := ""
				if action == "approve" {
					how = " (approved)"
				}
				v.data["Notice"] = app.Name() + " is enabled" + how + ": it can sign users in and get tokens now."
			}
		case "disable":
			if app, err = c.svc.SetAppStatus(ctx, v.actor, id, store.ClientDisabled); err == nil {
				v.data["Notice"] = app.Name() + " is disabled: every token it held is revoked."
			}
		case "update":
			uris, sc := lines(v.r.PostForm.Get("redirect_uris")), v.r.PostForm.Get("scope")
			if app, err = c.svc.UpdateApp(ctx, v.actor, id, AppChange{RedirectURIs: &uris, Scope: &sc}); err == nil {
				v.data["Notice"] = "The redirect URIs and scopes of " + app.Name() + " are saved."
			}
		case "rotate-secret":
			if app, err = c.svc.RotateAppSecret(ctx, v.actor, id); err == nil {
				v.data["Secret"] = app.ClientSecret
			}
		default:
			err = problem.New(problem.InvalidRequest, "the form's action %q is not one this page offers; reload the page", action)
		}
		if err != nil {
			if status, err = v.fail(err); err != nil {
				return err
			}
		}
	}
	app, err := c.svc.App(ctx, id)
	if err != nil {
		return err
	}
	v.data["App"] = app
	v.data["RedirectURIs"] = strings.Join(app.Metadata.RedirectURIs, "\n")
	if v.r.Method == http.MethodPost && v.data["Error"] != nil && v.r.PostForm.Get("action") == "update" {
		// Keep what was typed, so it can be corrected.
		v.data["RedirectURIs"], app.Metadata.Scope = v.r.PostForm.Get("redirect_uris"), v.r.PostForm.Get("scope")
		v.data["App"] = app
	}
	return c.render(v, status, "admin-app.html", "apps")
}

func (c *Console) users(v *view) error {
	ctx := v.r.Context()
	status := http.StatusOK
	if v.r.Method == http.MethodPost {
		f := v.r.PostForm
		u, err := c.svc.CreateUser(ctx, v.actor, NewUser{Username: f.Get("username"), Role: f.Get("role"), FHIRUser: f.Get("fhir_user"), Password: f.Get("password")})
		if err == nil {
			v.data["Notice"], v.data["Created"] = "User "+u.Username+" is created.", u.Username
		} else if status, err = v.fail(err); err != nil {
			return err
		} else {
			v.data["Form"] = map[string]string{"Username": f.Get("username"), "Role": f.Get("role"), "FHIRUser": f.Get("fhir_user")}
		}
	}
	us, err := c.svc.ListUsers(ctx)
	if err != nil {
		return err
	}
	v.data["Users"], v.data["Roles"] = us, identity.Roles
	return c.render(v, status, "admin-users.html", "users")
}

func (c *Console) user(v *view) error {
	ctx, name := v.r.Context(), v.r.PathValue("username")
	status := http.StatusOK
	if v.r.Method == http.MethodPost {
		f := v.r.PostForm
		var err error
		switch action := f.Get("action"); action {
		case "enable", "disable":
			st := map[string]string{"enable": store.UserEnabled, "disable": store.UserDisabled}[action]
			if _, err = c.svc.SetUserStatus(ctx, v.actor, name, st); err == nil {
				v.data["Notice"] = "The user is " + st + "."
				if st == store.UserDisabled {
					v.data["Notice"] = "The user is disabled: sign-in is refused, their sessions ended and every token issued to them is revoked."
				}
			}
		case "set-password":
			if err = c.svc.SetPassword(ctx, v.actor, name, f.Get("password")); err == nil {
				v.data["Notice"] = "The password is changed; the user's login sessions ended."
			}
		case "link":
			if _, err = c.svc.LinkUser(ctx, v.actor, name, f.Get("provider"), f.Get("subject")); err == nil {
				v.data["Notice"] = "The user is linked to subject " + strings.TrimSpace(f.Get("subject")) + " at " + strings.TrimSpace(f.Get("provider")) + "."
			}
		case "totp-enroll":
			var e TOTPEnrollment
			if e, err = c.svc.EnrollTOTP(ctx, v.actor, name); err == nil {
				v.data["TOTP"] = e
			}
		case "totp-disable":
			if _, err = c.svc.DisableTOTP(ctx, v.actor, name); err == nil {
				v.data["Notice"] = "Two-factor login is off for this user."
			}
		case "revoke-grant":
			if err = c.revokeOwnGrant(v, name, f.Get("grant")); err == nil {
				v.data["Notice"] = "The app's access is revoked; its tokens stopped working."
			}
		case "revoke-session", "revoke-all-sessions":
			session := "" // every session
			if action == "revoke-session" {
				session = f.Get("session")
			}
			var n int
			if n, err = c.svc.RevokeSession(ctx, v.actor, name, session); err == nil {
				v.data["Notice"] = plural(n, "login session") + " ended, with the apps' online access tied to them."
			}
		default:
			err = problem.New(problem.InvalidRequest, "the form's action %q is not one this page offers; reload the page", action)
		}
		if err != nil {
			if status, err = v.fail(err); err != nil {
				return err
			}
		}
	}
	u, err := c.svc.User(ctx, name)
	if err != nil {
		return err
	}
	grants, err := c.svc.Grants(ctx, name)
	if err != nil {
		return err
	}
	sessions, err := c.svc.Sessions(ctx, name)
	if err != nil {
		return err
	}
	v.data["User"], v.data["Grants"], v.data["Sessions"] = u, grants, sessions
	v.data["Self"] = v.actor.ID == "user:"+u.ID
	return c.render(v, status, "admin-user.html", "users")
}

// revokeOwnGrant revokes a grant shown on this user's page only (a form
// of one user's page cannot revoke another user's grant by its id).
func (c *Console) revokeOwnGrant(v *view, username, id string) error {
	gs, err := c.svc.Grants(v.r.Context(), username)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(gs, func(g Grant) bool { return g.ID == id }) {
		return problem.New(problem.NotFound, "%s has no live grant %q (it was revoked or expired already); reload the page", username, id)
	}
	return c.svc.RevokeGrant(v.r.Context(), v.actor, id)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return itoa(n) + " " + what + "s"
}

func (c *Console) keys(v *view) error {
	status := http.StatusOK
	if v.r.Method == http.MethodPost {
		var algs []string
		if a := v.r.PostForm.Get("alg"); a != "" && a != "both" {
			algs = []string{a}
		}
		rotated, err := c.svc.RotateKeys(v.r.Context(), v.actor, algs)
		if err == nil {
			v.data["Rotated"] = rotated
		} else if status, err = v.fail(err); err != nil {
			return err
		}
	}
	v.data["Keys"] = c.svc.Keys()
	return c.render(v, status, "admin-keys.html", "keys")
}

// settingView adds what the settings page needs to a setting.
type settingView struct {
	Setting
	Slug string // for element ids: tokens.access_token_ttl -> tokens-access-token-ttl
}

func (c *Console) settings(v *view) error {
	ctx := v.r.Context()
	status := http.StatusOK
	if v.r.Method == http.MethodPost {
		f := v.r.PostForm
		key := f.Get("key")
		var err error
		var s Setting
		switch action := f.Get("action"); action {
		case "set":
			if s, err = c.svc.SetSetting(ctx, v.actor, key, f.Get("value")); err == nil {
				v.data["Notice"] = key + " is now " + displayValue(s.Value) + " on every node (each applies it within a second)."
			}
		case "reset":
			if s, err = c.svc.ResetSetting(ctx, v.actor, key); err == nil {
				v.data["Notice"] = key + " follows the configuration again: " + displayValue(s.Value) + "."
			}
		default:
			err = problem.New(problem.InvalidRequest, "the form's action %q is not one this page offers; reload the page", action)
		}
		if err != nil {
			if status, err = v.fail(err); err != nil {
				return err
			}
			v.data["ErrorKey"], v.data["Typed"] = key, f.Get("value")
		}
	}
	ss, err := c.svc.ListSettings(ctx)
	if err != nil {
		return err
	}
	out := make([]settingView, 0, len(ss))
	for _, s := range ss {
		out = append(out, settingView{Setting: s, Slug: strings.NewReplacer(".", "-", "_", "-").Replace(s.Key)})
	}
	v.data["Settings"] = out
	return c.render(v, status, "admin-settings.html", "settings")
}

func displayValue(s string) string {
	if s == "" {
		return "empty (off)"
	}
	return s
}

func (c *Console) audit(v *view) error {
	q, err := ParseAuditQuery(v.r.URL.Query())
	status := http.StatusOK
	if err == nil {
		var page AuditPage
		if page, err = c.svc.Audit(v.r.Context(), q); err == nil {
			v.data["Events"] = page.Events
			if page.Next != "" {
				nv := q.Values()
				nv.Set("cursor", page.Next)
				v.data["Next"] = "/admin/audit?" + nv.Encode()
			}
		}
	}
	if err != nil {
		if status, err = v.fail(err); err != nil {
			return err
		}
	}
	f := v.r.URL.Query()
	v.data["Q"] = map[string]string{"Actor": f.Get("actor"), "Client": f.Get("client"), "Patient": f.Get("patient"), "Action": f.Get("action"),
		"Outcome": f.Get("outcome"), "Since": f.Get("since"), "Until": f.Get("until"), "Limit": f.Get("limit")}
	csv := q.Values()
	csv.Del("limit")
	v.data["CSV"] = "/admin/audit.csv"
	if len(csv) > 0 {
		v.data["CSV"] = "/admin/audit.csv?" + csv.Encode()
	}
	return c.render(v, status, "admin-audit.html", "audit")
}

func (c *Console) auditCSV(v *view) error {
	q, err := ParseAuditQuery(v.r.URL.Query())
	if err != nil {
		return err
	}
	return c.svc.WriteCSV(v.w, v.r, q)
}
