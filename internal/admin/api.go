package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// Verifier checks access tokens (token.Service): signature, issuer,
// audience, expiry and revocation.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

// HandlerFunc is an endpoint: it returns errors and the server writes
// them on the route's surface.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one endpoint of the admin API or the console.
type Route struct {
	Path    string
	Methods []string
	Handler HandlerFunc
}

// API is the admin JSON API under /admin/api (docs/admin.md). Every
// request needs an access token with the smartgate:admin scope, issued to
// an enabled admin user or to an enabled admin client (DESIGN.md, "Tokens
// and grants").
type API struct {
	svc    *Service
	tokens Verifier
}

// NewAPI returns the API over svc.
func NewAPI(svc *Service, tokens Verifier) *API { return &API{svc: svc, tokens: tokens} }

const adminScope = "smartgate:admin"

// challenge is the WWW-Authenticate of a refusal (RFC 6750 §3).
func challenge(extra string) string {
	h := `Bearer realm="smartgate", scope="` + adminScope + `"`
	if extra != "" {
		h += ", " + extra
	}
	return h
}

func quoteParam(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

// Authenticate returns the actor of an admin API request, or the refusal:
// 401 without a token or with a bad one, 403 when the token lacks
// smartgate:admin or its user or client is no longer an enabled admin.
func (api *API) Authenticate(r *http.Request) (Actor, error) {
	ctx := r.Context()
	h := r.Header.Get("Authorization")
	scheme, raw, _ := strings.Cut(h, " ")
	raw = strings.TrimSpace(raw)
	if h == "" || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return Actor{}, problem.New(problem.AdminTokenRequired, "send an access token with the %s scope as Authorization: Bearer <token>; an administrator gets one with: smartgate token --scope %s", adminScope, adminScope).
			WithHeader("WWW-Authenticate", challenge(""))
	}
	c, err := api.tokens.Verify(ctx, raw)
	if err != nil {
		var te *token.Error
		if errors.As(err, &te) {
			return Actor{}, problem.New(problem.InvalidToken, "%s", te.Description).
				WithHeader("WWW-Authenticate", challenge(`error="invalid_token", error_description="`+quoteParam(te.Description)+`"`))
		}
		return Actor{}, err
	}
	granted, _ := scope.ParseList(c.Scope)
	if !slices.ContainsFunc(granted, func(sc scope.Scope) bool { return sc.Kind == scope.KindAdmin }) {
		return Actor{}, problem.New(problem.AdminRequired, "the access token was not granted the %s scope (its scope: %q); get one with scope=%s as an administrator", adminScope, c.Scope, adminScope).
			WithHeader("WWW-Authenticate", challenge(`error="insufficient_scope"`))
	}
	forbidden := func(format string, args ...any) error {
		return problem.New(problem.AdminRequired, format, args...).WithHeader("WWW-Authenticate", challenge(`error="insufficient_scope"`))
	}
	st := api.svc.d.Store
	if c.Subject == c.ClientID {
		// client_credentials: the client acts for itself.
		cl, err := st.GetClient(ctx, c.ClientID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (!cl.Admin || cl.Status != store.ClientEnabled)) {
			return Actor{}, forbidden("client %s is no longer an enabled admin client; an administrator marks it with: smartgate client update %s --admin", c.ClientID, c.ClientID)
		}
		if err != nil {
			return Actor{}, err
		}
		return Actor{ID: "client:" + cl.ID, Name: AppOf(cl).Name(), Via: "api"}, nil
	}
	u, err := st.GetUser(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Role != store.RoleAdmin || u.Status != store.UserEnabled)) {
		return Actor{}, forbidden("the token's user is no longer an enabled administrator")
	}
	if err != nil {
		return Actor{}, err
	}
	return Actor{ID: "user:" + u.ID, Name: u.Username, Via: "api"}, nil
}

// authed wraps an endpoint with authentication.
func (api *API) authed(h func(w http.ResponseWriter, r *http.Request, a Actor) error) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := api.Authenticate(r)
		if err != nil {
			return err
		}
		return h(w, r, a)
	}
}

// byMethod dispatches one path's methods.
func byMethod(hs map[string]func(w http.ResponseWriter, r *http.Request, a Actor) error) func(w http.ResponseWriter, r *http.Request, a Actor) error {
	return func(w http.ResponseWriter, r *http.Request, a Actor) error {
		m := r.Method
		if m == http.MethodHead {
			m = http.MethodGet
		}
		return hs[m](w, r, a)
	}
}

// Routes lists the API's endpoints.
func (api *API) Routes() []Route {
	const p = "/admin/api"
	get, post, del := http.MethodGet, http.MethodPost, http.MethodDelete
	route := func(path string, hs map[string]func(w http.ResponseWriter, r *http.Request, a Actor) error) Route {
		var ms []string
		for _, m := range []string{get, post, http.MethodPut, del} {
			if hs[m] != nil {
				ms = append(ms, m)
			}
		}
		return Route{Path: p + path, Methods: ms, Handler: api.authed(byMethod(hs))}
	}
	type h = func(w http.ResponseWriter, r *http.Request, a Actor) error
	return []Route{
		route("/clients", map[string]h{get: api.listApps, post: api.createApp}),
		route("/clients/{id}", map[string]h{get: api.showApp, post: api.updateApp, del: api.deleteApp}),
		route("/clients/{id}/enable", map[string]h{post: api.appStatus(store.ClientEnabled)}),
		route("/clients/{id}/disable", map[string]h{post: api.appStatus(store.ClientDisabled)}),
		route("/clients/{id}/rotate-secret", map[string]h{post: api.rotateSecret}),
		route("/initial-tokens", map[string]h{post: api.initialToken}),
		route("/users", map[string]h{get: api.listUsers, post: api.createUser}),
		route("/users/{username}", map[string]h{get: api.showUser}),
		route("/users/{username}/enable", map[string]h{post: api.userStatus(store.UserEnabled)}),
		route("/users/{username}/disable", map[string]h{post: api.userStatus(store.UserDisabled)}),
		route("/users/{username}/password", map[string]h{post: api.setPassword}),
		route("/users/{username}/links", map[string]h{post: api.linkUser}),
		route("/users/{username}/totp", map[string]h{post: api.enrollTOTP, del: api.disableTOTP}),
		route("/users/{username}/grants", map[string]h{get: api.listGrants}),
		route("/users/{username}/sessions", map[string]h{get: api.listSessions, del: api.revokeSessions}),
		route("/users/{username}/sessions/{session}", map[string]h{del: api.revokeSession}),
		route("/grants/{id}", map[string]h{del: api.revokeGrant}),
		route("/keys", map[string]h{get: api.listKeys}),
		route("/keys/rotate", map[string]h{post: api.rotateKeys}),
		route("/settings", map[string]h{get: api.listSettings}),
		route("/settings/{key}", map[string]h{get: api.showSetting, http.MethodPut: api.setSetting, del: api.resetSetting}),
		route("/audit", map[string]h{get: api.audit}),
	}
}

// writeJSON writes a successful answer; admin data is never cached.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return problem.Internal(err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return nil
}

// readJSON decodes a JSON object body into v, refusing unknown members
// (a misspelt field would otherwise be ignored silently).
func readJSON(r *http.Request, v any) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		got := mt
		if got == "" {
			got = "none"
		}
		return problem.New(problem.InvalidRequest, "the Content-Type is %s; the admin API takes a JSON object: send Content-Type: application/json", got)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problem.New(problem.RequestTooLarge, "the body is larger than %d bytes", mbe.Limit)
		}
		msg := err.Error()
		if errors.Is(err, io.EOF) {
			msg = "the body is empty"
		}
		return problem.New(problem.InvalidRequest, "the body is not the JSON object this endpoint takes: %s (docs/admin.md lists the fields)", strings.TrimPrefix(msg, "json: "))
	}
	if dec.More() {
		return problem.New(problem.InvalidRequest, "the body holds more than one JSON value; send one object")
	}
	return nil
}

func (api *API) listApps(w http.ResponseWriter, r *http.Request, _ Actor) error {
	apps, err := api.svc.ListApps(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apps)
}

func (api *API) showApp(w http.ResponseWriter, r *http.Request, _ Actor) error {
	app, err := api.svc.App(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, app)
}

func (api *API) createApp(w http.ResponseWriter, r *http.Request, a Actor) error {
	var n NewApp
	if err := readJSON(r, &n); err != nil {
		return err
	}
	app, err := api.svc.CreateApp(r.Context(), a, n)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/api/clients/"+app.ClientID)
	return writeJSON(w, http.StatusCreated, app)
}

func (api *API) updateApp(w http.ResponseWriter, r *http.Request, a Actor) error {
	var ch AppChange
	if err := readJSON(r, &ch); err != nil {
		return err
	}
	app, err := api.svc.UpdateApp(r.Context(), a, r.PathValue("id"), ch)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, app)
}

func (api *API) deleteApp(w http.ResponseWriter, r *http.Request, a Actor) error {
	id := r.PathValue("id")
	if err := api.svc.DeleteApp(r.Context(), a, id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
}

func (api *API) appStatus(status string) func(w http.ResponseWriter, r *http.Request, a Actor) error {
	return func(w http.ResponseWriter, r *http.Request, a Actor) error {
		app, err := api.svc.SetAppStatus(r.Context(), a, r.PathValue("id"), status)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, app)
	}
}

func (api *API) rotateSecret(w http.ResponseWriter, r *http.Request, a Actor) error {
	app, err := api.svc.RotateAppSecret(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, app)
}

func (api *API) initialToken(w http.ResponseWriter, r *http.Request, a Actor) error {
	var in struct {
		ExpiresIn int64 `json:"expires_in"` // seconds
	}
	if r.ContentLength != 0 {
		if err := readJSON(r, &in); err != nil {
			return err
		}
	}
	valid := 7 * 24 * time.Hour
	if in.ExpiresIn != 0 {
		valid = time.Duration(in.ExpiresIn) * time.Second
	}
	tok, err := api.svc.CreateInitialToken(r.Context(), a, valid)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, tok)
}

func (api *API) listUsers(w http.ResponseWriter, r *http.Request, _ Actor) error {
	us, err := api.svc.ListUsers(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, us)
}

func (api *API) showUser(w http.ResponseWriter, r *http.Request, _ Actor) error {
	u, err := api.svc.User(r.Context(), r.PathValue("username"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, u)
}

func (api *API) createUser(w http.ResponseWriter, r *http.Request, a Actor) error {
	var n NewUser
	if err := readJSON(r, &n); err != nil {
		return err
	}
	u, err := api.svc.CreateUser(r.Context(), a, n)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/api/users/"+u.Username)
	return writeJSON(w, http.StatusCreated, u)
}

func (api *API) userStatus(status string) func(w http.ResponseWriter, r *http.Request, a Actor) error {
	return func(w http.ResponseWriter, r *http.Request, a Actor) error {
		u, err := api.svc.SetUserStatus(r.Context(), a, r.PathValue("username"), status)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, u)
	}
}

func (api *API) setPassword(w http.ResponseWriter, r *http.Request, a Actor) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	name := r.PathValue("username")
	if err := api.svc.SetPassword(r.Context(), a, name, in.Password); err != nil {
		return err
	}
	u, err := api.svc.User(r.Context(), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"username": u.Username, "password": "changed"})
}

func (api *API) linkUser(w http.ResponseWriter, r *http.Request, a Actor) error {
	var in struct {
		Provider string `json:"provider"`
		Subject  string `json:"subject"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	u, err := api.svc.LinkUser(r.Context(), a, r.PathValue("username"), in.Provider, in.Subject)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, u)
}

func (api *API) enrollTOTP(w http.ResponseWriter, r *http.Request, a Actor) error {
	e, err := api.svc.EnrollTOTP(r.Context(), a, r.PathValue("username"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (api *API) disableTOTP(w http.ResponseWriter, r *http.Request, a Actor) error {
	u, err := api.svc.DisableTOTP(r.Context(), a, r.PathValue("username"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, u)
}

func (api *API) listGrants(w http.ResponseWriter, r *http.Request, _ Actor) error {
	gs, err := api.svc.Grants(r.Context(), r.PathValue("username"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, gs)
}

func (api *API) revokeGrant(w http.ResponseWriter, r *http.Request, a Actor) error {
	id := r.PathValue("id")
	if err := api.svc.RevokeGrant(r.Context(), a, id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
}

func (api *API) listSessions(w http.ResponseWriter, r *http.Request, _ Actor) error {
	ss, err := api.svc.Sessions(r.Context(), r.PathValue("username"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ss)
}

func (api *API) revokeSessions(w http.ResponseWriter, r *http.Request, a Actor) error {
	n, err := api.svc.RevokeSession(r.Context(), a, r.PathValue("username"), "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int{"sessions_revoked": n})
}

func (api *API) revokeSession(w http.ResponseWriter, r *http.Request, a Actor) error {
	n, err := api.svc.RevokeSession(r.Context(), a, r.PathValue("username"), r.PathValue("session"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int{"sessions_revoked": n})
}

func (api *API) listKeys(w http.ResponseWriter, r *http.Request, _ Actor) error {
	return writeJSON(w, http.StatusOK, api.svc.Keys())
}

func (api *API) rotateKeys(w http.ResponseWriter, r *http.Request, a Actor) error {
	var in struct {
		Alg string `json:"alg,omitempty"`
	}
	if r.ContentLength != 0 {
		if err := readJSON(r, &in); err != nil {
			return err
		}
	}
	var algs []string
	if in.Alg != "" {
		algs = []string{in.Alg}
	}
	out, err := api.svc.RotateKeys(r.Context(), a, algs)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (api *API) listSettings(w http.ResponseWriter, r *http.Request, _ Actor) error {
	ss, err := api.svc.ListSettings(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ss)
}

func (api *API) showSetting(w http.ResponseWriter, r *http.Request, _ Actor) error {
	key := r.PathValue("key")
	if err := api.svc.d.Settings.check(key); err != nil && !problem.IsID(err, problem.SettingPinned) {
		return err
	}
	s, err := api.svc.setting(r.Context(), key)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s)
}

func (api *API) setSetting(w http.ResponseWriter, r *http.Request, a Actor) error {
	var in struct {
		Value *string `json:"value"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Value == nil {
		return problem.New(problem.InvalidRequest, "value is missing; send {\"value\": \"...\"} (a duration like 30m, a policy, or roles comma-separated; \"\" turns the password grant off)")
	}
	s, err := api.svc.SetSetting(r.Context(), a, r.PathValue("key"), *in.Value)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s)
}

func (api *API) resetSetting(w http.ResponseWriter, r *http.Request, a Actor) error {
	s, err := api.svc.ResetSetting(r.Context(), a, r.PathValue("key"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s)
}

// audit is GET /admin/api/audit: a page of JSON, or with format=csv (or
// Accept: text/csv) every matching event as CSV.
func (api *API) audit(w http.ResponseWriter, r *http.Request, _ Actor) error {
	q, err := ParseAuditQuery(r.URL.Query())
	if err != nil {
		return err
	}
	if wantsCSV(r) {
		return api.svc.WriteCSV(w, r, q)
	}
	page, err := api.svc.Audit(r.Context(), q)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func wantsCSV(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "csv":
		return true
	case "":
		return strings.Contains(r.Header.Get("Accept"), "text/csv")
	}
	return false
}

// WriteCSV answers with the CSV export of q: checked before the first
// byte, so a bad filter is still a clean error.
func (s *Service) WriteCSV(w http.ResponseWriter, r *http.Request, q AuditQuery) error {
	if _, err := s.filter(r.Context(), q); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="smartgate-audit-%s.csv"`, s.now().Format("20060102-150405")))
	h.Set("Cache-Control", "no-store")
	truncated, err := s.ExportAudit(r.Context(), w, q)
	if err != nil {
		// The header is gone: the log says what failed.
		s.d.Log.Error("audit CSV export failed midway", "error", err.Error())
		return nil
	}
	if truncated {
		s.d.Log.Warn("audit CSV export cut at the row limit; narrow the filter", "rows", MaxExport)
	}
	return nil
}
