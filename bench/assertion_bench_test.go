package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// BenchmarkAssertionVerify is the signature check of one private_key_jwt
// client assertion (RS384 with RSA 2048, ES384 with P-384), on one
// goroutine, two ways:
//
//   - go-jose: jose.ParseSigned and Verify with the client's JWK, as
//     internal/oauth does;
//   - crypto: split the compact form by hand, SHA-384 the signing input
//     and call crypto/rsa or crypto/ecdsa directly: the floor under go-jose,
//     which tells its parsing and copying from the signature arithmetic.
//
// Both end in the same crypto/internal/fips140 code, so the difference is
// what a hand-written JWS parser could save (and it would have to refuse
// everything go-jose refuses).
func BenchmarkAssertionVerify(b *testing.B) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		alg  jose.SignatureAlgorithm
		priv crypto.Signer
	}{{jose.RS384, rsaKey}, {jose.ES384, ecKey}} {
		kid := "bench-" + strings.ToLower(string(tc.alg))
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: tc.alg, Key: tc.priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			b.Fatal(err)
		}
		tok := assertion(b, signer, "bench-client")
		jwk := jose.JSONWebKey{Key: tc.priv.Public(), KeyID: kid, Algorithm: string(tc.alg), Use: "sig"}
		algs := []jose.SignatureAlgorithm{tc.alg}
		b.Run(string(tc.alg)+"/go-jose", func(b *testing.B) {
			for b.Loop() {
				jws, err := jose.ParseSigned(tok, algs)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := jws.Verify(&jwk); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(tc.alg)+"/crypto", func(b *testing.B) {
			for b.Loop() {
				dot := strings.LastIndexByte(tok, '.')
				sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
				if err != nil {
					b.Fatal(err)
				}
				digest := sha512.Sum384([]byte(tok[:dot]))
				switch pub := tc.priv.Public().(type) {
				case *rsa.PublicKey:
					if err := rsa.VerifyPKCS1v15(pub, crypto.SHA384, digest[:], sig); err != nil {
						b.Fatal(err)
					}
				case *ecdsa.PublicKey:
					r, s := new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])
					if !ecdsa.Verify(pub, digest[:], r, s) {
						b.Fatal("signature does not verify")
					}
				}
			}
		})
	}
}
