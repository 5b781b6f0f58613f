package admin

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"smartgate/internal/oauth"
	"smartgate/internal/store"
)

// decode reads a JSON answer into v, failing with the answer.
func decode(t *testing.T, what string, r reply, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: HTTP %d %s, want %d", what, r.status, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); status < 300 && v != nil && ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.body), v); err != nil {
			t.Fatalf("%s: %v in %s", what, err, r.body)
		}
	}
}

// wantError checks a refusal: status, error id (error_uri anchor) and
// words of the description.
func wantError(t *testing.T, what string, r reply, status int, id string, words ...string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if r.status != status || json.Unmarshal([]byte(r.body), &e) != nil {
		t.Errorf("%s: HTTP %d %s, want %d with a JSON error", what, r.status, r.body, status)
		return
	}
	if !strings.HasSuffix(e.URI, "#"+id) {
		t.Errorf("%s: error_uri %q, want .../docs/errors#%s", what, e.URI, id)
	}
	for _, w := range words {
		if !strings.Contains(e.Description, w) {
			t.Errorf("%s: %q does not say %q", what, e.Description, w)
		}
	}
}

func TestAPIAuthentication(t *testing.T) {
	f := newFixture(t)
	ts := f.apiServer()
	u := ts.URL + "/admin/api/clients"
	ctx := f.ctx()

	r := call(t, "GET", u, "", "")
	wantError(t, "no token", r, 401, "admin_token_required", "smartgate:admin", "smartgate token")
	if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer realm="smartgate"`) || strings.Contains(h, "error=") {
		t.Errorf("no token: WWW-Authenticate %q, want a bare Bearer challenge (RFC 6750 section 3.1)", h)
	}
	r = call(t, "GET", u, "not.a.jwt", "")
	wantError(t, "a bearer that is not a token", r, 401, "invalid_token")
	if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
		t.Errorf("bad token: WWW-Authenticate %q", h)
	}

	prac := f.newUser("pra.user", store.RolePractitioner, "Practitioner/p1")
	r = call(t, "GET", u, f.token(f.admin.ID, oauth.CLIClientID, "openid fhirUser"), "")
	wantError(t, "an admin's token without smartgate:admin", r, 403, "admin_required", "smartgate:admin")
	if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, `scope="smartgate:admin"`) {
		t.Errorf("403: WWW-Authenticate %q", h)
	}
	r = call(t, "GET", u, f.token(prac.ID, oauth.CLIClientID, "smartgate:admin"), "")
	wantError(t, "a practitioner's token with the scope", r, 403, "admin_required", "no longer an enabled administrator")

	r = call(t, "GET", u, f.token(f.admin.ID, oauth.CLIClientID, "openid smartgate:admin"), "")
	var apps []App
	decode(t, "an admin's token", r, 200, &apps)

	// Admin clients (client_credentials: sub is the client).
	adm, err := f.svc.CreateApp(ctx, f.actor, NewApp{ClientMetadata: store.ClientMetadata{ClientName: "Ops bot", Scope: "system/Patient.rs smartgate:admin"}, Type: oauth.ConfidentialSymmetric, Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	botTok := f.token(adm.ClientID, adm.ClientID, "smartgate:admin")
	decode(t, "an admin client's token", call(t, "GET", u, botTok, ""), 200, &apps)
	no := false
	if _, err := f.svc.UpdateApp(ctx, f.actor, adm.ClientID, AppChange{Admin: &no}); err != nil {
		t.Fatal(err)
	}
	wantError(t, "a token of a client no longer admin", call(t, "GET", u, botTok, ""), 403, "admin_required", "smartgate client update "+adm.ClientID+" --admin")

	// A disabled admin's token stops at once.
	other := f.newUser("other.admin", store.RoleAdmin, "")
	otherTok := f.token(other.ID, oauth.CLIClientID, "smartgate:admin")
	decode(t, "the other admin", call(t, "GET", u, otherTok, ""), 200, nil)
	if _, err := f.svc.SetUserStatus(ctx, f.actor, "other.admin", store.UserDisabled); err != nil {
		t.Fatal(err)
	}
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	wantError(t, "a disabled admin's token", call(t, "GET", u, otherTok, ""), 401, "invalid_token", "revoked")

	// The audit names the actor of API calls.
	if _, err := f.svc.d.Store.ListAudit(ctx, store.AuditFilter{}); err != nil {
		t.Fatal(err)
	}
}

func TestAPIApps(t *testing.T) {
	f := newFixture(t)
	ts := f.apiServer()
	tok := f.token(f.admin.ID, oauth.CLIClientID, "smartgate:admin")
	base := ts.URL + "/admin/api"
	pending := f.selfRegistered("Waiting app")

	var created App
	r := call(t, "POST", base+"/clients", tok, `{"client_name":"Lab sync","type":"confidential-symmetric","scope":"system/Observation.rs","introspect_any":true}`)
	decode(t, "create", r, 201, &created)
	if created.ClientSecret == "" || !created.IntrospectAny || r.header.Get("Location") != "/admin/api/clients/"+created.ClientID {
		t.Errorf("create: %+v, Location %q", created, r.header.Get("Location"))
	}
	es := f.events("client.create")
	if len(es) == 0 || es[0].Actor != "user:"+f.admin.ID || !strings.Contains(es[0].Detail, `"via":"api"`) {
		t.Errorf("client.create audit %+v", es)
	}
	wantError(t, "create with an unknown field", call(t, "POST", base+"/clients", tok, `{"client_name":"x","type":"public","redirect_uri":"https://x"}`), 400, "invalid_request", "redirect_uri")
	wantError(t, "create without a type", call(t, "POST", base+"/clients", tok, `{"client_name":"x","scope":"openid"}`), 400, "invalid_client_metadata", "type is required")
	wantError(t, "create as a form", func() reply {
		req, _ := http.NewRequest("POST", base+"/clients", strings.NewReader("client_name=x"))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{resp.StatusCode, resp.Header, string(b)}
	}(), 400, "invalid_request", "application/json")

	var list []App
	decode(t, "list", call(t, "GET", base+"/clients", tok, ""), 200, &list)
	if len(list) < 2 || list[0].ClientID != pending.ID {
		t.Errorf("list: first %+v, want the pending app first", list[0])
	}
	var one App
	decode(t, "show", call(t, "GET", base+"/clients/"+pending.ID, tok, ""), 200, &one)
	if one.Status != store.ClientPending {
		t.Errorf("show: %+v", one)
	}
	wantError(t, "show unknown", call(t, "GET", base+"/clients/nope", tok, ""), 404, "not_found", "nope")

	decode(t, "approve", call(t, "POST", base+"/clients/"+pending.ID+"/enable", tok, ""), 200, &one)
	if one.Status != store.ClientEnabled || !one.Verified {
		t.Errorf("after enable: %+v", one)
	}
	decode(t, "update", call(t, "POST", base+"/clients/"+pending.ID, tok, `{"redirect_uris":["https://app.example.org/new"],"scope":"openid"}`), 200, &one)
	if len(one.Metadata.RedirectURIs) != 1 || one.Metadata.RedirectURIs[0] != "https://app.example.org/new" || one.Metadata.Scope != "openid" {
		t.Errorf("after update: %+v", one.Metadata)
	}
	wantError(t, "update with a bad redirect URI", call(t, "POST", base+"/clients/"+pending.ID, tok, `{"redirect_uris":["app.example.org"]}`), 400, "invalid_redirect_uri")
	decode(t, "rotate", call(t, "POST", base+"/clients/"+pending.ID+"/rotate-secret", tok, ""), 200, &one)
	if one.ClientSecret == "" {
		t.Error("rotate-secret answered no secret")
	}
	decode(t, "disable", call(t, "POST", base+"/clients/"+pending.ID+"/disable", tok, ""), 200, &one)
	if one.Status != store.ClientDisabled {
		t.Errorf("after disable: %s", one.Status)
	}
	var it InitialToken
	decode(t, "initial token", call(t, "POST", base+"/initial-tokens", tok, `{"expires_in":3600}`), 201, &it)
	if it.Token == "" || it.ExpiresAt.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("initial token %+v", it)
	}
	decode(t, "delete", call(t, "DELETE", base+"/clients/"+pending.ID, tok, ""), 200, nil)
	wantError(t, "show deleted", call(t, "GET", base+"/clients/"+pending.ID, tok, ""), 404, "not_found")
}

func TestAPIUsersGrantsSessions(t *testing.T) {
	f := newFixture(t)
	ts := f.apiServer()
	tok := f.token(f.admin.ID, oauth.CLIClientID, "smartgate:admin")
	base := ts.URL + "/admin/api"
	ctx := f.ctx()

	var u User
	r := call(t, "POST", base+"/users", tok, `{"username":"amy.shaw","role":"patient","fhir_user":"Patient/pat-1","password":"`+testPassword+`"}`)
	decode(t, "create user", r, 201, &u)
	if u.Username != "amy.shaw" || u.Role != "patient" || !u.HasPassword || strings.Contains(r.body, "argon2") {
		t.Errorf("created user: %s", r.body)
	}
	wantError(t, "a second amy", call(t, "POST", base+"/users", tok, `{"username":"AMY.shaw","role":"patient"}`), 409, "user_exists")
	var us []User
	decode(t, "list users", call(t, "GET", base+"/users", tok, ""), 200, &us)
	if len(us) != 2 {
		t.Errorf("%d users, want 2", len(us))
	}
	decode(t, "show user", call(t, "GET", base+"/users/amy.shaw", tok, ""), 200, &u)
	decode(t, "disable", call(t, "POST", base+"/users/amy.shaw/disable", tok, ""), 200, &u)
	if u.Status != store.UserDisabled {
		t.Errorf("after disable: %s", u.Status)
	}
	decode(t, "enable", call(t, "POST", base+"/users/amy.shaw/enable", tok, ""), 200, &u)
	decode(t, "password", call(t, "POST", base+"/users/amy.shaw/password", tok, `{"password":"a new long passphrase"}`), 200, nil)
	wantError(t, "weak password", call(t, "POST", base+"/users/amy.shaw/password", tok, `{"password":"abc"}`), 400, "password_rejected")
	decode(t, "link", call(t, "POST", base+"/users/amy.shaw/links", tok, `{"provider":"keycloak","subject":"s-1"}`), 200, &u)
	if len(u.Links) != 1 {
		t.Errorf("links after link: %+v", u.Links)
	}
	var e TOTPEnrollment
	decode(t, "totp enroll", call(t, "POST", base+"/users/amy.shaw/totp", tok, ""), 200, &e)
	if e.Secret == "" {
		t.Error("no TOTP secret")
	}
	decode(t, "totp disable", call(t, "DELETE", base+"/users/amy.shaw/totp", tok, ""), 200, &u)
	wantError(t, "unknown user", call(t, "GET", base+"/users/nobody", tok, ""), 404, "not_found", "nobody")

	stored, _ := f.a.Store.GetUserByUsername(ctx, "amy.shaw")
	c := f.selfRegistered("Patient app")
	now := time.Now().UTC()
	if err := f.a.Store.CreateGrant(ctx, store.Grant{ID: "g1", ClientID: c.ID, Subject: stored.ID, Scope: "patient/*.rs", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	var gs []Grant
	decode(t, "grants", call(t, "GET", base+"/users/amy.shaw/grants", tok, ""), 200, &gs)
	if len(gs) != 1 || gs[0].ID != "g1" || gs[0].ClientName != "Patient app" {
		t.Errorf("grants %+v", gs)
	}
	decode(t, "revoke grant", call(t, "DELETE", base+"/grants/g1", tok, ""), 200, nil)
	wantError(t, "revoke unknown grant", call(t, "DELETE", base+"/grants/g1x", tok, ""), 404, "not_found")
	decode(t, "grants after", call(t, "GET", base+"/users/amy.shaw/grants", tok, ""), 200, &gs)
	if len(gs) != 0 {
		t.Errorf("grants after revoking: %+v", gs)
	}

	l, err := f.users.Authenticate(ctx, "amy.shaw", "a new long passphrase", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, _, err := f.users.CreateSession(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	var ss []Session
	decode(t, "sessions", call(t, "GET", base+"/users/amy.shaw/sessions", tok, ""), 200, &ss)
	if len(ss) != 2 {
		t.Fatalf("sessions %+v", ss)
	}
	var n map[string]int
	decode(t, "revoke one session", call(t, "DELETE", base+"/users/amy.shaw/sessions/"+ss[0].ID, tok, ""), 200, &n)
	if n["sessions_revoked"] != 1 {
		t.Errorf("revoke one: %v", n)
	}
	decode(t, "revoke all", call(t, "DELETE", base+"/users/amy.shaw/sessions", tok, ""), 200, &n)
	if n["sessions_revoked"] != 1 {
		t.Errorf("revoke all: %v", n)
	}
}

func TestAPIKeysSettingsAudit(t *testing.T) {
	f := newFixture(t, "SMARTGATE_REGISTRATION_POLICY=open")
	ts := f.apiServer()
	tok := f.token(f.admin.ID, oauth.CLIClientID, "smartgate:admin")
	base := ts.URL + "/admin/api"

	var ks []Key
	decode(t, "keys", call(t, "GET", base+"/keys", tok, ""), 200, &ks)
	if len(ks) != 2 || ks[0].KID == "" {
		t.Fatalf("keys %+v", ks)
	}
	var rotated []RotatedKey
	decode(t, "rotate both", call(t, "POST", base+"/keys/rotate", tok, ""), 200, &rotated)
	if len(rotated) != 2 {
		t.Errorf("rotated %+v", rotated)
	}
	decode(t, "rotate RS256", call(t, "POST", base+"/keys/rotate", tok, `{"alg":"RS256"}`), 200, &rotated)
	if len(rotated) != 1 || rotated[0].Alg != "RS256" {
		t.Errorf("rotated %+v", rotated)
	}

	var ss []Setting
	decode(t, "settings", call(t, "GET", base+"/settings", tok, ""), 200, &ss)
	if len(ss) != 6 {
		t.Errorf("%d settings", len(ss))
	}
	var s Setting
	decode(t, "set", call(t, "PUT", base+"/settings/tokens.refresh_idle_ttl", tok, `{"value":"720h"}`), 200, &s)
	if s.Value != "720h0m0s" || s.Source != "database" {
		t.Errorf("after set: %+v", s)
	}
	decode(t, "show", call(t, "GET", base+"/settings/tokens.refresh_idle_ttl", tok, ""), 200, &s)
	wantError(t, "set pinned", call(t, "PUT", base+"/settings/registration.policy", tok, `{"value":"token"}`), 409, "setting_pinned", "SMARTGATE_REGISTRATION_POLICY")
	decode(t, "show pinned", call(t, "GET", base+"/settings/registration.policy", tok, ""), 200, &s)
	if !s.Pinned {
		t.Errorf("pinned view: %+v", s)
	}
	wantError(t, "set invalid", call(t, "PUT", base+"/settings/tokens.refresh_idle_ttl", tok, `{"value":"often"}`), 400, "invalid_request", "not a duration")
	wantError(t, "set without value", call(t, "PUT", base+"/settings/tokens.refresh_idle_ttl", tok, `{}`), 400, "invalid_request", "value is missing")
	wantError(t, "unknown key", call(t, "GET", base+"/settings/issuer", tok, ""), 404, "not_found", "not a runtime setting")
	s = Setting{} // omitted members would keep the last answer's values
	decode(t, "reset", call(t, "DELETE", base+"/settings/tokens.refresh_idle_ttl", tok, ""), 200, &s)
	if s.Stored != nil || s.Value != "2160h0m0s" {
		t.Errorf("after reset: %+v", s)
	}

	var page AuditPage
	decode(t, "audit", call(t, "GET", base+"/audit?action=setting.*&limit=1", tok, ""), 200, &page)
	if len(page.Events) != 1 || page.Events[0].Action != "setting.reset" || page.Next == "" {
		t.Fatalf("audit page %+v", page)
	}
	decode(t, "audit next", call(t, "GET", base+"/audit?action=setting.*&limit=1&cursor="+page.Next, tok, ""), 200, &page)
	if len(page.Events) != 1 || page.Events[0].Action != "setting.set" {
		t.Errorf("second page %+v", page)
	}
	wantError(t, "audit bad since", call(t, "GET", base+"/audit?since=soon", tok, ""), 400, "invalid_request", "since")
	r := call(t, "GET", base+"/audit?format=csv&action=key.*", tok, "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV: HTTP %d %v", r.status, r.header)
	}
	rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 3 || rows[1][5] != "key.rotate" || rows[1][2] != "user:"+f.admin.ID {
		t.Errorf("CSV rows %q, %v; want a header and two key.rotate events by the admin", rows, err)
	}
	req, _ := http.NewRequest("GET", base+"/audit", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Errorf("Accept: text/csv answered %s", resp.Header.Get("Content-Type"))
	}
}
