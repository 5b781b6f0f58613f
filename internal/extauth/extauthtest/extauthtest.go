// Package extauthtest runs a small external token issuer for tests of
// internal/extauth and the FHIR API: an HTTP server on loopback with a
// discovery document, a JWK Set and an RFC 7662 introspection endpoint,
// and keys to sign tokens with. It stands in only for what the real
// third-party provider of the e2e tests (npm oidc-provider) cannot
// produce: Keycloak's typ "JWT", scp arrays, tokens expired or from the
// future, id_token look-alikes and disallowed algorithms.
package extauthtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/config"
)

// Introspection credentials the issuer expects.
const (
	IntrospectClientID     = "smartgate rs"
	IntrospectClientSecret = "s3cret:&"
)

// Issuer is a running test issuer.
type Issuer struct {
	t   testing.TB
	srv *httptest.Server
	// URL is the issuer identifier (the server's address plus a realm
	// path, as Keycloak's are).
	URL string

	RSA, RSA2 *rsa.PrivateKey // kids "rsa-1", "rsa-2" (rsa-2 unpublished until Publish)
	EC        *ecdsa.PrivateKey
	Other     *rsa.PrivateKey // never published

	mu         sync.Mutex
	published  []jose.JSONWebKey
	jwksHits   int
	introHits  int
	opaque     map[string]map[string]any
	discovered int
}

var (
	keyOnce              sync.Once
	rsa1, rsa2, rsaOther *rsa.PrivateKey
	ec1                  *ecdsa.PrivateKey
)

// New starts an issuer that publishes rsa-1 and ec-1.
func New(t testing.TB) *Issuer {
	t.Helper()
	keyOnce.Do(func() {
		// RSA generation is slow; every issuer of a test binary shares keys.
		rsa1, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsa2, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsaOther, _ = rsa.GenerateKey(rand.Reader, 2048)
		ec1, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	is := &Issuer{t: t, RSA: rsa1, RSA2: rsa2, EC: ec1, Other: rsaOther, opaque: map[string]map[string]any{}}
	is.published = []jose.JSONWebKey{
		{Key: &rsa1.PublicKey, KeyID: "rsa-1", Use: "sig"},
		{Key: &ec1.PublicKey, KeyID: "ec-1", Use: "sig"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /realms/test/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		is.discovered++
		is.mu.Unlock()
		writeJSON(w, map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/certs", "introspection_endpoint": is.URL + "/introspect",
			"token_endpoint": is.URL + "/token", "response_types_supported": []string{"code"}})
	})
	mux.HandleFunc("GET /realms/test/certs", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		is.jwksHits++
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), is.published...)}
		is.mu.Unlock()
		writeJSON(w, set)
	})
	mux.HandleFunc("POST /realms/test/introspect", is.introspect)
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL + "/realms/test"
	return is
}

// Close stops the server (the issuer is then down).
func (is *Issuer) Close() { is.srv.Close() }

// Config is a federation.issuers entry for this issuer with audience aud;
// edit it for other settings.
func (is *Issuer) Config(aud string) config.ExternalIssuer {
	return config.ExternalIssuer{Issuer: is.URL, Audience: aud, AllowPrivate: true,
		Introspection: &config.IssuerIntrospection{ClientID: IntrospectClientID, ClientSecret: IntrospectClientSecret}}
}

// Publish adds rsa-2 to the JWK Set (a key rotation at the issuer).
func (is *Issuer) Publish() {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.published = append(is.published, jose.JSONWebKey{Key: &is.RSA2.PublicKey, KeyID: "rsa-2", Use: "sig"})
}

// JWKSFetches is how often the JWK Set was fetched.
func (is *Issuer) JWKSFetches() int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.jwksHits
}

// Introspections is how often the introspection endpoint was called.
func (is *Issuer) Introspections() int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.introHits
}

// Opaque makes the introspection endpoint answer resp (with active
// true added unless resp sets it) for tok; nil makes tok inactive.
func (is *Issuer) Opaque(tok string, resp map[string]any) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if resp == nil {
		delete(is.opaque, tok)
		return
	}
	if _, ok := resp["active"]; !ok {
		resp["active"] = true
	}
	is.opaque[tok] = resp
}

// introspect is the RFC 7662 endpoint: client_secret_basic with the
// RFC 6749 §2.3.1 form encoding, token in the form.
func (is *Issuer) introspect(w http.ResponseWriter, r *http.Request) {
	is.mu.Lock()
	is.introHits++
	is.mu.Unlock()
	id, secret, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if !ok || id != IntrospectClientID || secret != IntrospectClientSecret {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]string{"error": "invalid_client"})
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": "invalid_request"})
		return
	}
	is.mu.Lock()
	resp, ok := is.opaque[r.PostForm.Get("token")]
	is.mu.Unlock()
	if !ok {
		resp = map[string]any{"active": false}
	}
	writeJSON(w, resp)
}

// Claims are an access token's claims from this issuer for aud with
// scope, valid for five minutes from now; extra members are added (a nil
// value removes the member).
func (is *Issuer) Claims(aud, scope string, extra map[string]any) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{"iss": is.URL, "sub": "user-1", "aud": aud, "client_id": "app", "scope": scope,
		"iat": now, "exp": now + 300, "jti": base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Sign signs claims with the key and alg given, the header carrying kid
// and typ (an empty typ is left out).
func (is *Issuer) Sign(key any, alg jose.SignatureAlgorithm, kid, typ string, claims map[string]any) string {
	is.t.Helper()
	opts := &jose.SignerOptions{}
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		is.t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		is.t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		is.t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		is.t.Fatal(err)
	}
	return out
}

// AccessToken is an RS256 at+jwt access token with rsa-1.
func (is *Issuer) AccessToken(claims map[string]any) string {
	return is.Sign(is.RSA, jose.RS256, "rsa-1", "at+jwt", claims)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
