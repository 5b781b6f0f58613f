package e2e

// The admin console and the admin API, end to end: the console driven
// page by page with the headless form filler (the demo admin signs in
// through /login, approves a pending app, revokes a grant, changes a
// runtime setting, reads and exports the audit log), the JSON API and
// the CLI's --server mode with real tokens, and a runtime setting made
// at one node reaching another on PostgreSQL.

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// adminConsole is the demo admin signed in to the console.
func adminConsole(t *testing.T, s *devServer) *headless {
	t.Helper()
	b := newHeadless(t, s.URL)
	l := b.get(s.URL + "/admin/apps")
	if l.page == nil || len(l.page.forms("#login")) != 1 || !strings.Contains(strings.Join(l.hops, " "), "/login?next=%2Fadmin%2Fapps") {
		t.Fatalf("/admin/apps before signing in: want the sign-in page with next=/admin/apps, got %s (hops %v)", l, l.hops)
	}
	l = b.submit(l.page.form(t, "#login"), fill{set: map[string]string{"username": "admin", "password": demoPassword(t, s.dataDir, "admin")}}, "action=login")
	p := consolePage(t, l, "after signing in")
	if p.url.Path != "/admin/apps" {
		t.Fatalf("signing in went to %s, want back to /admin/apps", p.url)
	}
	return b
}

// consolePage checks a console page: 200, HTML, under the console's CSP,
// with the navigation.
func consolePage(t *testing.T, l landing, what string) *htmlPage {
	t.Helper()
	if l.page == nil {
		t.Fatalf("%s: the browser left the server: %s", what, l)
	}
	p := l.page
	if p.status != http.StatusOK || !p.isHTML() {
		t.Fatalf("%s: %s", what, p)
	}
	csp := p.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %s", what, csp, want)
		}
	}
	if strings.Contains(string(p.body), "<script") {
		t.Errorf("%s: the console page has a script", what)
	}
	if !strings.Contains(string(p.body), `id="admin-nav"`) {
		t.Errorf("%s: no console navigation: %s", what, p)
	}
	return p
}

func notice(t *testing.T, p *htmlPage, what string, words ...string) {
	t.Helper()
	text := p.text()
	if strings.Contains(string(p.body), `id="admin-error"`) {
		t.Fatalf("%s: the page shows an error: %s", what, text)
	}
	for _, w := range words {
		if !strings.Contains(text, w) {
			t.Errorf("%s: the page does not say %q: %s", what, w, text)
		}
	}
}

// TestAdminConsole: the demo admin approves a self-registered app, which
// then completes a sign-in; revokes the grant, whose token stops working;
// shortens the access token lifetime, which the next token shows; and
// finds it all in the audit log and its CSV export.
func TestAdminConsole(t *testing.T) {
	t.Parallel()
	f := newSmartFixture(t)
	s := f.s
	// A confidential app registers itself: it waits for approval.
	r := register(t, s.URL, "", map[string]any{"client_name": "Ward round app", "redirect_uris": []string{registeredRedirect},
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"authorization_code", "refresh_token"},
		"scope": "openid fhirUser user/*.rs offline_access"})
	var reg struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if r.status != http.StatusCreated {
		t.Fatalf("registration: %s", r)
	}
	r.json(t, &reg)
	app := cliClient{ClientID: reg.ClientID, ClientSecret: reg.ClientSecret}
	const scope = "openid fhirUser user/*.rs offline_access"
	ines, who := f.user(t, "ines.munoz")
	pending := ines.get(f.request(app, scope).url())
	if pending.page == nil || pending.page.status != http.StatusForbidden || !strings.Contains(pending.page.text(), "approv") {
		t.Fatalf("authorize with the pending app: want a 403 page about approval, got %s", pending)
	}

	b := adminConsole(t, s)
	apps := consolePage(t, b.get(s.URL+"/admin/apps"), "apps")
	if !strings.Contains(string(apps.body), `id="pending-`+app.ClientID+`"`) {
		t.Fatalf("the apps page does not list %s among the pending apps: %s", app.ClientID, apps)
	}
	p := consolePage(t, b.submit(apps.form(t, "#approve-"+app.ClientID), fill{}, "action=approve"), "approve")
	notice(t, p, "approve", "Ward round app is enabled (approved)")
	if p.url.Path != "/admin/apps/"+app.ClientID {
		t.Errorf("approving answered %s", p.url)
	}

	// The approved app signs the practitioner in and reads FHIR data.
	tok, fl := f.request(app, scope).run(t, ines, who)
	if fl.pages[len(fl.pages)-1] != "consent" {
		t.Errorf("pages %v: want the consent page", fl.pages)
	}
	f.wantFHIR(t, "the approved app's token", tok.AccessToken, "/Practitioner/pra-ines-munoz", http.StatusOK)
	if exp := time.Until(tok.Expiry); exp < 50*time.Minute {
		t.Errorf("access token lives %s, want the default hour", exp)
	}

	// The admin revokes the practitioner's grant: the token dies.
	up := consolePage(t, b.get(s.URL+"/admin/users/ines.munoz"), "user page")
	forms := up.forms(".revoke-grant")
	if len(forms) != 1 {
		t.Fatalf("ines.munoz's page shows %d grants to revoke, want 1: %s", len(forms), up)
	}
	p = consolePage(t, b.submit(forms[0], fill{}, "action=revoke-grant"), "revoke grant")
	notice(t, p, "revoke grant", "revoked")
	if len(p.forms(".revoke-grant")) != 0 {
		t.Errorf("the revoked grant is still listed: %s", p)
	}
	f.waitFHIRRefused(t, "a token of a grant the admin revoked", tok.AccessToken, "/Practitioner/pra-ines-munoz")
	if len(p.forms(".revoke-session")) == 0 {
		t.Errorf("ines.munoz's login session is not listed: %s", p)
	}

	// A runtime setting: access tokens now live 10 minutes.
	sp := consolePage(t, b.get(s.URL+"/admin/settings"), "settings")
	p = consolePage(t, b.submit(sp.form(t, "#setting-tokens-access-token-ttl"), fill{set: map[string]string{"value": "10m"}}, "action=set"), "set")
	notice(t, p, "set", "tokens.access_token_ttl is now 10m0s")
	bad := b.submit(p.form(t, "#setting-tokens-access-token-ttl"), fill{set: map[string]string{"value": "ten minutes"}}, "action=set")
	if bad.page == nil || bad.page.status != http.StatusBadRequest || !strings.Contains(bad.page.text(), "not a duration") {
		t.Errorf("an invalid value: want the settings page with 400 and the reason, got %s", bad)
	}
	tok, _ = f.request(app, scope).run(t, ines, who) // the consent went with the grant: asked again
	if exp := time.Until(tok.Expiry); exp > 10*time.Minute+5*time.Second || exp < 9*time.Minute {
		t.Errorf("after setting 10m, the access token lives %s", exp)
	}

	// The audit log names the admin for each action, and exports as CSV.
	var ap *htmlPage
	waitFor(t, 3*time.Second, "the audit page filtered by client.* shows the approval", func() (bool, string) {
		ap = consolePage(t, b.get(s.URL+"/admin/audit?action=client.*"), "audit")
		return strings.Contains(ap.text(), "client.approve"), ap.text()
	})
	var fp *htmlPage
	// Audit events are written in batches (audit.flush_interval).
	waitFor(t, 3*time.Second, "the audit page filtered by actor admin and setting.set shows the change", func() (bool, string) {
		fp = consolePage(t, b.submit(ap.form(t, "#audit-filter"), fill{set: map[string]string{"actor": "admin", "action": "setting.set"}}, ""), "audit filter")
		return strings.Contains(fp.text(), "setting.set") && !strings.Contains(fp.text(), "client.approve"), fp.text()
	})
	csvLink := ""
	for n := range fp.doc.Descendants() {
		if v, _ := attr(n, "id"); v == "audit-csv" {
			csvLink, _ = attr(n, "href")
		}
	}
	l := b.get(s.URL + csvLink)
	if l.page == nil || !strings.HasPrefix(l.page.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("the CSV link %q: %s", csvLink, l)
	}
	rows, err := csv.NewReader(strings.NewReader(string(l.page.body))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][5] != "setting.set" || !strings.HasPrefix(rows[1][2], "user:") {
		t.Errorf("CSV export of the filter: %q, %v; want a header and the one setting.set by the admin", rows, err)
	}

	// Forms need the CSRF token; other users are not admins.
	forged := b.post(s.URL+"/admin/settings", url.Values{"key": {"registration.policy"}, "value": {"token"}, "action": {"set"}})
	if forged.page == nil || forged.page.status != http.StatusForbidden || !strings.Contains(forged.page.text(), "security token") {
		t.Errorf("a console POST without the CSRF token: %s", forged)
	}
	l = ines.get(s.URL + "/admin")
	if l.page == nil || l.page.status != http.StatusForbidden || !strings.Contains(l.page.text(), "not an administrator") {
		t.Errorf("/admin for a practitioner: %s", l)
	}
}

// adminToken gets a token with smartgate:admin for the demo admin through
// the browser flow of the built-in smartgate-cli client (what `smartgate
// token --scope smartgate:admin` does).
func adminToken(t *testing.T, s *devServer) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	conf := &oauth2.Config{ClientID: "smartgate-cli", RedirectURL: "http://127.0.0.1:47009/callback", Scopes: []string{"smartgate:admin"},
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/oauth2/authorize", TokenURL: s.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	b := newHeadless(t, s.URL)
	fl := b.authorize(conf.AuthCodeURL("st-"+newJTI(), oauth2.S256ChallengeOption(verifier)), person{username: "admin", password: demoPassword(t, s.dataDir, "admin")})
	tok, err := conf.Exchange(t.Context(), fl.code(t), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	if tok.Extra("scope") != "smartgate:admin" {
		t.Fatalf("admin token scope %v", tok.Extra("scope"))
	}
	return tok.AccessToken
}

func apiCall(t *testing.T, method, u, tok, body string) reply {
	t.Helper()
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	var rd *strings.Reader
	if body != "" {
		h.Set("Content-Type", "application/json")
		rd = strings.NewReader(body)
	}
	if rd == nil {
		return do(t, method, u, nil, h)
	}
	return do(t, method, u, rd, h)
}

// TestAdminAPIAndCLI: the admin API's authentication with real tokens
// (none, one without smartgate:admin, an admin user's, an admin client's)
// and the CLI's --server mode on it.
func TestAdminAPIAndCLI(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	api := s.URL + "/admin/api"
	r := apiCall(t, "GET", api+"/clients", "", "")
	wantOAuthError(t, "no token", r, http.StatusUnauthorized, "token_missing", "smartgate:admin")

	backend := s.createClient(t, "Backend", "--type", "confidential-symmetric", "--scope", "system/Patient.rs")
	plain := mustToken(t, s.URL, creds{id: backend.ClientID, secret: backend.ClientSecret}, "system/Patient.rs")
	r = apiCall(t, "GET", api+"/clients", plain.AccessToken, "")
	wantOAuthError(t, "a token without smartgate:admin", r, http.StatusForbidden, "insufficient_scope", "smartgate:admin")

	// An admin client (client_credentials) and an admin user (browser).
	bot := s.createClient(t, "Ops bot", "--type", "confidential-symmetric", "--scope", "smartgate:admin", "--grant-type", "client_credentials", "--admin")
	botTok := mustToken(t, s.URL, creds{id: bot.ClientID, secret: bot.ClientSecret}, "smartgate:admin").AccessToken
	if r := apiCall(t, "GET", api+"/clients", botTok, ""); r.status != http.StatusOK {
		t.Fatalf("admin client: %s", r)
	}
	userTok := adminToken(t, s)
	var apps []map[string]any
	r = apiCall(t, "GET", api+"/clients", userTok, "")
	if r.status != http.StatusOK {
		t.Fatalf("admin user: %s", r)
	}
	r.json(t, &apps)
	if len(apps) < 4 {
		t.Errorf("%d clients listed, want the demo clients and ours", len(apps))
	}

	// The CLI with --server: no database here, only the API.
	elsewhere := filepath.Join(t.TempDir(), "no-data")
	remote := func(args ...string) result {
		t.Helper()
		return mustRun(t, append(s.env, "SMARTGATE_TOKEN="+userTok), append(args, "--server", s.URL, "--data-dir", elsewhere, "--output", "json")...)
	}
	var made struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Status       string `json:"status"`
	}
	out := remote("client", "create", "--name", "Remote app", "--type", "confidential-symmetric", "--redirect-uri", "https://remote.example.org/cb", "--scope", "openid fhirUser user/*.rs")
	if err := json.Unmarshal([]byte(out.stdout), &made); err != nil || made.ClientID == "" || made.ClientSecret == "" || made.Status != "enabled" {
		t.Fatalf("client create --server: %v %s", err, out)
	}
	remote("client", "update", made.ClientID, "--redirect-uri", "https://remote.example.org/other")
	shown := remote("client", "show", made.ClientID)
	if !strings.Contains(shown.stdout, "https://remote.example.org/other") || strings.Contains(shown.stdout, "remote.example.org/cb") {
		t.Errorf("client show --server after update: %s", shown)
	}
	remote("client", "disable", made.ClientID)
	if st := remote("client", "show", made.ClientID); !strings.Contains(st.stdout, `"status": "disabled"`) {
		t.Errorf("after disable --server: %s", st)
	}
	rot := remote("client", "rotate-secret", made.ClientID)
	if !strings.Contains(rot.stdout, "client_secret") {
		t.Errorf("rotate-secret --server: %s", rot)
	}
	cmd := append(s.env, "SMARTGATE_TOKEN="+userTok)
	created := smartgateStdin(t, cmd, "correct horse battery staple\n", "user", "create", "--server", s.URL, "--username", "remote.user", "--role", "patient", "--password-stdin", "--output", "json")
	if created.code != 0 || !strings.Contains(created.stdout, `"username": "remote.user"`) {
		t.Fatalf("user create --server: %s", created)
	}
	remote("user", "disable", "remote.user")
	if us := remote("user", "list"); !strings.Contains(us.stdout, "remote.user") {
		t.Errorf("user list --server: %s", us)
	}
	ks := remote("key", "list")
	var keyList []map[string]any
	if err := json.Unmarshal([]byte(ks.stdout), &keyList); err != nil || len(keyList) < 2 || keyList[0]["age_seconds"] == nil {
		t.Errorf("key list --server: %v %s", err, ks)
	}
	remote("key", "rotate", "--alg", "ES256")
	set := remote("setting", "set", "registration.policy", "token")
	if !strings.Contains(set.stdout, `"source": "database"`) {
		t.Errorf("setting set --server: %s", set)
	}
	r = register(t, s.URL, "", map[string]any{"client_name": "late", "redirect_uris": []string{registeredRedirect}, "token_endpoint_auth_method": "none", "scope": "openid patient/*.rs launch/patient"})
	wantOAuthError(t, "registration after the policy became token", r, http.StatusUnauthorized, "invalid_token", "initial access token")

	// Without a token, or on a command that acts on local files only.
	noTok := smartgate(t, s.env, "client", "list", "--server", s.URL)
	if noTok.code == 0 || !strings.Contains(noTok.stderr, "smartgate token --server "+s.URL+" --scope smartgate:admin") {
		t.Errorf("--server without a token: %s", noTok)
	}
	rewrap := smartgate(t, cmd, "key", "rewrap", "--server", s.URL)
	if rewrap.code == 0 || !strings.Contains(rewrap.stderr, "without --server") {
		t.Errorf("key rewrap --server: %s", rewrap)
	}
	refusedBot := smartgate(t, append(s.env, "SMARTGATE_TOKEN="+plain.AccessToken), "user", "list", "--server", s.URL)
	if refusedBot.code == 0 || !strings.Contains(refusedBot.stderr, "smartgate:admin") || !strings.Contains(refusedBot.stderr, "admin_required") {
		t.Errorf("--server with a token without the scope: %s", refusedBot)
	}

	// Every action above is in the audit log under its actor.
	var page struct {
		Events []struct{ Actor, Action string } `json:"events"`
	}
	var actions map[string]string
	waitFor(t, 3*time.Second, "the audit log holds the CLI's client actions", func() (bool, string) {
		r := apiCall(t, "GET", api+"/audit?action=client.*&limit=50", botTok, "")
		r.json(t, &page)
		// Each poll reads the log afresh: an earlier poll may have run
		// before the last batch of events was written, and seen only the
		// setup's own client.create (by "cli").
		actions = map[string]string{}
		for _, e := range page.Events { // newest first: the CLI's own actions
			if actions[e.Action] == "" {
				actions[e.Action] = e.Actor
			}
		}
		return actions["client.rotate_secret"] != "", r.String()
	})
	for _, a := range []string{"client.create", "client.update", "client.disable", "client.rotate_secret"} {
		if !strings.HasPrefix(actions[a], "user:") {
			t.Errorf("audit: %s by %q, want the admin user (events %v)", a, actions[a], page.Events)
		}
	}
}

// TestSettingsAcrossNodesOnPostgres: a runtime setting changed through the
// admin API of node A applies at node B within 2 s (the change sequence
// and NOTIFY), seen in what node B advertises and enforces.
func TestSettingsAcrossNodesOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := newPostgresDatabase(t)
	env := baseEnv("SMARTGATE_KEK=" + newKEK(t))
	portA, portB := freeLoopbackPort(t), freeLoopbackPort(t)
	for portB == portA {
		portB = freeLoopbackPort(t)
	}
	issuer := "http://127.0.0.1:" + strconv.Itoa(portA)
	node := func(name string, port int) string {
		p := start(t, env, "serve", "--issuer", issuer, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", filepath.Join(t.TempDir(), name), "--database", dsn)
		waitReady(t, p)
		return "http://127.0.0.1:" + strconv.Itoa(port)
	}
	a, b := node("a", portA), node("b", portB)
	adminDir := t.TempDir()
	r := mustRun(t, env, "client", "create", "--name", "Ops bot", "--type", "confidential-symmetric", "--scope", "smartgate:admin", "--grant-type", "client_credentials", "--admin",
		"--data-dir", adminDir, "--database", dsn, "--output", "json")
	var bot cliClient
	if err := json.Unmarshal([]byte(r.stdout), &bot); err != nil {
		t.Fatal(err)
	}
	tok := mustToken(t, a, creds{id: bot.ClientID, secret: bot.ClientSecret}, "smartgate:admin").AccessToken

	grantTypes := func(base string) []string {
		var d struct {
			GrantTypes []string `json:"grant_types_supported"`
		}
		rr := do(t, http.MethodGet, base+"/.well-known/openid-configuration", nil, nil)
		rr.json(t, &d)
		return d.GrantTypes
	}
	for _, g := range grantTypes(b) {
		if g == "password" {
			t.Fatalf("node B advertises the password grant before any change")
		}
	}
	if r := apiCall(t, "PUT", a+"/admin/api/settings/authorize.password_grant_roles", tok, `{"value":"patient"}`); r.status != http.StatusOK {
		t.Fatalf("set at node A: %s", r)
	}
	changed := time.Now()
	waitFor(t, 2*time.Second, "node B advertises the password grant a setting at node A turned on", func() (bool, string) {
		gs := grantTypes(b)
		return strings.Contains(strings.Join(gs, " "), "password"), strings.Join(gs, " ")
	})
	t.Logf("node B applied the setting %s after node A stored it", time.Since(changed).Round(time.Millisecond))
	// Node B's token endpoint accepts the grant for a patient now.
	pub := mustRun(t, env, "client", "create", "--name", "Script", "--type", "confidential-symmetric", "--scope", "openid",
		"--grant-type", "password", "--data-dir", adminDir, "--database", dsn, "--output", "json")
	var script cliClient
	if err := json.Unmarshal([]byte(pub.stdout), &script); err != nil {
		t.Fatal(err)
	}
	rr := postForm(t, b+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"nobody"}, "password": {"wrong password!"}, "scope": {"openid"}}, creds{id: script.ClientID, secret: script.ClientSecret})
	if rr.status == http.StatusBadRequest && strings.Contains(string(rr.body), "password_grant_disabled") {
		t.Errorf("node B still refuses the password grant as off: %s", rr)
	}
	// And back.
	if r := apiCall(t, "DELETE", b+"/admin/api/settings/authorize.password_grant_roles", tok, ""); r.status != http.StatusOK {
		t.Fatalf("reset at node B: %s", r)
	}
	waitFor(t, 2*time.Second, "node A stops advertising the password grant after the reset at node B", func() (bool, string) {
		gs := grantTypes(a)
		return !strings.Contains(strings.Join(gs, " "), "password"), strings.Join(gs, " ")
	})
}
