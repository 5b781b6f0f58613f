package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/keys"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
)

type fixture struct {
	svc  *Service
	st   *sqlstore.DB
	revs *Revocations
	now  time.Time
}

func setup(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "t.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, now: time.Now()}
	clock := func() time.Time { return f.now }
	kek, _ := keys.ParseKEK(keys.GenerateKEK(), "test")
	km := keys.New(st, keys.Options{JWKSMaxAge: time.Minute, MaxTokenLifetime: time.Hour, Clock: clock, LoadKEK: func() (*keys.KEK, error) { return kek, nil }})
	if err := km.Init(ctx); err != nil {
		t.Fatal(err)
	}
	f.revs = NewRevocations(st, clock)
	f.svc = New(km, f.revs, Options{Issuer: "https://ehr.example.org", Audience: "https://ehr.example.org/fhir", Clock: clock})
	return f
}

func (f *fixture) issue(t testing.TB, mod func(*Claims)) string {
	t.Helper()
	c := Claims{Subject: "lab", ClientID: "lab", Scope: "system/Observation.rs", Expiry: f.now.Add(5 * time.Minute).Unix(), Grant: "g1", Patient: "123"}
	if mod != nil {
		mod(&c)
	}
	tok, err := f.svc.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func reason(err error) Reason {
	if e, ok := err.(*Error); ok {
		return e.Reason
	}
	return ""
}

func TestIssueAndVerify(t *testing.T) {
	f := setup(t)
	tok := f.issue(t, nil)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %s", tok)
	}
	jws, _ := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if typ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
		t.Errorf("typ = %v, want at+jwt", typ)
	}
	c, err := f.svc.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://ehr.example.org" || c.Audience != "https://ehr.example.org/fhir" || c.JTI == "" || c.IssuedAt == 0 || c.Patient != "123" || c.Grant != "g1" {
		t.Errorf("claims = %+v", c)
	}
	// Cached path gives the same answer.
	if c2, err := f.svc.Verify(context.Background(), tok); err != nil || c2.JTI != c.JTI {
		t.Errorf("second Verify = %+v, %v", c2, err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	f := setup(t)
	good := f.issue(t, nil)
	other := setup(t) // another server: its own keys
	foreign := other.issue(t, nil)

	evilKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sign := func(typ string, claims any) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: evilKey}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		b, _ := json.Marshal(claims)
		j, _ := s.Sign(b)
		out, _ := j.CompactSerialize()
		return out
	}
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "A") + "B." + parts[2]
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	hsJWS, _ := hs.Sign([]byte(`{"iss":"https://ehr.example.org"}`))
	hsTok, _ := hsJWS.CompactSerialize()

	for _, tc := range []struct {
		name string
		tok  string
		want Reason
		text string
	}{
		{"garbage", "not-a-token", Malformed, "signed JWT"},
		{"empty", "", Malformed, "signed JWT"},
		{"foreign server", foreign, NotIssuedHere, "not one of this server's keys"},
		{"HS256", hsTok, NotIssuedHere, "ES256"},
		{"id_token typ", sign("JWT", map[string]any{"iss": "x"}), NotIssuedHere, "typ"},
		{"tampered payload", tampered, BadSignature, "signature"},
		{"wrong audience", f.issue(t, func(c *Claims) { c.Audience = "https://other.example.org/fhir" }), WrongAudience, "aud="},
		{"wrong issuer", f.issue(t, func(c *Claims) { c.Issuer = "https://evil.example.org" }), NotIssuedHere, "issuer"},
		{"expired", f.issue(t, func(c *Claims) { c.Expiry = f.now.Add(-time.Second).Unix() }), Expired, "expired"},
		{"future iat", f.issue(t, func(c *Claims) { c.IssuedAt = f.now.Add(time.Hour).Unix() }), NotYetValid, "not valid yet"},
		{"too long", strings.Repeat("a", 20000), Malformed, "longer"},
	} {
		_, err := f.svc.Verify(context.Background(), tc.tok)
		if reason(err) != tc.want || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: got %q (%v), want reason %q mentioning %q", tc.name, reason(err), err, tc.want, tc.text)
		}
	}
}

func TestExpiryAppliesToCachedTokens(t *testing.T) {
	f := setup(t)
	tok := f.issue(t, func(c *Claims) { c.Expiry = f.now.Add(time.Minute).Unix() })
	if _, err := f.svc.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(2 * time.Minute)
	if _, err := f.svc.Verify(context.Background(), tok); reason(err) != Expired {
		t.Errorf("cached token after expiry: %v, want expired", err)
	}
}

func TestRevocationByJTIGrantClientSubject(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	mk := func(jti, grant, client, sub string) string {
		return f.issue(t, func(c *Claims) { c.JTI, c.Grant, c.ClientID, c.Subject = jti, grant, client, sub })
	}
	toks := map[string]string{
		"jti":     mk("j-revoked", "g-a", "c-a", "s-a"),
		"grant":   mk("j2", "g-revoked", "c-a", "s-a"),
		"client":  mk("j3", "g-b", "c-revoked", "s-a"),
		"subject": mk("j4", "g-c", "c-a", "s-revoked"),
		"alive":   mk("j5", "g-d", "c-a", "s-a"),
	}
	// Verify once so that every token sits in the cache: revocation must
	// apply to cached tokens too.
	for name, tok := range toks {
		if _, err := f.svc.Verify(ctx, tok); err != nil {
			t.Fatalf("%s before revocation: %v", name, err)
		}
	}
	exp := f.now.Add(time.Hour)
	for _, r := range []store.Revocation{
		{Kind: store.RevokeJTI, Value: "j-revoked", RevokedAt: f.now, ExpiresAt: exp},
		{Kind: store.RevokeGrant, Value: "g-revoked", RevokedAt: f.now, ExpiresAt: exp},
		{Kind: store.RevokeClient, Value: "c-revoked", RevokedAt: f.now, ExpiresAt: exp},
		{Kind: store.RevokeSubject, Value: "s-revoked", RevokedAt: f.now, ExpiresAt: exp},
	} {
		if err := f.st.Revoke(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for name, tok := range toks {
		_, err := f.svc.Verify(ctx, tok)
		if name == "alive" {
			if err != nil {
				t.Errorf("unrevoked token refused: %v", err)
			}
			continue
		}
		if reason(err) != Revoked {
			t.Errorf("%s-revoked token: %v, want revoked", name, err)
		}
	}
	// A client re-enabled later gets working tokens again: only tokens
	// issued up to the revocation time are dead.
	f.now = f.now.Add(2 * time.Second)
	fresh := mk("j6", "g-e", "c-revoked", "s-a")
	if _, err := f.svc.Verify(ctx, fresh); err != nil {
		t.Errorf("token issued after the client revocation refused: %v", err)
	}
	// Expired revocations are dropped from memory.
	f.now = exp.Add(time.Second)
	if err := f.revs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.revs.byKind[store.RevokeJTI]); n != 0 {
		t.Errorf("%d expired jti revocations kept in memory", n)
	}
}

func FuzzVerify(f *testing.F) {
	fx := setup(f)
	f.Add(fx.issue(f, nil))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := fx.svc.Verify(context.Background(), raw)
		if err == nil && (c == nil || c.Issuer != "https://ehr.example.org") {
			t.Fatalf("accepted a token with claims %+v", c)
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not a *token.Error", err)
			}
		}
	})
}

// TestIssueWireFormat checks the compact JWS that Issue writes without
// go-jose (RFC 7515 §7.1, RFC 7518 §3.4, RFC 9068 §2.1): the exact
// protected header, and a 64-byte R || S signature that go-jose and plain
// crypto/ecdsa both accept with the published key.
func TestIssueWireFormat(t *testing.T) {
	f := setup(t)
	tok := f.issue(t, nil)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %s", tok)
	}
	k, err := f.svc.keys.Signer(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if want := `{"alg":"ES256","kid":"` + k.KID + `","typ":"at+jwt"}`; string(header) != want {
		t.Errorf("protected header = %s, want %s", header, want)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v; want 64 bytes of base64url", len(sig), err)
	}
	pub, ok := f.svc.keys.PublicKey(k.KID)
	if !ok {
		t.Fatalf("kid %s is not published", k.KID)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub.Key.(*ecdsa.PublicKey), digest[:], r, s) {
		t.Error("crypto/ecdsa does not verify the signature with the published key")
	}
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		t.Fatalf("go-jose does not verify the token: %v", err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil || c.Subject != "lab" || c.Scope != "system/Observation.rs" {
		t.Errorf("payload = %s (%v)", payload, err)
	}
	// Every token gets a fresh signature (ECDSA is randomised) and jti.
	if again := f.issue(t, nil); again == tok {
		t.Error("two tokens are identical")
	}
}

func TestIssueRefusesNonP256Key(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := newES256Signer(&keys.Key{SigningKey: store.SigningKey{KID: "k"}, Private: p384}); err == nil {
		t.Error("an ES256 signer was made from a P-384 key")
	}
}

// BenchmarkIssue is the signing of one access token (bench/ has the whole
// token request).
func BenchmarkIssue(b *testing.B) {
	f := setup(b)
	c := Claims{Subject: "lab", ClientID: "lab", Scope: "system/Patient.rs", Expiry: f.now.Add(5 * time.Minute).Unix()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Issue(c); err != nil {
			b.Fatal(err)
		}
	}
}
