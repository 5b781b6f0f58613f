package clientkeys

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestFromJWKSAccepts(t *testing.T) {
	fixtures(t)
	doc := jwksDoc(t,
		with(jwk(t, rsaA, "rsa", "RS384"), "use", "sig"),
		jwk(t, &ecP256.PublicKey, "p256", "ES256"),
		with(jwk(t, &ecP384.PublicKey, "p384", ""), "key_ops", []string{"verify"}),
		jwk(t, edKey.Public(), "ed", "EdDSA"),
		// Skipped, not refused (RFC 7517 §5): unknown kty and curves.
		map[string]any{"kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA", "kid": "pq"},
		map[string]any{"kty": "EC", "crv": "secp256k1", "x": "AAAA", "y": "AAAA", "kid": "k1"},
		map[string]any{"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "x"},
	)
	set, err := FromJWKS(doc)
	if err != nil {
		t.Fatalf("FromJWKS: %v", err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
		if !k.IsPublic() {
			t.Errorf("key %q is not public", k.KeyID)
		}
	}
	if got, want := strings.Join(kids, ","), "rsa,p256,p384,ed"; got != want {
		t.Errorf("kids = %s, want %s", got, want)
	}
}

func TestFromJWKSRefuses(t *testing.T) {
	fixtures(t)
	rsaPub := jwk(t, rsaA, "rsa", "")
	ecPub := jwk(t, &ecP256.PublicKey, "ec", "")
	cases := []struct {
		name string
		doc  []byte
		want error
	}{
		{"RSA private members", jwksDoc(t, with(rsaPub, "d", "AQAB", "p", "AQAB", "q", "AQAB")), ErrPrivateKey},
		{"EC private key", jwksDoc(t, ecPub, jwk(t, ecP384, "ec384", "")), ErrPrivateKey},
		{"Ed25519 private key", jwksDoc(t, jwk(t, edKey, "ed", "")), ErrPrivateKey},
		{"d member on a public key", jwksDoc(t, with(ecPub, "d", "AAAA")), ErrPrivateKey},
		{"upper-case D member", jwksDoc(t, with(ecPub, "D", "AAAA")), ErrPrivateKey},
		{"oth member", jwksDoc(t, with(rsaPub, "oth", []any{})), ErrPrivateKey},
		{"oct key", jwksDoc(t, map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}), ErrPrivateKey},
		{"oct key without k", jwksDoc(t, map[string]any{"kty": "oct", "kid": "h"}), ErrSymmetricKey},
		{"RSA 1024", jwksDoc(t, jwk(t, rsaSmall, "small", "")), ErrWeakKey},
		{"use enc", jwksDoc(t, with(rsaPub, "use", "enc")), ErrKeyUse},
		{"use empty string", jwksDoc(t, with(rsaPub, "use", "")), ErrKeyUse},
		{"use not a string", jwksDoc(t, with(rsaPub, "use", 1)), ErrKeyUse},
		{"key_ops without verify", jwksDoc(t, with(rsaPub, "key_ops", []string{"encrypt"})), ErrKeyUse},
		{"enc key beside a good one", jwksDoc(t, ecPub, with(rsaPub, "use", "enc")), ErrKeyUse},
		{"alg HS256 on RSA", jwksDoc(t, with(rsaPub, "alg", "HS256")), ErrInvalidJWKS},
		{"alg ES256 on RSA", jwksDoc(t, with(rsaPub, "alg", "RS256", "alg", "ES256")), ErrInvalidJWKS},
		{"alg ES384 on P-256", jwksDoc(t, with(ecPub, "alg", "ES384")), ErrInvalidJWKS},
		{"alg RSA-OAEP", jwksDoc(t, with(rsaPub, "alg", "RSA-OAEP")), ErrInvalidJWKS},
		{"EC point off curve", jwksDoc(t, with(ecPub, "y", ecPub["x"])), ErrInvalidJWKS},
		{"RSA missing n", jwksDoc(t, map[string]any{"kty": "RSA", "e": "AQAB"}), ErrInvalidJWKS},
		{"no kty", jwksDoc(t, map[string]any{"n": "AQAB", "e": "AQAB"}), ErrInvalidJWKS},
		{"kid not a string", jwksDoc(t, with(rsaPub, "kid", 7)), ErrInvalidJWKS},
		{"only unknown key types", jwksDoc(t, map[string]any{"kty": "AKP", "pub": "AA"}), ErrInvalidJWKS},
		{"empty keys", []byte(`{"keys":[]}`), ErrInvalidJWKS},
		{"keys not an array", []byte(`{"keys":{}}`), ErrInvalidJWKS},
		{"no keys member", []byte(`{"kty":"RSA"}`), ErrInvalidJWKS},
		{"a single JWK, not a set", []byte(`[]`), ErrInvalidJWKS},
		{"null", []byte(`null`), ErrInvalidJWKS},
		{"garbage", []byte(`{"keys":[`), ErrInvalidJWKS},
		{"key not an object", []byte(`{"keys":[1]}`), ErrInvalidJWKS},
		{"key null", []byte(`{"keys":[null]}`), ErrInvalidJWKS},
		{"duplicate member", []byte(`{"keys":[{"kty":"EC","kty":"oct","k":"AA"}]}`), ErrInvalidJWKS},
		{"duplicate keys member", []byte(`{"keys":[],"keys":[]}`), ErrInvalidJWKS},
		{"too many keys", jwksDoc(t, repeat(ecPub, maxKeys+1)...), ErrInvalidJWKS},
	}
	for _, c := range cases {
		set, err := FromJWKS(c.doc)
		if set != nil || !errors.Is(err, c.want) {
			t.Errorf("%s: FromJWKS = %v, %v; want %v", c.name, set, err, c.want)
			continue
		}
		pub := PublicMessage(err)
		if pub == "" || strings.Contains(pub, "go-jose") || strings.Contains(pub, "json:") {
			t.Errorf("%s: public message %q is empty or leaks a library error", c.name, pub)
		}
	}
}

func repeat(m map[string]any, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = m
	}
	return out
}

// The private-key error must say what to do: the key is compromised.
func TestFromJWKSPrivateKeyMessage(t *testing.T) {
	fixtures(t)
	_, err := FromJWKS(jwksDoc(t, jwk(t, ecP256, "leaked", "")))
	msg := PublicMessage(err)
	for _, want := range []string{`"leaked"`, "compromised", "public part"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
}

func TestFind(t *testing.T) {
	fixtures(t)
	set := mustSet(t,
		jwk(t, rsaA, "rsa-a", ""),
		jwk(t, rsaB, "rsa-b", "RS384"),
		jwk(t, &ecP384.PublicKey, "ec", ""),
		jwk(t, &ecP256.PublicKey, "dup", ""),
		jwk(t, rsaA, "dup", ""),
		jwk(t, &ecP256.PublicKey, "dup2", "ES256"),
		jwk(t, &ecP256.PublicKey, "dup2", ""),
	)
	one := mustSet(t, jwk(t, &ecP384.PublicKey, "only", ""))
	cases := []struct {
		name    string
		set     *jose.JSONWebKeySet
		kid     string
		alg     string
		wantKid string
		want    error
	}{
		{"kid match", set, "rsa-a", "RS384", "rsa-a", nil},
		{"kid match PS", set, "rsa-a", "PS256", "rsa-a", nil},
		{"kid match with JWK alg", set, "rsa-b", "RS384", "rsa-b", nil},
		{"JWK alg differs", set, "rsa-b", "RS256", "", ErrAlgMismatch},
		{"type differs", set, "ec", "RS384", "", ErrAlgMismatch},
		{"curve differs", set, "ec", "ES256", "", ErrAlgMismatch},
		{"EC match", set, "ec", "ES384", "ec", nil},
		{"unknown kid", set, "nope", "RS384", "", ErrUnknownKID},
		{"kid case matters", set, "RSA-A", "RS384", "", ErrUnknownKID},
		{"duplicate kid, alg picks", set, "dup", "ES256", "dup", nil},
		{"duplicate kid, alg picks RSA", set, "dup", "RS256", "dup", nil},
		{"duplicate kid, both fit", set, "dup2", "ES256", "", ErrAmbiguousKey},
		{"empty kid, several fit", set, "", "RS384", "", ErrAmbiguousKey},
		{"empty kid, exactly one fits", set, "", "ES384", "ec", nil},
		{"empty kid, none fits", set, "", "EdDSA", "", ErrNoKey},
		{"empty kid, one-key set", one, "", "ES384", "only", nil},
		{"empty kid, one-key set, wrong alg", one, "", "ES256", "", ErrNoKey},
		{"alg none", set, "rsa-a", "none", "", ErrUnsupportedAlg},
		{"alg HS256", set, "rsa-a", "HS256", "", ErrUnsupportedAlg},
		{"alg empty", set, "rsa-a", "", "", ErrUnsupportedAlg},
		{"nil set", nil, "x", "RS384", "", ErrNoKey},
	}
	for _, c := range cases {
		k, err := Find(c.set, c.kid, c.alg)
		if c.want != nil {
			if k != nil || !errors.Is(err, c.want) {
				t.Errorf("%s: Find(%q, %q) = %v, %v; want %v", c.name, c.kid, c.alg, k, err, c.want)
			}
			continue
		}
		if err != nil || k == nil || k.KeyID != c.wantKid {
			t.Errorf("%s: Find(%q, %q) = %v, %v; want kid %q", c.name, c.kid, c.alg, k, err, c.wantKid)
		}
	}
}

// Find holds a set built outside FromJWKS to the same rules.
func TestFindRefusesUnsafeKeys(t *testing.T) {
	fixtures(t)
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: ecP256, KeyID: "private"},
		{Key: []byte("secret"), KeyID: "oct"},
		{Key: rsaA, KeyID: "enc", Use: "enc"},
		{Key: rsaSmall, KeyID: "small"},
	}}
	for _, c := range []struct{ kid, alg string }{
		{"private", "ES256"}, {"oct", "RS256"}, {"enc", "RS256"}, {"small", "RS256"},
	} {
		if k, err := Find(set, c.kid, c.alg); k != nil || !errors.Is(err, ErrAlgMismatch) {
			t.Errorf("Find(%q, %q) = %v, %v; want ErrAlgMismatch", c.kid, c.alg, k, err)
		}
	}
}

// Find returns a copy: editing it must not change the cached set.
func TestFindReturnsCopy(t *testing.T) {
	fixtures(t)
	set := mustSet(t, jwk(t, &ecP256.PublicKey, "a", ""))
	k, err := Find(set, "a", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	k.KeyID = "changed"
	if set.Keys[0].KeyID != "a" {
		t.Fatal("Find returned a pointer into the set")
	}
}

// The kid comes from an attacker; messages quote and truncate it.
func TestFindQuotesKid(t *testing.T) {
	fixtures(t)
	set := mustSet(t, jwk(t, &ecP256.PublicKey, "a", ""))
	kid := "\x1b[31m" + strings.Repeat("x", 500)
	_, err := Find(set, kid, "ES256")
	msg := PublicMessage(err)
	if strings.Contains(msg, "\x1b") || len(msg) > 400 {
		t.Errorf("message not sanitized: %q", msg)
	}
}

func mustSet(t *testing.T, keys ...map[string]any) *jose.JSONWebKeySet {
	t.Helper()
	set, err := FromJWKS(jwksDoc(t, keys...))
	if err != nil {
		t.Fatalf("FromJWKS: %v", err)
	}
	return set
}
