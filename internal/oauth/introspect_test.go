package oauth

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/problem"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

func (f *oauthFixture) introspect(caller created, tok string) map[string]any {
	f.t.Helper()
	w := f.post(f.s.Introspect, url.Values{"token": {tok}}, basic(caller.ID, caller.Secret))
	if w.Code != 200 {
		f.t.Fatalf("introspect: %d %s", w.Code, w.Body.String())
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		f.t.Errorf("introspection response without Cache-Control: no-store")
	}
	m := body(f.t, w)
	if got := strings.TrimSpace(w.Body.String()); m["active"] == false && got != `{"active":false}` {
		f.t.Errorf("inactive response %s, want exactly {\"active\":false} (RFC 7662 section 2.2)", got)
	}
	return m
}

var inactive = map[string]any{"active": false}

func TestIntrospection(t *testing.T) {
	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	lab := f.backendService("system/*.rs")
	other := f.backendService("system/*.rs")
	rs := f.create(store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}, Options{ByAdmin: true, IntrospectAny: true})
	app := f.userApp(appScopes)
	foreignServer := newOAuthFixture(t, nil)
	foreignLab := foreignServer.backendService("system/*.rs")

	at := tokenResponse(t, f.clientCredentials(lab, "system/Observation.rs")).AccessToken
	cl := claimsOf(t, at)
	wantActive := map[string]any{
		"active": true, "scope": "system/Observation.rs", "client_id": lab.ID, "sub": lab.ID, "iss": testIssuer,
		"aud": testIssuer + "/fhir", "exp": cl["exp"], "iat": cl["iat"], "jti": cl["jti"], "token_type": "Bearer",
	}
	if d := cmp.Diff(wantActive, f.introspect(lab, at)); d != "" {
		t.Errorf("own token (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantActive, f.introspect(rs, at)); d != "" {
		t.Errorf("introspect-any caller (-want +got):\n%s", d)
	}
	if d := cmp.Diff(inactive, f.introspect(other, at)); d != "" {
		t.Errorf("another client's token (-want +got):\n%s", d)
	}
	for name, tok := range map[string]string{
		"empty":                       "",
		"garbage":                     "not-a-token",
		"a JWT from another server":   tokenResponse(t, foreignServer.clientCredentials(foreignLab, "")).AccessToken,
		"a truncated token":           at[:len(at)-5],
		"a long unknown opaque value": strings.Repeat("x", 200),
	} {
		if d := cmp.Diff(inactive, f.introspect(rs, tok)); d != "" {
			t.Errorf("%s (-want +got):\n%s", name, d)
		}
	}

	// Refresh tokens: own, foreign, used.
	grant, rt := f.grantFor(app, "patient/*.rs offline_access")
	got := f.introspect(app, rt)
	if got["active"] != true || got["client_id"] != app.ID || got["scope"] != "patient/*.rs offline_access" || got["sub"] != "user-1" || got["patient"] != "123" || got["fhirUser"] != "Practitioner/7" {
		t.Errorf("own refresh token = %v", got)
	}
	if got := f.introspect(rs, rt); got["active"] != true {
		t.Errorf("introspect-any on a refresh token = %v", got)
	}
	if d := cmp.Diff(inactive, f.introspect(lab, rt)); d != "" {
		t.Errorf("another client's refresh token (-want +got):\n%s", d)
	}
	next := tokenResponse(t, f.refresh(app, rt, ""))
	if d := cmp.Diff(inactive, f.introspect(app, rt)); d != "" {
		t.Errorf("a rotated refresh token (-want +got):\n%s", d)
	}
	// An access token from a grant carries the grant's context.
	if got := f.introspect(app, next.AccessToken); got["patient"] != "123" || got["fhirUser"] != "Practitioner/7" || got["sub"] != "user-1" {
		t.Errorf("access token from a grant = %v", got)
	}

	// Revoked and expired access tokens are inactive.
	f.now = f.now.Add(time.Second)
	if err := f.st.RevokeGrant(ctx, grant, f.now); err != nil {
		t.Fatal(err)
	}
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(inactive, f.introspect(app, next.AccessToken)); d != "" {
		t.Errorf("token of a revoked grant (-want +got):\n%s", d)
	}
	if d := cmp.Diff(inactive, f.introspect(app, next.RefreshToken)); d != "" {
		t.Errorf("refresh token of a revoked grant (-want +got):\n%s", d)
	}
	f.now = f.now.Add(5 * time.Minute)
	if d := cmp.Diff(inactive, f.introspect(lab, at)); d != "" {
		t.Errorf("expired token (-want +got):\n%s", d)
	}

	// The caller must authenticate.
	w := f.post(f.s.Introspect, url.Values{"token": {at}}, basic(lab.ID, "wrong"))
	wantError(t, "unauthenticated introspection", w, 401, "invalid_client", problem.InvalidClient)
}

func TestRevocation(t *testing.T) {
	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	lab := f.backendService("system/*.rs")
	other := f.create(store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}, Options{ByAdmin: true, IntrospectAny: true})
	app := f.userApp(appScopes)
	revoke := func(caller created, tok string) (int, string) {
		w := f.post(f.s.Revoke, url.Values{"token": {tok}}, basic(caller.ID, caller.Secret))
		return w.Code, w.Body.String()
	}

	at := tokenResponse(t, f.clientCredentials(lab, "")).AccessToken
	// Another client (even a resource server that may introspect anything) may not revoke it.
	w := f.post(f.s.Revoke, url.Values{"token": {at}}, basic(other.ID, other.Secret))
	wantError(t, "foreign access token", w, 400, "unauthorized_client", problem.UnauthorizedClient, "the token was issued to another client", "RFC 7009 section 2.1")
	if _, err := f.s.Tokens.Verify(ctx, at); err != nil {
		t.Errorf("a refused revocation revoked the token: %v", err)
	}
	if code, b := revoke(lab, at); code != 200 || b != "" {
		t.Errorf("own access token: %d %q, want 200 and no body", code, b)
	}
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.Tokens.Verify(ctx, at)
	if te, ok := err.(*token.Error); !ok || te.Reason != token.Revoked || !strings.Contains(te.Description, "this token was revoked") {
		t.Errorf("Verify(revoked token) = %v", err)
	}
	// Revoking again, or revoking something unknown, is fine (RFC 7009 section 2.2).
	for name, tok := range map[string]string{"again": at, "unknown": "nope", "long unknown": strings.Repeat("y", 300)} {
		if code, _ := revoke(lab, tok); code != 200 {
			t.Errorf("revoke %s: %d, want 200", name, code)
		}
	}
	wantError(t, "missing token", f.post(f.s.Revoke, url.Values{}, basic(lab.ID, lab.Secret)), 400, "invalid_request", problem.InvalidRequest, "token is missing")
	wantError(t, "unauthenticated", f.post(f.s.Revoke, url.Values{"token": {at}}, basic(lab.ID, "x")), 401, "invalid_client", problem.InvalidClient)

	// An access token from a grant: revoking it leaves the grant alone.
	_, rt := f.grantFor(app, "patient/*.rs offline_access")
	tr := tokenResponse(t, f.refresh(app, rt, ""))
	if code, _ := revoke(app, tr.AccessToken); code != 200 {
		t.Fatalf("revoke own access token: %d", code)
	}
	tr2 := tokenResponse(t, f.refresh(app, tr.RefreshToken, ""))

	// A foreign refresh token is refused and stays usable.
	w = f.post(f.s.Revoke, url.Values{"token": {tr2.RefreshToken}, "token_type_hint": {"refresh_token"}}, basic(lab.ID, lab.Secret))
	wantError(t, "foreign refresh token", w, 400, "unauthorized_client", problem.UnauthorizedClient)
	tr3 := tokenResponse(t, f.refresh(app, tr2.RefreshToken, ""))

	// An unknown token_type_hint is ignored.
	w = f.post(f.s.Revoke, url.Values{"token": {tr3.RefreshToken}, "token_type_hint": {"id_token"}}, basic(app.ID, app.Secret))
	if w.Code != 200 {
		t.Errorf("revoke with an unknown hint: %d %s", w.Code, w.Body.String())
	}
	wantError(t, "refresh after revocation", f.refresh(app, tr3.RefreshToken, ""), 400, "invalid_grant", problem.InvalidGrant)
}

// Disabling a client kills its tokens on every verifier once revocations
// reload; enabling it again does not bring old tokens back.
func TestDisableRevokesClientTokens(t *testing.T) {
	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	lab := f.backendService("system/*.rs")
	at := tokenResponse(t, f.clientCredentials(lab, "")).AccessToken
	if _, err := f.s.Clients.SetStatus(ctx, lab.ID, store.ClientDisabled); err != nil {
		t.Fatal(err)
	}
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Tokens.Verify(ctx, at); err == nil || !strings.Contains(err.Error(), "its client was disabled or deleted") {
		t.Errorf("Verify(token of a disabled client) = %v", err)
	}
	if _, err := f.s.Clients.SetStatus(ctx, lab.ID, store.ClientEnabled); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Second)
	fresh := tokenResponse(t, f.clientCredentials(lab, "")).AccessToken
	if _, err := f.s.Tokens.Verify(ctx, fresh); err != nil {
		t.Errorf("a token issued after re-enabling: %v", err)
	}
	if _, err := f.s.Tokens.Verify(ctx, at); err == nil {
		t.Error("re-enabling brought an old token back")
	}
}

// "Disable a client and revoke every token it holds" (CLI help, Registry.SetStatus):
// that includes refresh tokens. Today disabling records only a client
// revocation, which access-token verifiers check; the grants and their
// refresh tokens stay alive, so introspection reports them active while
// the client is disabled, and they mint new tokens once it is re-enabled.
func TestDisableRevokesRefreshTokens(t *testing.T) {

	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	app := f.userApp(appScopes)
	rs := f.create(store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}, Options{ByAdmin: true, IntrospectAny: true})
	_, rt := f.grantFor(app, "patient/*.rs offline_access")
	if _, err := f.s.Clients.SetStatus(ctx, app.ID, store.ClientDisabled); err != nil {
		t.Fatal(err)
	}
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(inactive, f.introspect(rs, rt)); d != "" {
		t.Errorf("refresh token of a disabled client (-want +got):\n%s", d)
	}
	f.now = f.now.Add(time.Minute)
	if _, err := f.s.Clients.SetStatus(ctx, app.ID, store.ClientEnabled); err != nil {
		t.Fatal(err)
	}
	wantError(t, "refresh token issued before the client was disabled", f.refresh(app, rt, ""), 400, "invalid_grant", problem.InvalidGrant)
}
