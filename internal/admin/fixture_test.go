package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"smartgate/internal/app"
	"smartgate/internal/clientkeys"
	"smartgate/internal/config"
	"smartgate/internal/identity"
	"smartgate/internal/keys"
	"smartgate/internal/oauth"
	"smartgate/internal/problem"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// fixture is the administration of one node on a real SQLite database in
// a temp dir: the same registry, identity service, key manager and
// settings the server wires, with audit events written at once.
type fixture struct {
	t        *testing.T
	a        *app.App
	svc      *Service
	settings *Settings
	live     *config.Live
	reg      *oauth.Registry
	users    *identity.Service
	tokens   *token.Service
	revs     *token.Revocations
	admin    store.User
	actor    Actor
}

func newFixture(t *testing.T, env ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Load(config.Options{Flags: map[string]string{"dev": "true", "data_dir": dir}, Env: env})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, slog.New(slog.DiscardHandler), app.Options{InitKeys: true})
	if err != nil {
		t.Fatalf("app.Open: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	f := &fixture{t: t, a: a}
	rec := identity.Direct{Store: a.Store}
	f.live = config.NewLive(&cfg.Config)
	f.settings = NewSettings(a.Store, cfg, f.live, nil)
	f.reg = oauth.NewRegistry(a.Store, clientkeys.New(clientkeys.Options{AllowPrivate: true}), &cfg.Config, nil)
	f.users = identity.FromConfig(a.Store, &cfg.Config, func() (*keys.KEK, error) { return app.LoadKEK(&cfg.Config) }, rec)
	f.svc = New(Deps{Store: a.Store, Clients: f.reg, Users: f.users, Keys: a.Keys, Settings: f.settings, Audit: rec})
	f.revs = token.NewRevocations(a.Store, nil)
	f.tokens = token.New(a.Keys, f.revs, token.Options{Issuer: "http://127.0.0.1:8080", Audience: "http://127.0.0.1:8080/fhir"})
	if err := f.settings.Load(ctx); err != nil {
		t.Fatal(err)
	}
	f.admin = f.newUser("root.admin", store.RoleAdmin, "")
	f.actor = Actor{ID: "user:" + f.admin.ID, Name: f.admin.Username, Via: "api"}
	return f
}

func (f *fixture) ctx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	f.t.Cleanup(cancel)
	return c
}

const testPassword = "correct horse battery staple"

func (f *fixture) newUser(name, role, fhirUser string) store.User {
	f.t.Helper()
	u, err := f.users.CreateUser(f.ctx(), identity.NewUser{Username: name, Role: role, FHIRUser: fhirUser, Password: testPassword}, "system")
	if err != nil {
		f.t.Fatalf("CreateUser %s: %v", name, err)
	}
	return u
}

// selfRegistered registers a client as dynamic registration does (no
// administrator): a confidential one waits for approval.
func (f *fixture) selfRegistered(name string) *oauth.Client {
	f.t.Helper()
	c, err := f.reg.Create(f.ctx(), store.ClientMetadata{ClientName: name, TokenEndpointAuthMethod: "client_secret_basic",
		RedirectURIs: []string{"https://app.example.org/cb"}, Scope: "openid fhirUser user/*.rs"}, oauth.Options{})
	if err != nil {
		f.t.Fatalf("Create %s: %v", name, err)
	}
	return c.Client
}

// events returns the audit events of action, newest first.
func (f *fixture) events(action string) []store.AuditEvent {
	f.t.Helper()
	es, err := f.a.Store.ListAudit(f.ctx(), store.AuditFilter{Action: action, Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

// wantEvent checks that the newest event of action is by the fixture's
// admin, about clientID, and its detail holds every word.
func (f *fixture) wantEvent(action, clientID string, words ...string) {
	f.t.Helper()
	es := f.events(action)
	if len(es) == 0 {
		f.t.Errorf("no audit event %s", action)
		return
	}
	e := es[0]
	if e.Actor != f.actor.ID || e.ClientID != clientID || e.Outcome != "success" {
		f.t.Errorf("audit %s: actor %q client %q outcome %q; want %q %q success", action, e.Actor, e.ClientID, e.Outcome, f.actor.ID, clientID)
	}
	for _, w := range words {
		if !strings.Contains(e.Detail, w) {
			f.t.Errorf("audit %s: detail %s does not contain %q", action, e.Detail, w)
		}
	}
}

// wantProblem fails unless err is the problem id with a description
// holding every word.
func wantProblem(t *testing.T, what string, err error, id problem.ID, words ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, id)
		return
	}
	pe := problem.From(err)
	if pe.ID != id {
		t.Errorf("%s: error %s (%s), want %s", what, pe.ID, pe.Description, id)
		return
	}
	for _, w := range words {
		if !strings.Contains(pe.Description, w) {
			t.Errorf("%s: %q does not say %q", what, pe.Description, w)
		}
	}
}

// token issues an access token the way the token endpoint does.
func (f *fixture) token(subject, clientID, scope string) string {
	f.t.Helper()
	now := time.Now()
	tok, err := f.tokens.Issue(token.Claims{Subject: subject, ClientID: clientID, Scope: scope, IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix()})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// apiServer serves the admin API as the server registers it: one pattern
// per method, errors written on the OAuth JSON surface.
func (f *fixture) apiServer() *httptest.Server {
	f.t.Helper()
	mux := http.NewServeMux()
	errs := &problem.Writer{BaseURL: "http://127.0.0.1:8080", Log: slog.New(slog.DiscardHandler)}
	for _, rt := range NewAPI(f.svc, f.tokens).Routes() {
		h := rt.Handler
		for _, m := range rt.Methods {
			mux.Handle(m+" "+rt.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
				if err := h(w, r); err != nil {
					errs.Write(w, r, problem.SurfaceOAuth, err)
				}
			}))
		}
	}
	ts := httptest.NewServer(mux)
	f.t.Cleanup(ts.Close)
	return ts
}

// reply is an HTTP answer read whole.
type reply struct {
	status int
	header http.Header
	body   string
}

func call(t *testing.T, method, url, tok, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}
