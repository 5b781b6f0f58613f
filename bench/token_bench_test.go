package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/app"
	"smartgate/internal/clientkeys"
	"smartgate/internal/oauth"
	"smartgate/internal/store"
)

// BenchmarkTokenEndpoint sends token and introspection requests through the
// whole handler chain of a dev-mode server on SQLite, in process (no
// network; the logger discards), with rate limits off, as bench/peers.sh
// runs the real binary. It exists to profile the server's side:
//
//		go test -run='^$' -bench='TokenEndpoint/cc-secret/clients=16' \
//		  -cpuprofile=cpu.out -mutexprofile=mutex.out -blockprofile=block.out ./bench
//		go tool pprof -top -focus='ServeHTTP|audit' bench.test cpu.out
//
//	  - serial: one goroutine, so ns/op is the server's CPU for one request
//	    (the private_key_jwt modes sign their assertions in batches with the
//	    timer stopped, so the client's signing is not in ns/op).
//	  - clients=16: 16 goroutines on every core; the private_key_jwt modes
//	    sign a fresh assertion per request inside the loop, as a real client
//	    does, so ns/op includes the client's signing and the contention of
//	    both on the same cores (the profile separates them: focus on
//	    ServeHTTP).
//
// Modes:
//
//   - cc-secret: client_credentials, client_secret_basic
//   - cc-jwt-rs384, cc-jwt-es384: client_credentials, private_key_jwt
//   - introspect: RFC 7662 by a resource server (introspect-any), cycling
//     through 10,000 distinct access tokens minted before the timer starts
func BenchmarkTokenEndpoint(b *testing.B) {
	tb := newTokenBench(b)
	for _, mode := range []string{"cc-secret", "cc-jwt-rs384", "cc-jwt-es384", "introspect"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "introspect" {
				tb.mintPool(b, 10_000)
			}
			b.Run("serial", func(b *testing.B) {
				for b.Loop() {
					if !tb.doPresigned(b, mode) {
						return
					}
				}
			})
			b.Run("clients=16", func(b *testing.B) {
				setClients(b, 16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if !tb.do(b, mode) {
							return
						}
					}
				})
			})
		})
	}
}

type tokenBench struct {
	h                    http.Handler
	secretID, secret     string
	rsID, esID           string
	rsSigner, esSigner   jose.Signer
	introID, introSecret string
	pool                 []string
	next                 atomic.Uint64
	presigned            []string // serial private_key_jwt runs only
}

const benchTokenURL = "http://127.0.0.1:8080/oauth2/token"

func newTokenBench(b *testing.B) *tokenBench {
	b.Helper()
	h, a := newServer(b, map[string]string{"rate_limits.enabled": "false", "tokens.backend_token_ttl": "1h"})
	tb := &tokenBench{h: h}
	tb.secretID, tb.secret = createClient(b, a, store.ClientMetadata{TokenEndpointAuthMethod: "client_secret_basic"}, false)
	tb.introID, tb.introSecret = createClient(b, a, store.ClientMetadata{TokenEndpointAuthMethod: "client_secret_basic"}, true)
	for _, alg := range []jose.SignatureAlgorithm{jose.RS384, jose.ES384} {
		var priv crypto.Signer
		var err error
		if alg == jose.RS384 {
			priv, err = rsa.GenerateKey(rand.Reader, 2048)
		} else {
			priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		}
		if err != nil {
			b.Fatal(err)
		}
		kid := "bench-" + strings.ToLower(string(alg))
		jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: kid, Algorithm: string(alg), Use: "sig"}}})
		id, _ := createClient(b, a, store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", JWKS: jwks}, false)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			b.Fatal(err)
		}
		if alg == jose.RS384 {
			tb.rsID, tb.rsSigner = id, signer
		} else {
			tb.esID, tb.esSigner = id, signer
		}
	}
	return tb
}

// createClient registers a client_credentials client as the CLI does and
// returns its id and secret (if any).
func createClient(b *testing.B, a *app.App, md store.ClientMetadata, introspectAny bool) (string, string) {
	b.Helper()
	md.ClientName = "bench"
	md.Scope = "system/Patient.rs"
	md.GrantTypes = []string{"client_credentials"}
	reg := oauth.NewRegistry(a.Store, clientkeys.New(clientkeys.Options{AllowPrivate: true}), &a.Cfg.Config, nil)
	c, err := reg.Create(context.Background(), md, oauth.Options{ByAdmin: true, IntrospectAny: introspectAny})
	if err != nil {
		b.Fatalf("creating a client: %v", err)
	}
	return c.Client.ID, c.Secret
}

func (tb *tokenBench) mintPool(b *testing.B, n int) {
	b.Helper()
	if len(tb.pool) >= n {
		return
	}
	for len(tb.pool) < n {
		rec := tb.post(tokenForm(""), tb.secretID, tb.secret)
		var r struct {
			AccessToken string `json:"access_token"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &r) != nil || r.AccessToken == "" {
			b.Fatalf("minting the pool: status %d: %s", rec.Code, rec.Body.String())
		}
		tb.pool = append(tb.pool, r.AccessToken)
	}
}

func tokenForm(assertion string) url.Values {
	f := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}
	if assertion != "" {
		f.Set("client_assertion_type", oauth.AssertionType)
		f.Set("client_assertion", assertion)
	}
	return f
}

func (tb *tokenBench) post(form url.Values, id, secret string) *httptest.ResponseRecorder {
	path := "/oauth2/token"
	if form.Has("token") {
		path = "/oauth2/introspect"
	}
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	rec := httptest.NewRecorder()
	tb.h.ServeHTTP(rec, req)
	return rec
}

func (tb *tokenBench) do(b *testing.B, mode string) bool {
	var rec *httptest.ResponseRecorder
	switch mode {
	case "cc-secret":
		rec = tb.post(tokenForm(""), tb.secretID, tb.secret)
	case "cc-jwt-rs384", "cc-jwt-es384":
		id, signer := tb.rsID, tb.rsSigner
		if mode == "cc-jwt-es384" {
			id, signer = tb.esID, tb.esSigner
		}
		rec = tb.post(tokenForm(assertion(b, signer, id)), "", "")
	case "introspect":
		tok := tb.pool[(tb.next.Add(1)-1)%uint64(len(tb.pool))]
		rec = tb.post(url.Values{"token": {tok}}, tb.introID, tb.introSecret)
		if rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), `"active":true`) {
			b.Errorf("introspection: not active: %s", rec.Body.String())
			return false
		}
	}
	if rec.Code != http.StatusOK {
		b.Errorf("%s: status %d: %s", mode, rec.Code, rec.Body.String())
		return false
	}
	return true
}

// doPresigned is do, with the private_key_jwt modes' assertions signed
// ahead in batches of 256 while the timer is stopped.
func (tb *tokenBench) doPresigned(b *testing.B, mode string) bool {
	id, signer := tb.rsID, tb.rsSigner
	switch mode {
	case "cc-jwt-es384":
		id, signer = tb.esID, tb.esSigner
	case "cc-jwt-rs384":
	default:
		return tb.do(b, mode)
	}
	if len(tb.presigned) == 0 {
		b.StopTimer()
		for range 256 {
			tb.presigned = append(tb.presigned, assertion(b, signer, id))
		}
		b.StartTimer()
	}
	a := tb.presigned[len(tb.presigned)-1]
	tb.presigned = tb.presigned[:len(tb.presigned)-1]
	rec := tb.post(tokenForm(a), "", "")
	if rec.Code != http.StatusOK {
		b.Errorf("%s: status %d: %s", mode, rec.Code, rec.Body.String())
		return false
	}
	return true
}

// assertion signs a fresh RFC 7523 client assertion, as bench/cmd/load does.
func assertion(b *testing.B, signer jose.Signer, id string) string {
	var j [16]byte
	_, _ = rand.Read(j[:])
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": id, "sub": id, "aud": benchTokenURL,
		"iat": now.Unix(), "exp": now.Add(4 * time.Minute).Unix(), "jti": base64.RawURLEncoding.EncodeToString(j[:])})
	jws, err := signer.Sign(claims)
	if err != nil {
		b.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return s
}
