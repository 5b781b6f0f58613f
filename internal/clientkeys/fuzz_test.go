package clientkeys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"testing"
)

// FuzzFromJWKS feeds arbitrary documents to the JWK Set parser: it must not
// panic, must fail only with an *Error carrying a public message, and must
// accept only public signature keys.
func FuzzFromJWKS(f *testing.F) {
	fixtures(f)
	ecPub := jwk(f, &ecP256.PublicKey, "ec", "ES256")
	seeds := [][]byte{
		jwksDoc(f, jwk(f, rsaA, "rsa", "RS384")),
		jwksDoc(f, ecPub, jwk(f, &ecP384.PublicKey, "ec384", ""), jwk(f, edKey.Public(), "ed", "")),
		jwksDoc(f, with(jwk(f, rsaA, "rsa", ""), "d", "AQAB", "p", "AQAB")),
		jwksDoc(f, jwk(f, ecP256, "ec-private", "")),
		jwksDoc(f, with(ecPub, "use", "enc")),
		jwksDoc(f, jwk(f, rsaSmall, "small", "")),
		[]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`),
		[]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`),
		[]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","alg":"none"}]}`),
		[]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`),
		[]byte(`{"keys":[{"kty":"AKP","alg":"ML-DSA-44","pub":"AAAA"}]}`),
		[]byte(`{"keys":null}`),
		[]byte(`{"keys":[{}]}`),
		[]byte(`{"keys":[{"kty":"EC","kty":"EC"}]}`),
		[]byte("\x00\xff{garbage"),
		[]byte(`[]`),
		[]byte(``),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := FromJWKS(data)
		if err != nil {
			var e *Error
			if set != nil || !errors.As(err, &e) || !errors.Is(err, ErrInvalidJWKS) || PublicMessage(err) == "" {
				t.Fatalf("FromJWKS error %v (set %v): want an ErrInvalidJWKS *Error with a public message", err, set)
			}
			return
		}
		if len(set.Keys) == 0 || len(set.Keys) > maxKeys {
			t.Fatalf("accepted a set of %d keys", len(set.Keys))
		}
		for i := range set.Keys {
			k := &set.Keys[i]
			if !k.IsPublic() || !k.Valid() {
				t.Fatalf("accepted key %d is not a valid public key: %T", i, k.Key)
			}
			if k.Use != "" && k.Use != "sig" {
				t.Fatalf("accepted key %d with use %q", i, k.Use)
			}
			switch pub := k.Key.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() < minRSABits {
					t.Fatalf("accepted a %d-bit RSA key", pub.N.BitLen())
				}
			case *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Fatalf("accepted key %d of type %T", i, k.Key)
			}
			if k.Algorithm != "" && !keyFitsAlg(k, k.Algorithm) {
				t.Fatalf("accepted key %d with alg %q its type cannot use", i, k.Algorithm)
			}
			// Find must not panic on anything FromJWKS accepted.
			for _, alg := range signatureAlgs {
				Find(set, k.KeyID, alg)
				Find(set, "", alg)
			}
		}
	})
}
