package clientkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Test keys. RSA keys are public keys read from testdata (generating them
// takes up to seconds on a busy machine); the others are generated once.
var (
	fixturesOnce sync.Once
	rsaA, rsaB   *rsa.PublicKey // 2048 bits
	rsaSmall     *rsa.PublicKey // 1024 bits
	ecP256       *ecdsa.PrivateKey
	ecP384       *ecdsa.PrivateKey
	edKey        ed25519.PrivateKey
)

func fixtures(t testing.TB) {
	t.Helper()
	fixturesOnce.Do(func() {
		var raw map[string]jose.JSONWebKey
		if err := json.Unmarshal(check(os.ReadFile("testdata/rsa-public.json")), &raw); err != nil {
			panic(err)
		}
		rsaA, rsaB, rsaSmall = raw["a"].Key.(*rsa.PublicKey), raw["b"].Key.(*rsa.PublicKey), raw["small"].Key.(*rsa.PublicKey)
		ecP256 = check(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		ecP384 = check(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
		_, edKey, _ = ed25519.GenerateKey(rand.Reader)
	})
}

func check[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// jwk renders key (public or private) as a JWK object that tests may edit.
func jwk(t testing.TB, key crypto.PublicKey, kid, alg string) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg})
	if err != nil {
		t.Fatalf("marshal JWK: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func jwksDoc(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tlsServer starts an HTTPS server on 127.0.0.1 and returns a pool trusting it.
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	// Tests provoke TLS handshake failures on purpose; keep them out of the output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// loopbackAsPublic is the production address policy except that loopback
// counts as public, so AllowPrivate=false behaviour (https only, redirect
// rules) can be tested against httptest servers without leaving 127.0.0.1.
func loopbackAsPublic(ip netip.Addr) error {
	if ip.Unmap().IsLoopback() {
		return nil
	}
	return checkAddr(ip)
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v, want %v", what, err, kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %T is not a *clientkeys.Error", what, err)
	}
	if PublicMessage(err) == "" {
		t.Fatalf("%s: empty public message", what)
	}
}
