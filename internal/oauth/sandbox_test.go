package oauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// TestSandboxHooksDoNothingOutsideSandboxMode: without a Sandbox (every
// mode but serve --sandbox) the hooks answer nil and nothing can be armed
// through them.
func TestSandboxHooksDoNothingOutsideSandboxMode(t *testing.T) {
	f := newOAuthFixture(t, nil)
	if f.s.Sandbox != nil {
		t.Fatal("a dev server has a Sandbox; only serve --sandbox may")
	}
	svc := f.backendService("system/*.rs")
	r := formRequest("/oauth2/token", url.Values{"grant_type": {"client_credentials"}})
	if err := f.s.sandboxTokenError(r, svc.Client, url.Values{"grant_type": {"refresh_token"}}); err != nil {
		t.Errorf("sandboxTokenError without a sandbox: %v", err)
	}
	if err := f.s.sandboxAuthorizeError(r, svc.Client, &pending{}); err != nil {
		t.Errorf("sandboxAuthorizeError without a sandbox: %v", err)
	}
	var nilSandbox *Sandbox
	if nilSandbox.TakeExpiredToken(svc.ID, "r") {
		t.Error("a nil Sandbox fired an injection")
	}
	tokenResponse(t, f.clientCredentials(svc, ""))
}

// TestSandboxTokenInjectionsFireOnce: each token-endpoint injection answers
// the next matching request like the real error, once; the request after
// it gets the normal answer.
func TestSandboxTokenInjectionsFireOnce(t *testing.T) {
	f := newOAuthFixture(t, nil)
	f.s.Sandbox = NewSandbox(func() time.Time { return f.now })
	secretSvc := f.backendService("system/*.rs")
	es := newSigner(t, "k1", jose.ES384)
	keySvc := f.create(store.ClientMetadata{ClientName: "keyed", TokenEndpointAuthMethod: "private_key_jwt", JWKS: jwksOf(t, es),
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}, Options{ByAdmin: true})
	bySecret := func() *httptest.ResponseRecorder { return f.clientCredentials(secretSvc, "") }
	byKey := func() *httptest.ResponseRecorder {
		return f.assertionToken(es.sign(t, f.assertionClaims(keySvc.ID), nil))
	}
	for _, tc := range []struct {
		kind   InjectKind
		c      created
		send   func() *httptest.ResponseRecorder
		status int
		code   string
		id     problem.ID
		frag   string
	}{
		{InjectTokenInvalidClient, secretSvc, bySecret, 401, "invalid_client", problem.InvalidClient, "could not be authenticated"},
		{InjectTokenWrongSecret, secretSvc, bySecret, 401, "invalid_client", problem.InvalidClient, "the client secret for " + secretSvc.ID + " is wrong"},
		{InjectTokenInvalidScope, secretSvc, bySecret, 400, "invalid_scope", problem.InvalidScope, "no scope left to grant"},
		{InjectTokenBadJTI, keySvc, byKey, 401, "invalid_client", problem.ClientAssertionInvalid, "was already used"},
		{InjectTokenInvalidClient, keySvc, byKey, 401, "invalid_client", problem.InvalidClient, "could not be authenticated"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			if err := f.s.Sandbox.Inject(tc.c.Client, tc.kind); err != nil {
				t.Fatal(err)
			}
			if got := f.s.Sandbox.Pending(); len(got) != 1 || got[0].Kind != tc.kind || got[0].ClientID != tc.c.ID {
				t.Fatalf("pending = %+v, want one %s for %s", got, tc.kind, tc.c.ID)
			}
			e := wantError(t, "injected", tc.send(), tc.status, tc.code, tc.id, tc.frag, "[sandbox: injected error")
			if tc.status == 401 && e.Header.Get("WWW-Authenticate") == "" {
				t.Error("injected 401 without WWW-Authenticate")
			}
			tokenResponse(t, tc.send())
			if len(f.s.Sandbox.Pending()) != 0 {
				t.Errorf("still pending after firing: %+v", f.s.Sandbox.Pending())
			}
			if fired := f.s.Sandbox.Fired(); len(fired) == 0 || fired[0].Kind != tc.kind || fired[0].Fired.IsZero() {
				t.Errorf("fired history = %+v, want %s first", fired, tc.kind)
			}
		})
	}
}

// TestSandboxExpiredRefreshToken: the injection waits for a refresh_token
// request (a client_credentials request leaves it armed), answers
// invalid_grant, and leaves the refresh token usable.
func TestSandboxExpiredRefreshToken(t *testing.T) {
	f := newOAuthFixture(t, nil)
	f.s.Sandbox = NewSandbox(func() time.Time { return f.now })
	app := f.userApp("openid fhirUser user/*.rs offline_access")
	u, withSession := f.signIn(t, "ines", store.RolePractitioner, "Practitioner/p1")
	code := f.codeFor(t, app, "openid fhirUser user/*.rs offline_access", withSession, u.ID)
	tr := tokenResponse(t, f.post(f.s.Token, exchange(code, testVerifier), basic(app.ID, app.Secret)))
	if err := f.s.Sandbox.Inject(app.Client, InjectTokenExpiredRefresh); err != nil {
		t.Fatal(err)
	}
	refresh := func() *httptest.ResponseRecorder {
		return f.post(f.s.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}, basic(app.ID, app.Secret))
	}
	wantError(t, "injected expiry", refresh(), 400, "invalid_grant", problem.InvalidGrant, "expired", "[sandbox")
	tokenResponse(t, refresh())
}

// TestSandboxAuthorizeInjection: an armed authorize error goes back to the
// app's redirect_uri with state and iss, once.
func TestSandboxAuthorizeInjection(t *testing.T) {
	f := newOAuthFixture(t, nil)
	f.s.Sandbox = NewSandbox(func() time.Time { return f.now })
	app := f.userApp("openid fhirUser user/*.rs offline_access")
	for _, tc := range []struct {
		kind InjectKind
		code string
	}{
		{InjectAuthorizeInvalidRequest, "invalid_request"},
		{InjectAuthorizeAccessDenied, "access_denied"},
		{InjectAuthorizeInvalidScope, "invalid_scope"},
		{InjectAuthorizeServerError, "server_error"},
		{InjectAuthorizeUnavailable, "temporarily_unavailable"},
	} {
		if err := f.s.Sandbox.Inject(app.Client, tc.kind); err != nil {
			t.Fatal(err)
		}
		q := redirectError(t, f.browse(f.s.Authorize, authzGet(authzQuery(app, "openid user/*.rs"))))
		if q.Get("error") != tc.code || q.Get("state") != "st-123" || !strings.Contains(q.Get("error_description"), "[sandbox") {
			t.Errorf("%s: redirect %v, want error=%s with state and the sandbox note", tc.kind, q, tc.code)
		}
		w := f.browse(f.s.Authorize, authzGet(authzQuery(app, "openid user/*.rs")))
		if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?") {
			t.Errorf("%s: the request after the injection: %d %q, want the sign-in page", tc.kind, w.Code, loc)
		}
	}
}

// TestSandboxRefusesKindsAClientCannotTrigger names why.
func TestSandboxRefusesKindsAClientCannotTrigger(t *testing.T) {
	f := newOAuthFixture(t, nil)
	sb := NewSandbox(nil)
	public := f.create(store.ClientMetadata{ClientName: "spa", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://app.example.com/cb"},
		GrantTypes: []string{"authorization_code"}, Scope: "openid patient/*.rs launch/patient"}, Options{ByAdmin: true})
	backend := f.backendService("system/*.rs")
	for _, tc := range []struct {
		c    created
		kind InjectKind
		want string
	}{
		{public, InjectTokenWrongSecret, "authenticates with none"},
		{public, InjectTokenBadJTI, "not private_key_jwt"},
		{public, InjectTokenExpiredRefresh, "did not register the refresh_token grant"},
		{backend, InjectAuthorizeAccessDenied, "did not register the authorization_code grant"},
		{backend, "nonsense", "not an error the sandbox can inject"},
	} {
		err := sb.Inject(tc.c.Client, tc.kind)
		if err == nil || !strings.Contains(problem.From(err).Description, tc.want) {
			t.Errorf("Inject(%s, %s) = %v, want a refusal naming %q", tc.c.ID, tc.kind, err, tc.want)
		}
	}
	if err := sb.Inject(public.Client, InjectFHIRExpiredToken); err != nil {
		t.Fatal(err)
	}
	_ = sb.Inject(public.Client, InjectFHIRExpiredToken) // armed once, however often chosen
	if n := len(sb.Pending()); n != 1 {
		t.Errorf("%d pending after arming the same kind twice, want 1", n)
	}
	sb.Cancel(public.ID, InjectFHIRExpiredToken)
	if sb.TakeExpiredToken(public.ID, "r1") {
		t.Error("a cancelled injection fired")
	}
}
