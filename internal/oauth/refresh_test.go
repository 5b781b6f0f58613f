package oauth

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// grantFor stores a grant for c (as the authorization-code grant will) and
// returns its id and first refresh token.
func (f *oauthFixture) grantFor(c created, scope string) (string, string) {
	f.t.Helper()
	id, rt, err := f.s.NewGrant(context.Background(), store.Grant{
		ClientID: c.ID, Subject: "user-1", Scope: scope, Context: json.RawMessage(`{"patient":"123","fhirUser":"Practitioner/7"}`),
	}, true)
	if err != nil {
		f.t.Fatal(err)
	}
	if id == "" || len(rt) != 43 {
		f.t.Fatalf("NewGrant = %q, %q", id, rt)
	}
	return id, rt
}

// refresh sends grant_type=refresh_token for c.
func (f *oauthFixture) refresh(c created, rt, scope string) *httptest.ResponseRecorder {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	if scope != "" {
		form.Set("scope", scope)
	}
	return f.post(f.s.Token, form, basic(c.ID, c.Secret))
}

const appScopes = "launch/patient openid fhirUser patient/*.rs offline_access"

func TestRefreshRotation(t *testing.T) {
	f := newOAuthFixture(t, nil)
	c := f.userApp(appScopes)
	grant, rt := f.grantFor(c, "launch/patient openid fhirUser patient/Observation.rs patient/Patient.rs offline_access")

	f.now = f.now.Add(time.Minute)
	w := f.refresh(c, rt, "")
	tr := tokenResponse(t, w)
	if tr.RefreshToken == "" || tr.RefreshToken == rt {
		t.Fatalf("refresh_token %q: want a new one (rotation on every use)", tr.RefreshToken)
	}
	if tr.Patient != "123" || tr.Scope != "launch/patient openid fhirUser patient/Observation.rs patient/Patient.rs offline_access" || tr.ExpiresIn != 3600 {
		t.Errorf("response = %+v", tr)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Errorf("headers %v", w.Header())
	}
	cl, err := f.s.Tokens.Verify(context.Background(), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Grant != grant || cl.Patient != "123" || cl.FHIRUser != "Practitioner/7" || cl.Subject != "user-1" || cl.ClientID != c.ID || cl.Expiry-cl.IssuedAt != 3600 {
		t.Errorf("claims = %+v; want grant %s, patient 123, fhirUser Practitioner/7, sub user-1, a 1 h lifetime", cl, grant)
	}

	// The new token works, and rotates again.
	f.now = f.now.Add(time.Minute)
	tr2 := tokenResponse(t, f.refresh(c, tr.RefreshToken, ""))

	// Narrowing on refresh is fine and does not shrink the grant.
	f.now = f.now.Add(time.Minute)
	tr3 := tokenResponse(t, f.refresh(c, tr2.RefreshToken, "patient/Observation.rs"))
	if tr3.Scope != "patient/Observation.rs" {
		t.Errorf("narrowed scope %q", tr3.Scope)
	}
	tr4 := tokenResponse(t, f.refresh(c, tr3.RefreshToken, "patient/Observation.rs patient/Patient.rs"))
	if tr4.Scope != "patient/Observation.rs patient/Patient.rs" {
		t.Errorf("after narrowing once, the grant's scopes are still available: got %q", tr4.Scope)
	}
	// A scope inside a granted one may be asked for; a wider one may not.
	tr5 := tokenResponse(t, f.refresh(c, tr4.RefreshToken, "patient/Observation.rs?category=laboratory"))
	w = f.refresh(c, tr5.RefreshToken, "patient/Observation.rs patient/Condition.rs")
	if w.Code != 200 {
		t.Errorf("a partly wider refresh scope is narrowed silently like any request; got %d %s", w.Code, w.Body.String())
	}
	tr6 := tokenResponse(t, w)
	if tr6.Scope != "patient/Observation.rs" {
		t.Errorf("scope %q, want patient/Observation.rs", tr6.Scope)
	}
	w = f.refresh(c, tr6.RefreshToken, "patient/Condition.rs user/Observation.rs")
	wantError(t, "widening refresh", w, 400, "invalid_scope", problem.InvalidScope,
		"a refresh may keep or narrow the scopes of the grant", "never widen them", "'patient/Condition.rs' is not allowed for this grant", "not part of the grant the user approved")
	// The refused request did not consume the token.
	tokenResponse(t, f.refresh(c, tr6.RefreshToken, ""))
}

func TestRefreshReuseRevokesGrant(t *testing.T) {
	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	c := f.userApp(appScopes)
	grant, rt := f.grantFor(c, "patient/*.rs offline_access")
	first := tokenResponse(t, f.refresh(c, rt, ""))

	f.now = f.now.Add(time.Second)
	w := f.refresh(c, rt, "")
	wantError(t, "reused refresh token", w, 400, "invalid_grant", problem.RefreshTokenReused,
		"this refresh token was already used, so the grant was revoked", "keep only the newest one")
	// The newest token died with the grant.
	w = f.refresh(c, first.RefreshToken, "")
	wantError(t, "newest token after reuse", w, 400, "invalid_grant", problem.InvalidGrant)
	g, err := f.st.GetGrant(ctx, grant)
	if err != nil || g.RevokedAt.IsZero() {
		t.Errorf("grant after reuse: %+v, %v; want revoked", g, err)
	}
	// So did the access tokens of the grant, once revocations reload.
	if _, err := f.s.Tokens.Verify(ctx, first.AccessToken); err != nil {
		t.Fatalf("before the reload the cache does not know yet: %v", err)
	}
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Tokens.Verify(ctx, first.AccessToken)
	if te, ok := err.(*token.Error); !ok || te.Reason != token.Revoked || !strings.Contains(te.Description, "the grant it came from was revoked") {
		t.Errorf("Verify(access token of a revoked grant) = %v", err)
	}
}

// With refresh_reuse_grace, a retry of the same token soon after its first
// use is accepted (a lost response); later it counts as reuse.
func TestRefreshReuseGrace(t *testing.T) {
	f := newOAuthFixture(t, func(c *config.Config) { c.Tokens.RefreshReuseGrace = config.Duration(5 * time.Second) })
	c := f.userApp(appScopes)
	_, rt := f.grantFor(c, "patient/*.rs offline_access")
	tokenResponse(t, f.refresh(c, rt, ""))
	f.now = f.now.Add(3 * time.Second)
	retry := tokenResponse(t, f.refresh(c, rt, ""))
	f.now = f.now.Add(3 * time.Second)
	wantError(t, "after the grace window", f.refresh(c, rt, ""), 400, "invalid_grant", problem.RefreshTokenReused)
	wantError(t, "retry's token after reuse", f.refresh(c, retry.RefreshToken, ""), 400, "invalid_grant", problem.InvalidGrant)
}

func TestRefreshRefusals(t *testing.T) {
	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	owner := f.userApp(appScopes)
	thief := f.userApp(appScopes)
	_, rt := f.grantFor(owner, "patient/*.rs offline_access")

	w := f.refresh(thief, rt, "")
	wantError(t, "another client's refresh token", w, 400, "invalid_grant", problem.InvalidGrant, "the refresh token was issued to another client")
	// It was not consumed: the owner can still use it.
	tokenResponse(t, f.refresh(owner, rt, ""))

	wantError(t, "unknown refresh token", f.refresh(owner, "nope", ""), 400, "invalid_grant", problem.InvalidGrant, "the refresh token is not known here")
	wantError(t, "missing refresh token", f.post(f.s.Token, url.Values{"grant_type": {"refresh_token"}}, basic(owner.ID, owner.Secret)),
		400, "invalid_request", problem.InvalidRequest, "refresh_token is missing")

	// Idle expiry: 90 days unused.
	_, idle := f.grantFor(owner, "patient/*.rs offline_access")
	f.now = f.now.Add(f.cfg.Tokens.RefreshIdleTTL.D() + time.Second)
	wantError(t, "idle refresh token", f.refresh(owner, idle, ""), 400, "invalid_grant", problem.InvalidGrant, "expired; the user must authorize the app again")

	// Absolute expiry: a grant ends after refresh_max_ttl however often it is used.
	_, rt = f.grantFor(owner, "patient/*.rs offline_access")
	for i := 0; i < 5; i++ {
		f.now = f.now.Add(80 * 24 * time.Hour)
		w := f.refresh(owner, rt, "")
		if w.Code != 200 {
			wantError(t, "grant past its absolute end", w, 400, "invalid_grant", problem.InvalidGrant, "expired")
			if i != 4 {
				t.Errorf("grant ended after %d days, want after 365", (i+1)*80)
			}
			break
		}
		rt = tokenResponse(t, w).RefreshToken
		if i == 4 {
			t.Error("refresh still works 400 days after the grant began")
		}
	}

	// A disabled client cannot refresh.
	_, rt = f.grantFor(owner, "patient/*.rs offline_access")
	if _, err := f.s.Clients.SetStatus(ctx, owner.ID, store.ClientDisabled); err != nil {
		t.Fatal(err)
	}
	wantError(t, "disabled client", f.refresh(owner, rt, ""), 401, "invalid_client", problem.ClientDisabled)
}

// A public client refreshes with its client_id alone.
func TestRefreshPublicClient(t *testing.T) {
	f := newOAuthFixture(t, nil)
	c := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: appScopes}, Options{})
	_, rt := f.grantFor(c, "patient/*.rs offline_access")
	w := f.post(f.s.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {c.ID}}, nil)
	if tr := tokenResponse(t, w); tr.RefreshToken == "" {
		t.Error("no new refresh token")
	}
}

func TestRevokeRefreshTokenRevokesGrant(t *testing.T) {
	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	c := f.userApp(appScopes)
	grant, rt := f.grantFor(c, "patient/*.rs offline_access")
	tr := tokenResponse(t, f.refresh(c, rt, ""))

	f.now = f.now.Add(time.Second)
	w := f.post(f.s.Revoke, url.Values{"token": {tr.RefreshToken}, "token_type_hint": {"refresh_token"}}, basic(c.ID, c.Secret))
	if w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("revoke: %d %q, want 200 with an empty body", w.Code, w.Body.String())
	}
	if g, err := f.st.GetGrant(ctx, grant); err != nil || g.RevokedAt.IsZero() {
		t.Errorf("grant after revoking its refresh token: %+v %v", g, err)
	}
	wantError(t, "refresh after revocation", f.refresh(c, tr.RefreshToken, ""), 400, "invalid_grant", problem.InvalidGrant)
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Tokens.Verify(ctx, tr.AccessToken); err == nil {
		t.Error("an access token of the revoked grant still verifies after the revocations reload")
	}
}

// DESIGN.md, Tokens and grants: granted = requested ∩ registered ∩
// allowed. After an administrator narrows a client's registration, a
// refresh must not hand out scopes the client is no longer registered
// for. Today the refresh grant narrows only against the grant's scopes.
func TestRefreshHonoursNarrowedRegistration(t *testing.T) {

	f := newOAuthFixture(t, nil)
	c := f.userApp(appScopes)
	_, rt := f.grantFor(c, "patient/*.rs offline_access")
	md := c.Client.Metadata
	md.Scope = "patient/Observation.rs offline_access"
	if _, _, err := f.s.Clients.Update(context.Background(), c.ID, md, true); err != nil {
		t.Fatal(err)
	}
	tr := tokenResponse(t, f.refresh(c, rt, ""))
	if tr.Scope != "offline_access" && tr.Scope != "patient/Observation.rs offline_access" {
		t.Errorf("refresh after the registration was narrowed to patient/Observation.rs granted %q", tr.Scope)
	}
}
