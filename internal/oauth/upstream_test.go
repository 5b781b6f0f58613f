package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"smartgate/internal/config"
	"smartgate/internal/problem"
)

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "192.168.0.10": false, "172.16.5.4": false, "169.254.169.254": false,
		"100.64.0.1": false, "::1": false, "fd00:ec2::254": false, "fe80::1": false, "::ffff:127.0.0.1": false, "0.0.0.0": false,
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestSigningAlg(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	e256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		key  crypto.Signer
		want jose.SignatureAlgorithm
	}{{rk, jose.RS256}, {e256, jose.ES256}, {e384, jose.ES384}, {ed, jose.EdDSA}} {
		alg, kid, err := signingAlg(tc.key, "")
		tp, _ := (&jose.JSONWebKey{Key: tc.key.Public()}).Thumbprint(crypto.SHA256)
		if err != nil || alg != tc.want || kid != base64.RawURLEncoding.EncodeToString(tp) {
			t.Errorf("%T: alg %s kid %s err %v; want %s and the RFC 7638 thumbprint", tc.key, alg, kid, err, tc.want)
		}
		if _, kid, _ := signingAlg(tc.key, "mine"); kid != "mine" {
			t.Errorf("%T: a configured kid was not kept: %s", tc.key, kid)
		}
	}
}

// upstreamFixture is a server with one provider whose keys and discovery
// a test serves, to check the id_token rules one by one.
type upstreamFixture struct {
	f    *oauthFixture
	u    *upstream
	prov *oidc.Provider
	key  *ecdsa.PrivateKey
	iss  string
}

func newUpstreamFixture(t *testing.T) *upstreamFixture {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(ts.Close)
	p := config.Provider{ID: "kc", Name: "Hospital", Issuer: ts.URL, ClientID: "smartgate", ClientSecret: "s", AllowPrivate: true}
	f := newOAuthFixture(t, func(c *config.Config) { c.Federation.Providers = []config.Provider{p} })
	u := f.s.upstreams().byID["kc"]
	ctx := oidc.ClientContext(context.Background(), u.client)
	prov := (&oidc.ProviderConfig{IssuerURL: ts.URL, AuthURL: ts.URL + "/auth", TokenURL: ts.URL + "/token", JWKSURL: ts.URL,
		Algorithms: []string{"ES256"}}).NewProvider(ctx)
	return &upstreamFixture{f: f, u: u, prov: prov, key: key, iss: ts.URL}
}

// idToken signs claims over a base of valid ones (nil deletes a claim).
func (uf *upstreamFixture) idToken(t *testing.T, change map[string]any) *oauth2.Token {
	t.Helper()
	now := uf.f.now
	c := map[string]any{"iss": uf.iss, "sub": "u1", "aud": "smartgate", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "nonce": "n-1",
		"email": "ann@example.org", "email_verified": true, "fhirUser": "Patient/p1"}
	for k, v := range change {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: uf.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return (&oauth2.Token{AccessToken: "at-1", TokenType: "Bearer"}).WithExtra(map[string]any{"id_token": raw})
}

// TestVerifyUpstream: every id_token rule of OpenID Connect Core
// §3.1.3.7 that smartgate checks, each with its reason on the page.
func TestVerifyUpstream(t *testing.T) {
	uf := newUpstreamFixture(t)
	h := sha256.Sum256([]byte("at-1"))
	atHash := base64.RawURLEncoding.EncodeToString(h[:16])
	tests := []struct {
		name   string
		change map[string]any
		say    string // "" for valid
	}{
		{"valid", nil, ""},
		{"valid with azp and at_hash", map[string]any{"azp": "smartgate", "aud": []string{"smartgate", "other"}, "at_hash": atHash}, ""},
		{"wrong nonce", map[string]any{"nonce": "n-2"}, "nonce"},
		{"no nonce", map[string]any{"nonce": nil}, "nonce"},
		{"another client's azp", map[string]any{"azp": "other"}, "azp"},
		{"several audiences, no azp", map[string]any{"aud": []string{"smartgate", "other"}}, "azp"},
		{"another audience", map[string]any{"aud": "other"}, "another client"},
		{"another issuer", map[string]any{"iss": "https://evil.example"}, "wrong issuer"},
		{"expired", map[string]any{"exp": uf.f.now.Add(-time.Minute).Unix()}, "expired"},
		{"issued in the future", map[string]any{"iat": uf.f.now.Add(time.Hour).Unix()}, "future"},
		{"at_hash of another token", map[string]any{"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "at_hash"},
	}
	for _, tt := range tests {
		claims, sub, err := uf.f.s.verifyUpstream(context.Background(), uf.u, uf.prov, uf.idToken(t, tt.change), "n-1", uf.f.now)
		switch {
		case tt.say == "" && (err != nil || sub != "u1" || claims["email"] != "ann@example.org"):
			t.Errorf("%s: %v (sub %q claims %v), want valid", tt.name, err, sub, claims)
		case tt.say != "" && (!problem.IsID(err, problem.UpstreamIDTokenInvalid) || !strings.Contains(problem.From(err).Description, tt.say)):
			t.Errorf("%s: %v, want upstream_id_token_invalid saying %q", tt.name, err, tt.say)
		}
	}
	// A bad signature.
	tok := uf.idToken(t, nil)
	raw := tok.Extra("id_token").(string)
	tok = tok.WithExtra(map[string]any{"id_token": raw[:len(raw)-6] + "AAAAAA"})
	if _, _, err := uf.f.s.verifyUpstream(context.Background(), uf.u, uf.prov, tok, "n-1", uf.f.now); !problem.IsID(err, problem.UpstreamIDTokenInvalid) {
		t.Errorf("bad signature: %v", err)
	}
	// No id_token at all.
	if _, _, err := uf.f.s.verifyUpstream(context.Background(), uf.u, uf.prov, &oauth2.Token{AccessToken: "x"}, "n-1", uf.f.now); !problem.IsID(err, problem.UpstreamIDTokenInvalid) {
		t.Errorf("no id_token: %v", err)
	}
}

// TestUpstreamState: the state is sealed, expires, and belongs to the
// browser whose cookie hashes to its binding.
func TestUpstreamState(t *testing.T) {
	uf := newUpstreamFixture(t)
	s := uf.f.s
	binding := randomString()
	h := sha256.Sum256([]byte(binding))
	seal := func(st upstreamState) string {
		b, _ := json.Marshal(st)
		sealed, err := s.KEK.Seal(upstreamStatePurpose, b)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(sealed)
	}
	good := upstreamState{Provider: "kc", Binding: h[:], Nonce: "n", Verifier: "v", Next: "/account/apps", Expires: uf.f.now.Add(time.Minute).Unix()}
	expired := good
	expired.Expires = uf.f.now.Add(-time.Second).Unix()
	req := func(state, cookie string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/login/callback?code=c&state="+state, nil)
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: "__Host-smartgate-upstream", Value: cookie})
		}
		return r
	}
	st, err := s.openUpstreamState(req(seal(good), binding))
	if err != nil || st.Provider != "kc" || st.Next != "/account/apps" {
		t.Fatalf("a good state: %+v, %v", st, err)
	}
	for _, tc := range []struct {
		name, state, cookie, say string
	}{
		{"no state", "", binding, "no state"},
		{"altered", seal(good)[:20] + "A" + seal(good)[21:], binding, "did not make"},
		{"not base64", "!!!", binding, "did not make"},
		{"expired", seal(expired), binding, "too long"},
		{"no cookie", seal(good), "", "another browser"},
		{"another browser's cookie", seal(good), randomString(), "another browser"},
	} {
		_, err := s.openUpstreamState(req(tc.state, tc.cookie))
		if !problem.IsID(err, problem.UpstreamStateInvalid) || !strings.Contains(problem.From(err).Description, tc.say) {
			t.Errorf("%s: %v, want upstream_state_invalid saying %q", tc.name, err, tc.say)
		}
	}
}
