package admin

import (
	"bytes"
	"context"
	"encoding/csv"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/changes"
	"smartgate/internal/config"
	"smartgate/internal/identity"
	"smartgate/internal/oauth"
	"smartgate/internal/problem"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
)

func TestAppsPendingFirstAndApproval(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	made, err := f.svc.CreateApp(ctx, f.actor, NewApp{ClientMetadata: store.ClientMetadata{ClientName: "Zeta lab", Scope: "system/Observation.rs"}, Type: oauth.ConfidentialSymmetric})
	if err != nil {
		t.Fatal(err)
	}
	if made.Status != store.ClientEnabled || !made.Verified || made.ClientSecret == "" || made.Metadata.GrantTypes[0] != "client_credentials" {
		t.Errorf("created app: %+v; want enabled, verified, a secret, client_credentials from the system/ scope", made)
	}
	f.wantEvent("client.create", made.ClientID, `"via":"api"`)
	older := f.selfRegistered("Older pending")
	time.Sleep(2 * time.Millisecond)
	newer := f.selfRegistered("Newer pending")

	apps, err := f.svc.ListApps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, a := range apps {
		order = append(order, a.Name()+"/"+a.Status)
	}
	if d := cmp.Diff([]string{"Newer pending/pending", "Older pending/pending", "Zeta lab/enabled"}, order); d != "" {
		t.Errorf("ListApps order: pending first, newest first, then by name (-want +got):\n%s", d)
	}
	for _, a := range apps {
		if a.ClientSecret != "" {
			t.Errorf("ListApps shows the secret of %s", a.ClientID)
		}
	}

	got, err := f.svc.SetAppStatus(ctx, f.actor, older.ID, store.ClientEnabled)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.ClientEnabled || !got.Verified {
		t.Errorf("approved app: status %s verified %v", got.Status, got.Verified)
	}
	f.wantEvent("client.approve", older.ID, `"from":"pending"`)
	if _, err := f.svc.SetAppStatus(ctx, f.actor, newer.ID, store.ClientDisabled); err != nil {
		t.Fatal(err)
	}
	f.wantEvent("client.disable", newer.ID)
	if _, err := f.svc.SetAppStatus(ctx, f.actor, newer.ID, store.ClientEnabled); err != nil {
		t.Fatal(err)
	}
	f.wantEvent("client.enable", newer.ID, `"from":"disabled"`)
	_, err = f.svc.SetAppStatus(ctx, f.actor, "nope", store.ClientEnabled)
	wantProblem(t, "status of an unknown app", err, problem.NotFound, `"nope"`)
	_, err = f.svc.SetAppStatus(ctx, f.actor, older.ID, "maybe")
	wantProblem(t, "an unknown status", err, problem.InvalidRequest, "maybe")
}

func TestUpdateApp(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	c := f.selfRegistered("Clinic app")
	uris := []string{"https://app.example.org/cb", " https://app.example.org/cb2 ", ""}
	sc := "openid fhirUser user/Patient.rs"
	yes := true
	got, err := f.svc.UpdateApp(ctx, f.actor, c.ID, AppChange{RedirectURIs: &uris, Scope: &sc, MayLaunch: &yes})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"https://app.example.org/cb", "https://app.example.org/cb2"}, got.Metadata.RedirectURIs); d != "" {
		t.Errorf("redirect URIs (-want +got):\n%s", d)
	}
	if got.Metadata.Scope != sc || !got.MayLaunch {
		t.Errorf("scope %q may_launch %v", got.Metadata.Scope, got.MayLaunch)
	}
	if got.Status != store.ClientPending {
		t.Errorf("an administrator's change moved a pending app to %s", got.Status)
	}
	f.wantEvent("client.update", c.ID, "redirect_uris", "scope", "may_launch")

	bad := []string{"http://app.example.org/cb"}
	_, err = f.svc.UpdateApp(ctx, f.actor, c.ID, AppChange{RedirectURIs: &bad})
	wantProblem(t, "an http redirect URI", err, problem.InvalidRedirectURI)
	unknown := "openid patient/Nope.rs"
	_, err = f.svc.UpdateApp(ctx, f.actor, c.ID, AppChange{Scope: &unknown})
	wantProblem(t, "an unknown scope", err, problem.InvalidClientMetadata, "Nope")
	_, err = f.svc.UpdateApp(ctx, f.actor, c.ID, AppChange{})
	wantProblem(t, "an empty change", err, problem.InvalidRequest, "no field")
	if a, _ := f.svc.App(ctx, c.ID); a.Metadata.Scope != sc {
		t.Errorf("a refused change changed the scope to %q", a.Metadata.Scope)
	}
}

func TestRotateSecretAndLastUse(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	c := f.selfRegistered("Secret app")
	got, err := f.svc.RotateAppSecret(ctx, f.actor, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ClientSecret) != 43 {
		t.Errorf("rotated secret %q: want 256 bits in base64url", got.ClientSecret)
	}
	f.wantEvent("client.rotate_secret", c.ID)
	if again, _ := f.svc.App(ctx, c.ID); again.ClientSecret != "" {
		t.Error("App shows the secret after the rotation")
	}
	pub, err := f.svc.CreateApp(ctx, f.actor, NewApp{ClientMetadata: store.ClientMetadata{ClientName: "SPA", RedirectURIs: []string{"https://spa.example.org/cb"}, Scope: "openid patient/*.rs launch/patient"}, Type: oauth.Public})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.RotateAppSecret(ctx, f.actor, pub.ClientID)
	wantProblem(t, "rotating a public client's secret", err, problem.InvalidClientMetadata, "no secret")

	if got.LastUsedAt != nil {
		t.Errorf("last use of a new app = %v, want never", got.LastUsedAt)
	}
	used := time.Date(2026, 11, 7, 9, 0, 0, 0, time.UTC)
	if err := f.a.Store.AppendAudit(ctx, []store.AuditEvent{
		{Time: used, Actor: "client:" + c.ID, ClientID: c.ID, Action: "token.issue", Outcome: "success", Detail: "{}"},
		{Time: used.Add(time.Hour), Actor: "client:" + c.ID, ClientID: c.ID, Action: "token.refuse", Outcome: "failure", Detail: "{}"},
	}); err != nil {
		t.Fatal(err)
	}
	a, err := f.svc.App(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.LastUsedAt == nil || !a.LastUsedAt.Equal(used) {
		t.Errorf("last use = %v, want %v (the last token issued, not the refusal after it)", a.LastUsedAt, used)
	}
	if err := f.svc.DeleteApp(ctx, f.actor, c.ID); err != nil {
		t.Fatal(err)
	}
	f.wantEvent("client.delete", c.ID)
	_, err = f.svc.App(ctx, c.ID)
	wantProblem(t, "a deleted app", err, problem.NotFound)
}

func TestInitialToken(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	tok, err := f.svc.CreateInitialToken(ctx, f.actor, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token == "" || tok.ExpiresAt.Before(time.Now()) {
		t.Errorf("initial token %+v", tok)
	}
	f.wantEvent("registration.initial_token", "", "expires_at")
	_, err = f.svc.CreateInitialToken(ctx, f.actor, 0)
	wantProblem(t, "a token valid for 0s", err, problem.InvalidRequest, "expires_in")
}

func TestUsers(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	u, err := f.svc.CreateUser(ctx, f.actor, NewUser{Username: " ines.munoz ", Role: store.RolePractitioner, FHIRUser: "Practitioner/pra-1", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "ines.munoz" || u.Status != store.UserEnabled || !u.HasPassword {
		t.Errorf("created user %+v", u)
	}
	_, err = f.svc.CreateUser(ctx, f.actor, NewUser{Username: "Ines.Munoz", Role: store.RolePractitioner, Password: testPassword})
	wantProblem(t, "a taken username", err, problem.UserExists)
	_, err = f.svc.CreateUser(ctx, f.actor, NewUser{Username: "weak", Role: store.RolePatient, Password: "short"})
	wantProblem(t, "a short password", err, problem.PasswordRejected)
	if es := f.events("user.create"); len(es) == 0 || es[0].Actor != f.actor.ID {
		t.Errorf("user.create audited as %+v, want actor %s", es, f.actor.ID)
	}

	out, err := f.svc.SetUserStatus(ctx, f.actor, "ines.munoz", store.UserDisabled)
	if err != nil || out.Status != store.UserDisabled {
		t.Fatalf("disable: %+v, %v", out, err)
	}
	if es := f.events("user.disable"); len(es) != 1 || es[0].Actor != f.actor.ID {
		t.Errorf("user.disable audit: %+v", es)
	}
	_, err = f.svc.SetUserStatus(ctx, f.actor, f.admin.Username, store.UserDisabled)
	wantProblem(t, "disabling oneself", err, problem.InvalidRequest, "your own account")

	if err := f.svc.SetPassword(ctx, f.actor, "ines.munoz", "another long passphrase"); err != nil {
		t.Fatal(err)
	}
	err = f.svc.SetPassword(ctx, f.actor, "ines.munoz", "x")
	wantProblem(t, "a weak new password", err, problem.PasswordRejected)
	err = f.svc.SetPassword(ctx, f.actor, "nobody", testPassword)
	wantProblem(t, "an unknown user", err, problem.NotFound, "nobody")

	got, err := f.svc.LinkUser(ctx, f.actor, "ines.munoz", "keycloak", "5f0c1a7e")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Links) != 1 || got.Links[0].Provider != "keycloak" || got.Links[0].Subject != "5f0c1a7e" {
		t.Errorf("links %+v", got.Links)
	}
	_, err = f.svc.LinkUser(ctx, f.actor, "root.admin", "keycloak", "5f0c1a7e")
	wantProblem(t, "a subject linked to another user", err, problem.UserExists, "ines.munoz")

	e, err := f.svc.EnrollTOTP(ctx, f.actor, "ines.munoz")
	if err != nil || !strings.HasPrefix(e.OTPAuthURL, "otpauth://totp/") {
		t.Fatalf("EnrollTOTP: %+v, %v", e, err)
	}
	if u, _ := f.svc.User(ctx, "ines.munoz"); !u.TOTPEnabled {
		t.Error("TOTP not on after enrolling")
	}
	if u, err := f.svc.DisableTOTP(ctx, f.actor, "ines.munoz"); err != nil || u.TOTPEnabled {
		t.Errorf("DisableTOTP: %+v, %v", u, err)
	}
	list, err := f.svc.ListUsers(ctx)
	if err != nil || len(list) != 2 {
		t.Errorf("ListUsers: %d users, %v; want 2", len(list), err)
	}
}

func TestGrantsAndSessions(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	st := f.a.Store
	u := f.newUser("amy.shaw", store.RolePatient, "Patient/pat-1")
	c := f.selfRegistered("Patient app")
	l, err := f.users.Authenticate(ctx, "amy.shaw", testPassword, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	_, sess, err := f.users.CreateSession(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	ref := identity.SessionRef(sess.IDHash)
	now := time.Now().UTC()
	online := store.Grant{ID: "g-online", ClientID: c.ID, Subject: u.ID, Scope: "openid patient/*.rs", Context: []byte(`{"patient":"pat-1"}`), SessionID: ref, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	offline := store.Grant{ID: "g-offline", ClientID: c.ID, Subject: u.ID, Scope: "offline_access patient/*.rs", CreatedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
	for _, g := range []store.Grant{online, offline} {
		if err := st.CreateGrant(ctx, g, nil); err != nil {
			t.Fatal(err)
		}
	}
	gs, err := f.svc.Grants(ctx, "amy.shaw")
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].ClientName != "Patient app" {
		t.Fatalf("grants %+v", gs)
	}
	byID := map[string]Grant{}
	for _, g := range gs {
		byID[g.ID] = g
	}
	if byID["g-online"].Patient != "pat-1" || byID["g-online"].Session != ref || byID["g-offline"].Session != "" {
		t.Errorf("grant views: %+v", byID)
	}
	ss, err := f.svc.Sessions(ctx, "amy.shaw")
	if err != nil || len(ss) != 1 || ss[0].ID != ref || len(ss[0].AMR) == 0 {
		t.Fatalf("sessions %+v, %v", ss, err)
	}

	_, err = f.svc.RevokeSession(ctx, f.actor, "amy.shaw", "zz")
	wantProblem(t, "a malformed session id", err, problem.InvalidRequest, "32 hex")
	_, err = f.svc.RevokeSession(ctx, f.actor, "amy.shaw", strings.Repeat("ab", 16))
	wantProblem(t, "another session id", err, problem.NotFound)
	n, err := f.svc.RevokeSession(ctx, f.actor, "amy.shaw", ref)
	if err != nil || n != 1 {
		t.Fatalf("RevokeSession = %d, %v", n, err)
	}
	f.wantEvent("session.revoke", "", `"online_grants_revoked":1`)
	if g, _ := st.GetGrant(ctx, "g-online"); g.RevokedAt.IsZero() {
		t.Error("the online_access grant of the ended session is still alive")
	}
	if ss, _ := f.svc.Sessions(ctx, "amy.shaw"); len(ss) != 0 {
		t.Errorf("sessions after revoking: %+v", ss)
	}
	if err := st.PutConsent(ctx, store.Consent{ClientID: c.ID, Subject: u.ID, Scope: "offline_access patient/*.rs", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RevokeGrant(ctx, f.actor, "g-offline"); err != nil {
		t.Fatal(err)
	}
	f.wantEvent("grant.revoke", c.ID, "g-offline", "administrator")
	if g, _ := st.GetGrant(ctx, "g-offline"); g.RevokedAt.IsZero() {
		t.Error("the revoked grant is alive")
	}
	if _, err := st.GetConsent(ctx, c.ID, u.ID); err == nil {
		t.Error("the consent of the revoked grant is kept: the app would not ask again")
	}
	if gs, _ := f.svc.Grants(ctx, "amy.shaw"); len(gs) != 0 {
		t.Errorf("grants after revoking: %+v", gs)
	}
	err = f.svc.RevokeGrant(ctx, f.actor, "nope")
	wantProblem(t, "an unknown grant", err, problem.NotFound)
}

func TestKeys(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	before := f.svc.Keys()
	if len(before) != 2 {
		t.Fatalf("%d keys at start, want an ES256 and an RS256", len(before))
	}
	for _, k := range before {
		if k.State != "active" || k.AgeSeconds < 0 || k.Age() == "" {
			t.Errorf("key %+v (age %q)", k, k.Age())
		}
	}
	got, err := f.svc.RotateKeys(ctx, f.actor, []string{"es256"})
	if err != nil || len(got) != 1 || got[0].Alg != "ES256" {
		t.Fatalf("RotateKeys(es256) = %+v, %v", got, err)
	}
	f.wantEvent("key.rotate", "", got[0].KID)
	if after := f.svc.Keys(); len(after) != 3 {
		t.Errorf("%d keys after rotating one, want 3", len(after))
	}
	_, err = f.svc.RotateKeys(ctx, f.actor, []string{"HS256"})
	wantProblem(t, "an unknown algorithm", err, problem.InvalidRequest, "HS256")
}

func TestHumanAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		40 * time.Second: "40s", 5 * time.Minute: "5m", 125 * time.Minute: "2h 5m", 76 * time.Hour: "3d 4h", -time.Second: "0s",
	} {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestSettings(t *testing.T) {
	f := newFixture(t, "SMARTGATE_TOKENS_BACKEND_TOKEN_TTL=2m")
	ctx := f.ctx()
	s, err := f.svc.SetSetting(ctx, f.actor, "tokens.access_token_ttl", " 20m ")
	if err != nil {
		t.Fatal(err)
	}
	if s.Value != "20m0s" || s.Source != "database" || s.Stored == nil || s.Stored.Value != "20m" || s.Stored.UpdatedBy != f.actor.ID {
		t.Errorf("after set: %+v", s)
	}
	if got := f.live.Load().Tokens.AccessTokenTTL.D(); got != 20*time.Minute {
		t.Errorf("live access_token_ttl = %s right after the change, want 20m on this node at once", got)
	}
	f.wantEvent("setting.set", "", `"key":"tokens.access_token_ttl"`, `"value":"20m"`, `"before":"1h0m0s"`)

	_, err = f.svc.SetSetting(ctx, f.actor, "tokens.backend_token_ttl", "1m")
	wantProblem(t, "a pinned key", err, problem.SettingPinned, "SMARTGATE_TOKENS_BACKEND_TOKEN_TTL")
	_, err = f.svc.SetSetting(ctx, f.actor, "registration.policy", "closed")
	wantProblem(t, "an invalid policy", err, problem.InvalidRequest, "registration.policy", "open")
	_, err = f.svc.SetSetting(ctx, f.actor, "tokens.access_token_ttl", "3h")
	wantProblem(t, "a lifetime above the ceiling", err, problem.InvalidRequest, "at most 1h0m0s")
	_, err = f.svc.SetSetting(ctx, f.actor, "log.level", "debug")
	wantProblem(t, "a key that is not a runtime setting", err, problem.NotFound, "not a runtime setting")

	if _, err := f.svc.SetSetting(ctx, f.actor, "authorize.password_grant_roles", "patient"); err != nil {
		t.Fatal(err)
	}
	if roles := f.live.Load().Authorize.PasswordGrantRoles; len(roles) != 1 || roles[0] != "patient" {
		t.Errorf("password grant roles %v", roles)
	}
	all, err := f.svc.ListSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Setting{}
	for _, x := range all {
		got[x.Key] = x
	}
	if len(all) != len(config.RuntimeKeys) {
		t.Errorf("ListSettings: %d settings, want %d", len(all), len(config.RuntimeKeys))
	}
	if b := got["tokens.backend_token_ttl"]; !b.Pinned || b.PinnedBy != "SMARTGATE_TOKENS_BACKEND_TOKEN_TTL" || b.Source != "env" || b.Value != "2m0s" {
		t.Errorf("pinned setting view: %+v", b)
	}
	if p := got["registration.policy"]; p.Pinned || p.Source != "default" || p.Value != "open" || p.Description == "" {
		t.Errorf("default setting view: %+v", p)
	}

	s, err = f.svc.ResetSetting(ctx, f.actor, "tokens.access_token_ttl")
	if err != nil {
		t.Fatal(err)
	}
	if s.Value != "1h0m0s" || s.Stored != nil || s.Source != "default" {
		t.Errorf("after reset: %+v", s)
	}
	if got := f.live.Load().Tokens.AccessTokenTTL.D(); got != time.Hour {
		t.Errorf("live access_token_ttl after reset = %s, want 1h", got)
	}
	f.wantEvent("setting.reset", "", `"before":"20m0s"`)
	_, err = f.svc.ResetSetting(ctx, f.actor, "tokens.access_token_ttl")
	wantProblem(t, "resetting twice", err, problem.NotFound, "no stored value")
}

// TestSettingsReachAnotherNode: a change stored through one handle is
// applied by a node following the change sequence on another handle (as
// another process would), within its poll interval.
func TestSettingsReachAnotherNode(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(f.ctx())
	defer cancel()
	other, err := sqlstore.Open(ctx, f.a.Cfg.Database, sqlstore.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	live := config.NewLive(&f.a.Cfg.Config)
	follower := NewSettings(other, f.a.Cfg, live, slog.New(slog.DiscardHandler))
	feed := changes.New(other, 20*time.Millisecond, nil)
	feed.Subscribe("settings", func(ctx context.Context, _ []string) error { return follower.Load(ctx) })
	if err := feed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := follower.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SetSetting(ctx, f.actor, "registration.policy", "token"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for live.Load().Registration.Policy != "token" {
		if time.Now().After(deadline) {
			t.Fatalf("the other node's policy is still %q 2s after the change", live.Load().Registration.Policy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStoredInvalidSettingIgnored: a stored value this node cannot apply
// (written by hand, or by a newer version) leaves the configured value.
func TestStoredInvalidSettingIgnored(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	if err := f.a.Store.PutSetting(ctx, store.Setting{Key: "tokens.access_token_ttl", Value: "forever", UpdatedAt: time.Now(), UpdatedBy: "cli"}); err != nil {
		t.Fatal(err)
	}
	if err := f.settings.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.live.Load().Tokens.AccessTokenTTL.D(); got != time.Hour {
		t.Errorf("access_token_ttl = %s with an invalid stored value, want the default 1h", got)
	}
	all, _ := f.svc.ListSettings(ctx)
	for _, s := range all {
		if s.Key == "tokens.access_token_ttl" && (s.Source != "default" || s.Stored == nil) {
			t.Errorf("view of an invalid stored value: %+v", s)
		}
	}
}

func TestAuditQuery(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx()
	t0 := time.Date(2026, 11, 8, 10, 0, 0, 0, time.UTC)
	var es []store.AuditEvent
	for i := 0; i < 12; i++ {
		es = append(es, store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute), RequestID: "r" + itoa(i), Actor: []string{"user:" + f.admin.ID, "client:lab"}[i%2],
			ClientID: "lab", Patient: []string{"pat-1", "pat-2"}[i%3%2], Action: []string{"client.enable", "fhir.read", "token.issue"}[i%3], Outcome: "success", Detail: `{"i":` + itoa(i) + `}`})
	}
	es = append(es, store.AuditEvent{Time: t0.Add(time.Hour), Actor: "client:evil", ClientID: "=HYPERLINK(\"x\")", Action: "token.refuse", Outcome: "failure", Detail: "{}"})
	if err := f.a.Store.AppendAudit(ctx, es); err != nil {
		t.Fatal(err)
	}
	q, err := ParseAuditQuery(map[string][]string{"actor": {"root.admin"}, "limit": {"4"}, "since": {"2026-11-08"}})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for pages := 0; ; pages++ {
		page, err := f.svc.Audit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if e.Actor != "user:"+f.admin.ID {
				t.Errorf("actor filter by username let %s through", e.Actor)
			}
			seen = append(seen, e.RequestID)
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if d := cmp.Diff([]string{"r10", "r8", "r6", "r4", "r2", "r0"}, seen); d != "" {
		t.Errorf("paged events of root.admin (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		params map[string][]string
		n      int
	}{
		{map[string][]string{"patient": {"Patient/pat-2"}}, 4},
		{map[string][]string{"action": {"client.*"}}, 4},
		{map[string][]string{"client": {"lab"}, "action": {"fhir.read"}}, 4},
		{map[string][]string{"since": {"2026-11-08T10:03"}, "until": {"2026-11-08T10:05:00Z"}}, 2},
		{map[string][]string{"until": {"2026-11-07"}}, 0},
		{map[string][]string{"outcome": {"failure"}}, 1},
	} {
		q, err := ParseAuditQuery(tc.params)
		if err != nil {
			t.Fatalf("%v: %v", tc.params, err)
		}
		page, err := f.svc.Audit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != tc.n {
			t.Errorf("filter %v: %d events, want %d", tc.params, len(page.Events), tc.n)
		}
	}
	for params, word := range map[string]map[string][]string{
		"limit":   {"limit": {"5000"}},
		"since":   {"since": {"yesterday"}},
		"outcome": {"outcome": {"maybe"}},
	} {
		_, err := ParseAuditQuery(word)
		wantProblem(t, "bad "+params, err, problem.InvalidRequest, params)
	}
	_, err = f.svc.Audit(ctx, AuditQuery{Actor: "nobody-at-all"})
	wantProblem(t, "an unknown username as actor", err, problem.InvalidRequest, "nobody-at-all")
	_, err = f.svc.Audit(ctx, AuditQuery{Cursor: "abc"})
	wantProblem(t, "a forged cursor", err, problem.InvalidRequest, "cursor")

	var buf bytes.Buffer
	truncated, err := f.svc.ExportAudit(ctx, &buf, AuditQuery{Client: "=HYPERLINK(\"x\")"})
	if err != nil || truncated {
		t.Fatalf("ExportAudit: %v, truncated %v", err, truncated)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0][0] != "id" || rows[1][3] != `'=HYPERLINK("x")` {
		t.Errorf("CSV rows %q: want a header and the event, its formula-like cell quoted with '", rows)
	}
	buf.Reset()
	if _, err := f.svc.ExportAudit(ctx, &buf, AuditQuery{}); err != nil {
		t.Fatal(err)
	}
	if rows, _ := csv.NewReader(&buf).ReadAll(); len(rows) < 14 {
		t.Errorf("full export: %d rows, want every event and the header", len(rows))
	}
}
