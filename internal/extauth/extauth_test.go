package extauth_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"smartgate/internal/config"
	"smartgate/internal/extauth"
	"smartgate/internal/extauth/extauthtest"
	"smartgate/internal/problem"
	"smartgate/internal/token"
)

const (
	own = "https://ehr.example.org"
	aud = own + "/fhir"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newVerifier(t *testing.T, clk *clock, issuers ...config.ExternalIssuer) *extauth.Verifier {
	t.Helper()
	opts := extauth.Options{Own: own, FHIRBase: aud, Issuers: issuers}
	if clk != nil {
		opts.Clock = clk.Now
	}
	return extauth.New(opts)
}

func reason(err error) token.Reason {
	var te *token.Error
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

// A valid RFC 9068 token becomes smartgate's claims: client and subject
// named with their issuer, the audience the configured one, the context
// from its claims.
func TestAccepted(t *testing.T) {
	is := extauthtest.New(t)
	v := newVerifier(t, nil, is.Config(aud))
	claims := is.Claims(aud, "patient/Observation.rs launch/patient openid", map[string]any{"patient": "Patient/pat-1", "fhirUser": "Practitioner/pr-1"})
	c, err := v.Verify(context.Background(), is.AccessToken(claims))
	if err != nil {
		t.Fatal(err)
	}
	want := &token.Claims{Issuer: is.URL, Subject: "user-1@" + is.URL, Audience: aud, ClientID: "app@" + is.URL,
		Scope: "patient/Observation.rs launch/patient openid", IssuedAt: claims["iat"].(int64), Expiry: claims["exp"].(int64),
		JTI: claims["jti"].(string), Patient: "pat-1", FHIRUser: "Practitioner/pr-1"}
	if d := cmp.Diff(want, c); d != "" {
		t.Errorf("claims (-want +got):\n%s", d)
	}

	// ES256, and an aud array holding the audience among others.
	tok := is.Sign(is.EC, jose.ES256, "ec-1", "application/at+jwt", is.Claims(aud, "system/*.rs", map[string]any{"aud": []string{"account", aud + "/"}}))
	if c, err := v.Verify(context.Background(), tok); err != nil || c.Scope != "system/*.rs" {
		t.Errorf("ES256 with an aud array: %+v, %v", c, err)
	}
}

// The Keycloak shape: typ JWT, scopes in an scp array (or Keycloak's own
// names, mapped), the client in azp, the patient in a custom claim.
func TestKeycloakShape(t *testing.T) {
	is := extauthtest.New(t)
	cfg := is.Config(aud)
	cfg.Types, cfg.ScopeClaim, cfg.PatientClaim = []string{"JWT"}, "scp", "patient_id"
	cfg.ScopeMap = map[string]string{"fhir-labs": "patient/Observation.rs?category=laboratory patient/Patient.r"}
	v := newVerifier(t, nil, cfg)
	claims := is.Claims(aud, "", map[string]any{"scope": nil, "client_id": nil, "azp": "portal", "typ": "Bearer",
		"scp": []string{"openid", "email", "fhir-labs"}, "patient_id": "pat-2", "nonce": "n-123"})
	c, err := v.Verify(context.Background(), is.Sign(is.RSA, jose.RS256, "rsa-1", "JWT", claims))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Scope, "openid patient/Observation.rs?category=laboratory patient/Patient.r"; got != want {
		t.Errorf("scope = %q, want %q (email dropped, fhir-labs mapped)", got, want)
	}
	if c.ClientID != "portal@"+is.URL || c.Patient != "pat-2" {
		t.Errorf("client %q patient %q", c.ClientID, c.Patient)
	}
}

// Every refusal names its reason, and the description says what to fix.
func TestRefused(t *testing.T) {
	is := extauthtest.New(t)
	other := extauthtest.New(t) // a second issuer, not trusted
	v := newVerifier(t, nil, is.Config(aud))
	kc := is.Config(aud) // accepts typ JWT, as Keycloak sends
	kc.Types = []string{"JWT", "at+jwt"}
	vkc := newVerifier(t, nil, kc)
	now := time.Now().Unix()
	scopes := "patient/Observation.rs"
	ctx := map[string]any{"patient": "pat-1"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{"patient": "pat-1"}
		for k, x := range extra {
			m[k] = x
		}
		return is.Claims(aud, scopes, m)
	}
	hmac := make([]byte, 32)
	_, _ = rand.Read(hmac)
	unsigned := func(claims map[string]any) string {
		h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "at+jwt"})
		p, _ := json.Marshal(claims)
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}
	tests := []struct {
		name   string
		v      *extauth.Verifier
		tok    string
		reason token.Reason
		words  []string
	}{
		{"wrong audience", v, is.AccessToken(is.Claims("https://other.example.org/fhir", scopes, ctx)), token.WrongAudience, []string{"https://other.example.org/fhir", aud, "audience mapper"}},
		{"no audience", v, is.AccessToken(with(map[string]any{"aud": nil})), token.WrongAudience, []string{"no aud claim"}},
		{"audience is the client (an id_token's)", v, is.AccessToken(with(map[string]any{"aud": "app"})), token.WrongAudience, []string{`"app"`}},
		{"untrusted issuer", v, other.AccessToken(other.Claims(aud, scopes, ctx)), token.UnknownIssuer, []string{other.URL, "federation.issuers"}},
		{"issuer with a trailing slash", v, is.AccessToken(with(map[string]any{"iss": is.URL + "/"})), token.WrongIssuer, []string{"trailing slash"}},
		{"no issuer", v, is.AccessToken(with(map[string]any{"iss": nil})), token.UnknownIssuer, []string{"no iss"}},
		{"typ JWT where at+jwt is required", v, is.Sign(is.RSA, jose.RS256, "rsa-1", "JWT", with(nil)), token.WrongType, []string{`typ "JWT"`, "at+jwt"}},
		{"no typ", v, is.Sign(is.RSA, jose.RS256, "rsa-1", "", with(nil)), token.WrongType, []string{"no typ header"}},
		{"expired", v, is.AccessToken(with(map[string]any{"exp": now - 61, "iat": now - 400})), token.Expired, []string{"expired at", "60s of clock difference"}},
		{"nbf beyond the skew", v, is.AccessToken(with(map[string]any{"nbf": now + 120})), token.NotYetValid, []string{"nbf", "clocks"}},
		{"iat beyond the skew", v, is.AccessToken(with(map[string]any{"iat": now + 120})), token.NotYetValid, []string{"iat", "clocks"}},
		{"no exp", v, is.AccessToken(with(map[string]any{"exp": nil})), token.Malformed, []string{"no exp"}},
		{"id_token without typ", v, is.Sign(is.RSA, jose.RS256, "rsa-1", "", with(map[string]any{"nonce": "n", "aud": "app"})), token.IDToken, []string{"no typ header", "a nonce", "id_token"}},
		{"old Keycloak access token, types not set", v, is.Sign(is.RSA, jose.RS256, "rsa-1", "JWT", with(map[string]any{"nonce": "n", "typ": "Bearer"})), token.WrongType, []string{`typ "JWT"`}},
		{"id_token by typ header", v, is.Sign(is.RSA, jose.RS256, "rsa-1", "id_token+jwt", with(nil)), token.IDToken, []string{"id_token"}},
		{"Keycloak id_token (typ claim ID)", vkc, is.Sign(is.RSA, jose.RS256, "rsa-1", "JWT", with(map[string]any{"typ": "ID", "aud": []string{"app", aud}})), token.IDToken, []string{`"ID"`}},
		{"id_token with at_hash", vkc, is.Sign(is.RSA, jose.RS256, "rsa-1", "JWT", with(map[string]any{"at_hash": "abc"})), token.IDToken, []string{"at_hash"}},
		{"id_token with a nonce", vkc, is.Sign(is.RSA, jose.RS256, "rsa-1", "JWT", with(map[string]any{"nonce": "n"})), token.IDToken, []string{"nonce"}},
		{"Keycloak refresh token", vkc, is.Sign(is.RSA, jose.RS256, "rsa-1", "JWT", with(map[string]any{"typ": "Refresh"})), token.WrongType, []string{`"Refresh"`}},
		{"sender-constrained", v, is.AccessToken(with(map[string]any{"cnf": map[string]string{"jkt": "x"}})), token.SenderConstrained, []string{"cnf"}},
		{"patient/ scope without a patient", v, is.AccessToken(is.Claims(aud, "patient/Observation.rs user/Patient.rs", nil)), token.MissingPatient, []string{"patient/Observation.rs", "patient claim", "patient_claim"}},
		{"patient not an id", v, is.AccessToken(with(map[string]any{"patient": "Patient/a b"})), token.Malformed, []string{"not a Patient id"}},
		{"no FHIR scope", v, is.AccessToken(is.Claims(aud, "openid email profile smartgate:admin", nil)), token.NoUsableScope, []string{"no SMART resource scope", "'email' is unknown", "smartgate:admin"}},
		{"no client", v, is.AccessToken(with(map[string]any{"client_id": nil})), token.Malformed, []string{"client_id or azp"}},
		{"alg not allowed", v, is.Sign(is.RSA, jose.RS384, "rsa-1", "at+jwt", with(nil)), token.AlgNotAllowed, []string{"RS384", "RS256, ES256, PS256"}},
		{"HMAC", v, is.Sign(hmac, jose.HS256, "rsa-1", "at+jwt", with(nil)), token.AlgNotAllowed, []string{"HS256", "never accepted"}},
		{"unsigned", v, unsigned(with(nil)), token.AlgNotAllowed, []string{`"none"`, "never accepted"}},
		{"unknown kid", v, is.Sign(is.Other, jose.RS256, "rsa-9", "at+jwt", with(nil)), token.UnknownKey, []string{`"rsa-9"`, "JWK Set"}},
		{"bad signature", v, is.Sign(is.Other, jose.RS256, "rsa-1", "at+jwt", with(nil)), token.BadSignature, []string{"does not verify"}},
		{"altered payload", v, alter(is.AccessToken(with(nil))), token.BadSignature, []string{"does not verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.v.Verify(context.Background(), tt.tok)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if got := reason(err); got != tt.reason {
				t.Fatalf("reason %q, want %q (%v)", got, tt.reason, err)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
}

// alter flips the payload's scope without re-signing.
func alter(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), "patient/Observation.rs", "patient/*.cruds", 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

// Skew: a token expired or not yet valid by less than max_skew passes.
func TestSkew(t *testing.T) {
	is := extauthtest.New(t)
	cfg := is.Config(aud)
	cfg.MaxSkew = config.Duration(30 * time.Second)
	v := newVerifier(t, nil, cfg)
	now := time.Now().Unix()
	for name, extra := range map[string]map[string]any{
		"expired 10s ago": {"exp": now - 10, "iat": now - 300},
		"nbf in 20s":      {"nbf": now + 20},
		"iat in 20s":      {"iat": now + 20},
	} {
		if _, err := v.Verify(context.Background(), is.AccessToken(is.Claims(aud, "system/*.rs", extra))); err != nil {
			t.Errorf("%s, within 30s of skew: %v", name, err)
		}
	}
	if _, err := v.Verify(context.Background(), is.AccessToken(is.Claims(aud, "system/*.rs", map[string]any{"exp": now - 31, "iat": now - 300}))); reason(err) != token.Expired {
		t.Errorf("expired 31s ago with 30s of skew: %v", err)
	}
}

// Tokens naming smartgate, and opaque tokens when no issuer introspects,
// are not the external verifier's business.
func TestNotExternal(t *testing.T) {
	is := extauthtest.New(t)
	cfg := is.Config(aud)
	cfg.Introspection = nil
	v := newVerifier(t, nil, cfg)
	for name, tok := range map[string]string{
		"own issuer": is.AccessToken(is.Claims(aud, "system/*.rs", map[string]any{"iss": own})),
		"opaque":     "2YotnFZFEjr1zCsicMWpAA",
		"garbage":    "a.b.c",
	} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, token.ErrNotExternal) {
			t.Errorf("%s: %v, want ErrNotExternal", name, err)
		}
	}
}

// The JWK Set comes from discovery, is cached, and is fetched again for an
// unknown kid at most once a minute.
func TestKeyRotation(t *testing.T) {
	is := extauthtest.New(t)
	clk := &clock{now: time.Now()}
	v := newVerifier(t, clk, is.Config(aud))
	ctx := context.Background()
	claims := func() map[string]any {
		return is.Claims(aud, "system/*.rs", map[string]any{"exp": clk.Now().Unix() + 300})
	}
	if _, err := v.Verify(ctx, is.AccessToken(claims())); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, is.AccessToken(claims())); err != nil {
		t.Fatal(err)
	}
	if n := is.JWKSFetches(); n != 1 {
		t.Errorf("JWK Set fetched %d times for two tokens, want 1 (cached)", n)
	}
	is.Publish() // rsa-2
	clk.Add(10 * time.Second)
	rotated := is.Sign(is.RSA2, jose.RS256, "rsa-2", "at+jwt", claims())
	if _, err := v.Verify(ctx, rotated); reason(err) != token.UnknownKey {
		t.Errorf("a new kid 10s after the last fetch: %v, want unknown key (refetch rate-limited)", err)
	}
	if n := is.JWKSFetches(); n != 1 {
		t.Errorf("JWK Set fetched %d times, want still 1 (an unknown kid refetches at most once a minute)", n)
	}
	clk.Add(time.Minute)
	if _, err := v.Verify(ctx, rotated); err != nil {
		t.Errorf("a new kid a minute later: %v, want accepted after a refetch", err)
	}
	if _, err := v.Verify(ctx, is.Sign(is.Other, jose.RS256, "rsa-9", "at+jwt", claims())); reason(err) != token.UnknownKey {
		t.Errorf("an unknown kid: %v", err)
	}
	if n := is.JWKSFetches(); n != 2 {
		t.Errorf("JWK Set fetched %d times, want 2", n)
	}
}

// A verified token is cached until its expiry plus skew, no longer.
func TestVerifiedCacheEndsAtExpiry(t *testing.T) {
	is := extauthtest.New(t)
	clk := &clock{now: time.Now()}
	v := newVerifier(t, clk, is.Config(aud))
	tok := is.AccessToken(is.Claims(aud, "system/*.rs", map[string]any{"exp": clk.Now().Unix() + 30}))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clk.Add(89 * time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("within the skew after exp: %v", err)
	}
	clk.Add(2 * time.Second)
	if _, err := v.Verify(context.Background(), tok); reason(err) != token.Expired {
		t.Errorf("past exp + skew, from the cache: %v, want expired", err)
	}
}

// An issuer that cannot be reached is a 503 problem, not a refusal.
func TestIssuerDown(t *testing.T) {
	is := extauthtest.New(t)
	v := newVerifier(t, nil, is.Config(aud))
	tok := is.AccessToken(is.Claims(aud, "system/*.rs", nil))
	is.Close()
	_, err := v.Verify(context.Background(), tok)
	if !problem.IsID(err, problem.ExternalIssuerUnavailable) {
		t.Fatalf("issuer down: %v, want external_issuer_unavailable", err)
	}
	pe := problem.From(err)
	if pe.HTTPStatus() != 503 || !strings.Contains(pe.Description, is.URL) || strings.Contains(pe.Description, "127.0.0.1:") && !strings.Contains(is.URL, "127.0.0.1:") {
		t.Errorf("problem: %d %q", pe.HTTPStatus(), pe.Description)
	}
}

// A JWKS URL on a private address is refused unless allow_private (or dev
// mode) says so.
func TestPrivateAddressRefused(t *testing.T) {
	is := extauthtest.New(t)
	cfg := is.Config(aud)
	cfg.AllowPrivate = false
	v := newVerifier(t, nil, cfg)
	_, err := v.Verify(context.Background(), is.AccessToken(is.Claims(aud, "system/*.rs", nil)))
	if !problem.IsID(err, problem.ExternalIssuerUnavailable) {
		t.Fatalf("loopback issuer without allow_private: %v", err)
	}
	if n := is.JWKSFetches(); n != 0 {
		t.Errorf("fetched %d times, want 0", n)
	}
}

// Opaque tokens are introspected (RFC 7662), the answer cached no longer
// than the token lives nor than cache_ttl.
func TestIntrospection(t *testing.T) {
	is := extauthtest.New(t)
	clk := &clock{now: time.Now()}
	v := newVerifier(t, clk, is.Config(aud))
	ctx := context.Background()
	exp := clk.Now().Unix() + 300
	is.Opaque("opaque-1", map[string]any{"scope": "user/Patient.rs", "client_id": "portal", "sub": "u-7", "aud": []string{aud}, "exp": exp,
		"iss": is.URL, "token_type": "Bearer", "fhirUser": "Practitioner/pr-1"})
	c, err := v.Verify(ctx, "opaque-1")
	if err != nil {
		t.Fatal(err)
	}
	want := &token.Claims{Issuer: is.URL, Subject: "u-7@" + is.URL, Audience: aud, ClientID: "portal@" + is.URL, Scope: "user/Patient.rs", Expiry: exp, FHIRUser: "Practitioner/pr-1"}
	if d := cmp.Diff(want, c); d != "" {
		t.Errorf("claims (-want +got):\n%s", d)
	}
	if _, err := v.Verify(ctx, "opaque-1"); err != nil || is.Introspections() != 1 {
		t.Errorf("second use: %v, %d introspections, want 1 (cached)", err, is.Introspections())
	}
	// Revoked at the issuer: seen once the cache_ttl (60s) has passed.
	is.Opaque("opaque-1", nil)
	clk.Add(59 * time.Second)
	if _, err := v.Verify(ctx, "opaque-1"); err != nil {
		t.Errorf("within cache_ttl: %v", err)
	}
	clk.Add(2 * time.Second)
	if _, err := v.Verify(ctx, "opaque-1"); reason(err) != token.Inactive || is.Introspections() != 2 {
		t.Errorf("after cache_ttl: %v (%d introspections), want inactive after a second introspection", err, is.Introspections())
	}
	if _, err := v.Verify(ctx, "opaque-1"); reason(err) != token.Inactive || is.Introspections() != 2 {
		t.Errorf("inactive again: %v (%d introspections), want the cached answer", err, is.Introspections())
	}

	// A token that expires before cache_ttl is asked about again at exp.
	is.Opaque("opaque-2", map[string]any{"scope": "system/*.rs", "client_id": "svc", "aud": aud, "exp": clk.Now().Unix() + 20})
	if _, err := v.Verify(ctx, "opaque-2"); err != nil {
		t.Fatal(err)
	}
	n := is.Introspections()
	clk.Add(19 * time.Second)
	if _, err := v.Verify(ctx, "opaque-2"); err != nil || is.Introspections() != n {
		t.Errorf("before exp: %v, %d introspections, want %d", err, is.Introspections(), n)
	}
	clk.Add(2 * time.Second)
	if _, err := v.Verify(ctx, "opaque-2"); err != nil || is.Introspections() != n+1 {
		t.Errorf("after exp, within the skew: %v, %d introspections, want %d (the cache ends at exp)", err, is.Introspections(), n+1)
	}
	clk.Add(time.Minute)
	if _, err := v.Verify(ctx, "opaque-2"); reason(err) != token.Expired {
		t.Errorf("after exp + skew (the test issuer still says active): %v, want expired", err)
	}

	for name, tt := range map[string]struct {
		resp   map[string]any
		reason token.Reason
	}{
		"wrong audience": {map[string]any{"scope": "system/*.rs", "client_id": "svc", "aud": "other", "exp": exp}, token.WrongAudience},
		"no audience":    {map[string]any{"scope": "system/*.rs", "client_id": "svc", "exp": exp}, token.WrongAudience},
		"refresh token":  {map[string]any{"scope": "system/*.rs", "client_id": "svc", "aud": aud, "token_type": "refresh_token"}, token.WrongType},
		"DPoP":           {map[string]any{"scope": "system/*.rs", "client_id": "svc", "aud": aud, "token_type": "DPoP"}, token.SenderConstrained},
		"other issuer":   {map[string]any{"scope": "system/*.rs", "client_id": "svc", "aud": aud, "iss": "https://x.example"}, token.WrongIssuer},
		"patient scope":  {map[string]any{"scope": "patient/*.rs", "client_id": "svc", "aud": aud}, token.MissingPatient},
	} {
		tok := "opaque-" + name
		is.Opaque(tok, tt.resp)
		if _, err := v.Verify(ctx, tok); reason(err) != tt.reason {
			t.Errorf("%s: %v, want %q", name, err, tt.reason)
		}
	}
	if _, err := v.Verify(ctx, "never-issued"); reason(err) != token.Inactive {
		t.Errorf("unknown opaque token: %v", err)
	}
}

// Wrong introspection credentials are the operator's problem: 503, not a
// refusal of the client's token, and not cached.
func TestIntrospectionCredentials(t *testing.T) {
	is := extauthtest.New(t)
	cfg := is.Config(aud)
	cfg.Introspection.ClientSecret = "wrong"
	cfg.Introspection.URL = is.URL + "/introspect"
	v := newVerifier(t, nil, cfg)
	is.Opaque("opaque-1", map[string]any{"scope": "system/*.rs", "client_id": "svc", "aud": aud})
	for i := 1; i <= 2; i++ {
		_, err := v.Verify(context.Background(), "opaque-1")
		if !problem.IsID(err, problem.ExternalIssuerUnavailable) || !strings.Contains(problem.From(err).Description, "credentials") {
			t.Errorf("wrong secret: %v", err)
		}
		if is.Introspections() != i {
			t.Errorf("%d introspections after %d tries (failures are not cached)", is.Introspections(), i)
		}
	}
}

// Many requests at once share the caches and the fetches safely (run
// with -race).
func TestConcurrent(t *testing.T) {
	is := extauthtest.New(t)
	v := newVerifier(t, nil, is.Config(aud))
	is.Opaque("opaque-1", map[string]any{"scope": "system/*.rs", "client_id": "svc", "aud": aud, "exp": time.Now().Unix() + 300})
	toks := []string{"opaque-1", is.AccessToken(is.Claims(aud, "system/*.rs", nil)),
		is.Sign(is.EC, jose.ES256, "ec-1", "at+jwt", is.Claims(aud, "system/Patient.rs", nil))}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := v.Verify(context.Background(), toks[(g+i)%len(toks)]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := is.JWKSFetches(); n != 1 {
		t.Errorf("JWK Set fetched %d times by concurrent requests, want 1", n)
	}
	if n := is.Introspections(); n != 1 {
		t.Logf("%d introspections for one opaque token under concurrency (each miss asks; then cached)", n)
	}
}

// FuzzVerify: any bearer value is refused or accepted, never a panic.
func FuzzVerify(f *testing.F) {
	is := extauthtest.New(f)
	// No introspection: the fuzzer would spend its time in HTTP round trips
	// (TestIntrospection covers that path); the JWK Set is fetched once and
	// an unknown kid refetches at most once a minute.
	cfg := is.Config(aud)
	cfg.Introspection = nil
	v := extauth.New(extauth.Options{Own: own, FHIRBase: aud, Issuers: []config.ExternalIssuer{cfg}})
	f.Add(is.AccessToken(is.Claims(aud, "system/*.rs", nil)))
	f.Add(is.AccessToken(is.Claims(aud, "patient/*.rs", map[string]any{"aud": []any{1, aud}, "exp": "soon"})))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("opaque")
	f.Add("a.b.c.d.e")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw)
		if err == nil && (c == nil || c.Issuer != is.URL) {
			t.Fatalf("accepted %q as %+v", raw, c)
		}
	})
}
