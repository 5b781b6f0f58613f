package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// signer is one key pair of a backend service.
type signer struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func newSigner(t testing.TB, kid string, alg jose.SignatureAlgorithm) signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case jose.ES384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.RS384:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, alg: alg, key: k}
}

func jwksOf(t testing.TB, ss ...signer) json.RawMessage {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, s := range ss {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: s.key.Public(), KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a client assertion; opts may add headers.
func (s signer) sign(t testing.TB, claims map[string]any, opts *jose.SignerOptions) string {
	t.Helper()
	if opts == nil {
		opts = &jose.SignerOptions{}
	}
	opts = opts.WithType("JWT")
	if s.kid != "" {
		opts = opts.WithHeader("kid", s.kid)
	}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := js.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// claims are a valid assertion's claims for client id at time now.
func (f *oauthFixture) assertionClaims(id string) map[string]any {
	return map[string]any{
		"iss": id, "sub": id, "aud": testIssuer + "/oauth2/token",
		"exp": f.now.Add(5 * time.Minute).Unix(), "iat": f.now.Unix(), "jti": randomJTI(),
	}
}

// randomJTI is a new 256-bit random jti.
func randomJTI() string { s, _ := NewSecret(); return s }

func (f *oauthFixture) assertionToken(assertion string, extra ...string) *httptest.ResponseRecorder {
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {AssertionType}, "client_assertion": {assertion}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return f.post(f.s.Token, form, nil)
}

func TestPrivateKeyJWT(t *testing.T) {
	f := newOAuthFixture(t, nil)
	es := newSigner(t, "es-1", jose.ES384)
	rs := newSigner(t, "rs-1", jose.RS384)
	c := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKS: jwksOf(t, es, rs), Scope: "system/Observation.rs"}, Options{ByAdmin: true})
	secretClient := f.backendService("system/*.rs")
	pending := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKS: jwksOf(t, es), Scope: "system/Observation.rs"}, Options{})

	for _, s := range []signer{es, rs} {
		tr := tokenResponse(t, f.assertionToken(s.sign(t, f.assertionClaims(c.ID), nil)))
		if tr.Scope != "system/Observation.rs" || tr.ExpiresIn != 300 {
			t.Errorf("%s: %+v", s.alg, tr)
		}
	}
	// aud may be an array holding the token endpoint; client_id may repeat iss.
	cl := f.assertionClaims(c.ID)
	cl["aud"] = []string{"https://other.example", testIssuer + "/oauth2/token"}
	tokenResponse(t, f.assertionToken(es.sign(t, cl, nil), "client_id", c.ID))

	// Without a kid the one key that fits the alg is used (SMART asks for a
	// kid; smartgate accepts its absence only when no choice is left).
	tokenResponse(t, f.assertionToken(signer{alg: es.alg, key: es.key}.sign(t, f.assertionClaims(c.ID), nil)))
	twoEC := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"},
		JWKS: jwksOf(t, es, newSigner(t, "es-2", jose.ES384)), Scope: "system/Observation.rs"}, Options{ByAdmin: true})

	stranger := newSigner(t, "es-1", jose.ES384) // same kid, another key
	hs := signer{kid: "es-1", alg: jose.HS256}
	mod := func(m func(map[string]any)) map[string]any { cl := f.assertionClaims(c.ID); m(cl); return cl }
	replayed := es.sign(t, f.assertionClaims(c.ID), nil)
	tokenResponse(t, f.assertionToken(replayed))

	for _, tc := range []struct {
		name      string
		assertion func() string
		extra     []string
		id        problem.ID
		frags     []string
	}{
		{"replayed jti", func() string { return replayed }, nil, problem.ClientAssertionInvalid, []string{"was already used; every assertion needs a new jti"}},
		{"wrong aud", func() string {
			return es.sign(t, mod(func(m map[string]any) { m["aud"] = testIssuer }), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"is not this token endpoint; set aud to " + testIssuer + "/oauth2/token exactly"}},
		{"aud not a string", func() string { return es.sign(t, mod(func(m map[string]any) { m["aud"] = 7 }), nil) }, nil, problem.ClientAssertionInvalid, []string{"aud must be the token endpoint URL"}},
		{"no exp", func() string { return es.sign(t, mod(func(m map[string]any) { delete(m, "exp") }), nil) }, nil, problem.ClientAssertionInvalid, []string{"the assertion needs exp (at most 5m0s ahead)"}},
		{"expired", func() string {
			return es.sign(t, mod(func(m map[string]any) { m["exp"] = f.now.Add(-2 * time.Minute).Unix() }), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"the assertion expired at", "sign a fresh one for every token request"}},
		{"exp too far ahead", func() string {
			return es.sign(t, mod(func(m map[string]any) { m["exp"] = f.now.Add(10 * time.Minute).Unix() }), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"exp is 10m0s ahead; it must be at most 5m0s ahead"}},
		{"iat in the future", func() string {
			return es.sign(t, mod(func(m map[string]any) { m["iat"] = f.now.Add(2 * time.Minute).Unix() }), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"iat is in the future; check your clock"}},
		{"nbf in the future", func() string {
			return es.sign(t, mod(func(m map[string]any) { m["nbf"] = f.now.Add(2 * time.Minute).Unix() }), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"nbf is in the future"}},
		{"no jti", func() string { return es.sign(t, mod(func(m map[string]any) { delete(m, "jti") }), nil) }, nil, problem.ClientAssertionInvalid, []string{"the assertion needs a jti"}},
		{"long jti", func() string {
			return es.sign(t, mod(func(m map[string]any) { m["jti"] = strings.Repeat("j", 257) }), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"jti is longer than 256 characters"}},
		{"iss differs from sub", func() string { return es.sign(t, mod(func(m map[string]any) { m["sub"] = "other" }), nil) }, nil, problem.ClientAssertionInvalid, []string{"must both be your client_id"}},
		{"no iss", func() string { return es.sign(t, mod(func(m map[string]any) { delete(m, "iss") }), nil) }, nil, problem.ClientAssertionInvalid, []string{"the assertion needs iss and sub"}},
		{"unknown client", func() string {
			return es.sign(t, mod(func(m map[string]any) { m["iss"], m["sub"] = "nope", "nope" }), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"iss 'nope' is not a registered client_id"}},
		{"client_id differs", func() string { return es.sign(t, f.assertionClaims(c.ID), nil) }, []string{"client_id", "other"}, problem.ClientAssertionInvalid, []string{"client_id 'other' differs from the assertion's iss and sub"}},
		{"unknown kid", func() string {
			return signer{kid: "nope", alg: es.alg, key: es.key}.sign(t, f.assertionClaims(c.ID), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"the assertion's kid 'nope' is not in the client's registered keys"}},
		{"no kid, two keys fit", func() string {
			return signer{alg: es.alg, key: es.key}.sign(t, f.assertionClaims(twoEC.ID), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"no registered key can verify this assertion", "Put the signing key's kid in the JWT header"}},
		{"kid of an RSA key, signed ES384", func() string {
			return signer{kid: "rs-1", alg: es.alg, key: es.key}.sign(t, f.assertionClaims(c.ID), nil)
		}, nil, problem.ClientAssertionInvalid, []string{"cannot verify alg 'ES384'"}},
		{"signed by another key", func() string { return stranger.sign(t, f.assertionClaims(c.ID), nil) }, nil, problem.ClientAssertionInvalid,
			[]string{"signature does not verify with the registered key 'es-1'"}},
		{"HS256", func() string {
			js, _ := jose.NewSigner(jose.SigningKey{Algorithm: hs.alg, Key: []byte("0123456789abcdef0123456789abcdef")}, (&jose.SignerOptions{}).WithHeader("kid", "es-1"))
			b, _ := json.Marshal(f.assertionClaims(c.ID))
			o, _ := js.Sign(b)
			s, _ := o.CompactSerialize()
			return s
		}, nil, problem.ClientAssertionInvalid, []string{"alg 'HS256' is not accepted", "none and HMAC algorithms are never accepted"}},
		{"alg none", func() string {
			b, _ := json.Marshal(f.assertionClaims(c.ID))
			return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(b) + "."
		}, nil, problem.ClientAssertionInvalid, []string{"is not accepted"}},
		{"not a JWT", func() string { return "abc" }, nil, problem.ClientAssertionInvalid, []string{"not a signed JWT in compact form"}},
		{"embedded jwk", func() string { return es.sign(t, f.assertionClaims(c.ID), &jose.SignerOptions{EmbedJWK: true}) }, nil, problem.ClientAssertionInvalid,
			[]string{"embeds a key (jwk header); keys must come from the registered JWKS"}},
		{"jku header", func() string {
			return es.sign(t, f.assertionClaims(c.ID), (&jose.SignerOptions{}).WithHeader("jku", "https://evil.example/jwks"))
		}, nil, problem.ClientAssertionInvalid, []string{"jku header 'https://evil.example/jwks' is not the client's registered jwks_uri"}},
		{"assertion for a secret client", func() string { return es.sign(t, f.assertionClaims(secretClient.ID), nil) }, nil, problem.InvalidClient,
			[]string{"registered token_endpoint_auth_method client_secret_basic, not private_key_jwt"}},
		{"pending client", func() string { return es.sign(t, f.assertionClaims(pending.ID), nil) }, nil, problem.ClientPending,
			[]string{"smartgate client enable " + pending.ID}},
	} {
		w := f.assertionToken(tc.assertion(), tc.extra...)
		e := wantError(t, tc.name, w, 401, "invalid_client", tc.id, tc.frags...)
		if e.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", tc.name)
		}
	}
}

// A client that registered a jwks_uri: keys are fetched, cached, and
// fetched again for an unknown kid at most once a minute.
func TestPrivateKeyJWTWithJWKSURI(t *testing.T) {
	f := newOAuthFixture(t, nil)
	old := newSigner(t, "k-old", jose.ES384)
	next := newSigner(t, "k-new", jose.RS384)
	var published atomic.Value
	published.Store(jwksOf(t, old))
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(published.Load().(json.RawMessage))
	}))
	defer srv.Close()
	c := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKSURI: srv.URL + "/jwks.json", Scope: "system/*.rs"}, Options{ByAdmin: true})

	tokenResponse(t, f.assertionToken(old.sign(t, f.assertionClaims(c.ID), nil)))
	tokenResponse(t, f.assertionToken(old.sign(t, f.assertionClaims(c.ID), nil)))
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for two requests, want 1 (cached)", n)
	}
	// The client rotates: the new kid is unknown to the cache. Within a
	// minute of the last fetch smartgate does not fetch again.
	published.Store(jwksOf(t, next))
	f.now = f.now.Add(30 * time.Second)
	w := f.assertionToken(next.sign(t, f.assertionClaims(c.ID), nil))
	wantError(t, "new kid within a minute", w, 401, "invalid_client", problem.ClientAssertionInvalid, "the assertion's kid 'k-new' is not in the client's registered keys")
	f.now = f.now.Add(31 * time.Second)
	tokenResponse(t, f.assertionToken(next.sign(t, f.assertionClaims(c.ID), nil)))
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (one refetch for the unknown kid)", n)
	}
	// jku naming the registered jwks_uri is accepted.
	opts := (&jose.SignerOptions{}).WithHeader("jku", srv.URL+"/jwks.json")
	tokenResponse(t, f.assertionToken(next.sign(t, f.assertionClaims(c.ID), opts)))
}
