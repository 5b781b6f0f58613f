package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/keys"
)

// accessTokenClaims is a typical RFC 9068 SMART access token payload, about
// 600 bytes of JSON.
func accessTokenClaims() []byte {
	now := time.Now().Unix()
	claims := map[string]any{
		"iss":       "https://smartgate.hospital.example.org",
		"sub":       "Practitioner/7f3c9a1e-2b4d-4e6f-8a0b-1c2d3e4f5a6b",
		"aud":       "https://smartgate.hospital.example.org/fhir",
		"client_id": "growth-chart-app-4b1f2c3d",
		"scope":     "launch openid fhirUser offline_access patient/Patient.rs patient/Observation.rs patient/Condition.rs",
		"iat":       now,
		"exp":       now + 3600,
		"jti":       "Jm9xT3cK5aZ8pQ2vN7rL1sW4yE6uI0oB",
		"grant":     "g_9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
		"patient":   "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
		"encounter": "e5f6a7b8-c9d0-4e1f-2a3b-4c5d6e7f8a9b",
		"fhirUser":  "https://smartgate.hospital.example.org/fhir/Practitioner/7f3c9a1e-2b4d-4e6f-8a0b-1c2d3e4f5a6b",
	}
	b, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return b
}

// jwtKeys is one algorithm's private key (from keys.Manager.Signer) and its
// public key as a verifier finds it in the JWKS.
type jwtKeys struct {
	alg    jose.SignatureAlgorithm
	signer *keys.Key
	public jose.JSONWebKey
}

// managerKeys opens a store with a fresh installation's keys and returns
// them the way an issuer and a verifier see them.
func managerKeys(b *testing.B) []jwtKeys {
	b.Helper()
	st := openStore(b, filepath.Join(b.TempDir(), "smartgate.db"))
	m := ensureKeys(b, st)
	raw, err := m.JWKS()
	if err != nil {
		b.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		b.Fatalf("JWKS does not parse: %v", err)
	}
	var out []jwtKeys
	for _, alg := range []string{keys.ES256, keys.RS256} {
		k, err := m.Signer(alg)
		if err != nil {
			b.Fatal(err)
		}
		pub := set.Key(k.KID)
		if len(pub) != 1 {
			b.Fatalf("JWKS has %d keys with kid %s", len(pub), k.KID)
		}
		out = append(out, jwtKeys{alg: jose.SignatureAlgorithm(alg), signer: k, public: pub[0]})
	}
	return out
}

func newSigner(b *testing.B, k jwtKeys) jose.Signer {
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.signer.Private, KeyID: k.signer.KID}},
		(&jose.SignerOptions{}).WithType("at+jwt"),
	)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func signCompact(b *testing.B, s jose.Signer, payload []byte) string {
	obj, err := s.Sign(payload)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// BenchmarkJWT signs and verifies a ~600-byte access token payload with
// each algorithm smartgate signs with, on one goroutine (one core).
//
//   - Sign: a signer built once, as an issuer keeps it; compact form.
//   - SignWithSetup: Manager.Signer + jose.NewSigner + Sign on every
//     token, the cost if the signer is not kept.
//   - Verify: parse the compact JWS and verify it with the public key from
//     the JWKS (what a resource server does with a token it has not cached).
func BenchmarkJWT(b *testing.B) {
	payload := accessTokenClaims()
	for _, k := range managerKeys(b) {
		b.Run(string(k.alg)+"/Sign", func(b *testing.B) {
			s := newSigner(b, k)
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				signCompact(b, s, payload)
			}
		})
		b.Run(string(k.alg)+"/SignWithSetup", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				signCompact(b, newSigner(b, k), payload)
			}
		})
		b.Run(string(k.alg)+"/Verify", func(b *testing.B) {
			tok := signCompact(b, newSigner(b, k), payload)
			algs := []jose.SignatureAlgorithm{k.alg}
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				obj, err := jose.ParseSigned(tok, algs)
				if err != nil {
					b.Fatal(err)
				}
				got, err := obj.Verify(&k.public)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != len(payload) {
					b.Fatalf("verified payload has %d bytes, want %d", len(got), len(payload))
				}
			}
		})
	}
}

// BenchmarkRawCrypto is the bare signature over SHA-256 with crypto/ecdsa
// and crypto/rsa, no JOSE: the floor under BenchmarkJWT, to tell the
// library's overhead from the machine's speed.
func BenchmarkRawCrypto(b *testing.B) {
	digest := sha256.Sum256(accessTokenClaims())
	for _, k := range managerKeys(b) {
		switch priv := k.signer.Private.(type) {
		case *ecdsa.PrivateKey:
			b.Run(string(k.alg)+"/Sign", func(b *testing.B) {
				for b.Loop() {
					if _, err := ecdsa.SignASN1(rand.Reader, priv, digest[:]); err != nil {
						b.Fatal(err)
					}
				}
			})
			sig, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
			if err != nil {
				b.Fatal(err)
			}
			b.Run(string(k.alg)+"/Verify", func(b *testing.B) {
				for b.Loop() {
					if !ecdsa.VerifyASN1(&priv.PublicKey, digest[:], sig) {
						b.Fatal("signature does not verify")
					}
				}
			})
		case *rsa.PrivateKey:
			b.Run(string(k.alg)+"/Sign", func(b *testing.B) {
				for b.Loop() {
					if _, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:]); err != nil {
						b.Fatal(err)
					}
				}
			})
			sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:])
			if err != nil {
				b.Fatal(err)
			}
			b.Run(string(k.alg)+"/Verify", func(b *testing.B) {
				for b.Loop() {
					if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
						b.Fatal(err)
					}
				}
			})
		default:
			b.Fatalf("%s key is a %T", k.alg, priv)
		}
	}
}

// BenchmarkKeysJWKS is Manager.JWKS alone: the per-request work of the
// JWKS endpoint before HTTP (key states, then the JSON document).
func BenchmarkKeysJWKS(b *testing.B) {
	st := openStore(b, filepath.Join(b.TempDir(), "smartgate.db"))
	m := ensureKeys(b, st)
	for b.Loop() {
		if _, err := m.JWKS(); err != nil {
			b.Fatal(err)
		}
	}
}
