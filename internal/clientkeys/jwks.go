package clientkeys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	gojson "github.com/go-jose/go-jose/v4/json"
)

// Limits on what a client's JWK Set may hold.
const (
	// maxKeys bounds the work one document can cause; real sets hold a few keys.
	maxKeys = 100
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3, §3.5).
	minRSABits = 2048
)

// privateMembers are the JWK members that carry secret material (RFC 7518
// §6.2.2, §6.3.2, §6.4; RFC 8037 §2; RFC 9964 "priv"). They are matched
// without regard to case so that no parser that folds case could see one.
var privateMembers = map[string]bool{
	"d": true, "p": true, "q": true, "dp": true, "dq": true, "qi": true,
	"oth": true, "k": true, "priv": true,
}

// FromJWKS parses a client's JWK Set (RFC 7517 §5): the inline `jwks` client
// metadata (RFC 7591 §2) or the body of its jwks_uri. It returns only public
// signature keys: RSA of 2048-4096 bits, EC on P-256/P-384/P-521, and OKP
// Ed25519.
//
// The whole set is refused, with an error naming the key and the fix, when
// any key carries private members (the client has published its secret key
// and must replace it: dropping that key quietly would hide the leak), is
// symmetric ("oct"), has a `use` other than "sig" or `key_ops` without
// "verify", is malformed, is an RSA key outside 2048-4096 bits, or names an
// `alg` its type cannot sign with. Keys of a type or curve this package does
// not know (e.g. AKP, X25519, secp256k1) are skipped, as RFC 7517 §5 asks; a
// set left with no usable key is refused. Duplicate JSON members are refused
// (go-jose's JSON decoder), so no two parsers can read one key differently.
func FromJWKS(raw []byte) (*jose.JSONWebKeySet, error) {
	var doc map[string]gojson.RawMessage
	if err := gojson.Unmarshal(raw, &doc); err != nil || doc == nil {
		return nil, newError(ErrInvalidJWKS, `The JWK Set is not a valid JSON object (or repeats a member). Provide a JWK Set as RFC 7517 §5 defines it: {"keys":[{...public key...}]}.`).cause(err)
	}
	rawKeys, ok := doc["keys"]
	if !ok {
		return nil, newError(ErrInvalidJWKS, `The JWK Set has no "keys" member. Provide {"keys":[{...public key...}]} (RFC 7517 §5).`)
	}
	var keys []gojson.RawMessage
	if err := gojson.Unmarshal(rawKeys, &keys); err != nil {
		return nil, newError(ErrInvalidJWKS, `The JWK Set's "keys" member is not an array. Provide {"keys":[{...public key...}]} (RFC 7517 §5).`).cause(err)
	}
	if len(keys) == 0 {
		return nil, newError(ErrInvalidJWKS, `The JWK Set's "keys" array is empty. Add the public key the client signs its assertions with.`)
	}
	if len(keys) > maxKeys {
		return nil, newError(ErrInvalidJWKS, "The JWK Set has %d keys; at most %d are accepted. Publish only the client's current signing keys.", len(keys), maxKeys)
	}
	set := &jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	skipped := 0
	for i, rk := range keys {
		k, err := parseKey(i, rk)
		if err != nil {
			return nil, err
		}
		if k == nil {
			skipped++
			continue
		}
		set.Keys = append(set.Keys, *k)
	}
	if len(set.Keys) == 0 {
		return nil, newError(ErrInvalidJWKS, "The JWK Set has no key smartgate can verify signatures with (%d of a type or curve it does not support). Add an RSA (2048-4096 bits), EC P-256/P-384/P-521 or Ed25519 public key with use \"sig\".", skipped)
	}
	return set, nil
}

// parseKey returns the public key at index i, nil for a key to skip, or the
// error that refuses the whole set.
func parseKey(i int, raw gojson.RawMessage) (*jose.JSONWebKey, error) {
	var m map[string]gojson.RawMessage
	if err := gojson.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, newError(ErrInvalidJWKS, "Key %d of the JWK Set is not a valid JSON object (or repeats a member). Each entry of \"keys\" must be a JWK (RFC 7517 §4) with each member once.", i).cause(err)
	}
	kid, _ := stringMember(m, "kid")
	name := keyName(i, kid)

	// Private material first: it is the most serious mistake and the message
	// must say so even when other members are wrong as well.
	for _, member := range slices.Sorted(maps.Keys(m)) {
		if privateMembers[strings.ToLower(member)] {
			return nil, newError(ErrPrivateKey, "%s contains the private key member %s: the client has published secret key material. Treat that key as compromised: generate a new key pair and register only its public part (no d, p, q, dp, dq, qi, oth or k members).", name, quote(member))
		}
	}
	kty, ok := stringMember(m, "kty")
	if !ok || kty == "" {
		return nil, newError(ErrInvalidJWKS, "%s has no \"kty\" string member. Every JWK needs a key type (RFC 7517 §4.1): \"RSA\", \"EC\" or \"OKP\".", name)
	}
	if kty == "oct" {
		return nil, newError(ErrSymmetricKey, "%s is a symmetric (\"oct\") key. A JWK Set for private_key_jwt holds public keys only (RFC 7523, SMART Backend Services); use an RSA, EC or Ed25519 key pair and register its public part.", name)
	}
	if v, present := m["use"]; present {
		use, ok := stringValue(v)
		if !ok || use != "sig" {
			return nil, newError(ErrKeyUse, "%s has \"use\" %s; keys that verify client assertions must have use \"sig\" or no use (RFC 7517 §4.2). Remove encryption keys from this set or set use to \"sig\".", name, quoteRaw(v))
		}
	}
	if v, present := m["key_ops"]; present {
		var ops []string
		if err := gojson.Unmarshal(v, &ops); err != nil || !slices.Contains(ops, "verify") {
			return nil, newError(ErrKeyUse, "%s has \"key_ops\" without \"verify\" (RFC 7517 §4.3). Add \"verify\" or remove key_ops.", name)
		}
	}
	crv, _ := stringMember(m, "crv")
	switch {
	case kty == "RSA":
	case kty == "EC" && (crv == "P-256" || crv == "P-384" || crv == "P-521"):
	case kty == "OKP" && crv == "Ed25519":
	default:
		return nil, nil // RFC 7517 §5: ignore what we do not understand
	}

	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		if kty == "RSA" && errors.Is(err, jose.ErrUnsupportedKeyType) {
			return nil, newError(ErrInvalidJWKS, "%s is an RSA key longer than %d bits; smartgate accepts 2048 to %d bits. Use a 2048, 3072 or 4096-bit key, or an EC P-256/P-384 key.", name, jose.MaxRSAModulusBits, jose.MaxRSAModulusBits).cause(err)
		}
		return nil, newError(ErrInvalidJWKS, "%s is not a valid %s public key (RFC 7518 §6). Check its members are base64url without padding and, for EC, that the point lies on the curve; export the key again with a JOSE library.", name, kty).cause(err)
	}
	if !k.IsPublic() || !k.Valid() {
		// Unreachable given the member checks above; kept as the last line.
		return nil, newError(ErrPrivateKey, "%s is not a public key. Register only the public part of the key pair.", name)
	}
	if pub, ok := k.Key.(*rsa.PublicKey); ok && pub.N.BitLen() < minRSABits {
		return nil, newError(ErrWeakKey, "%s is a %d-bit RSA key; at least %d bits are required (RFC 7518 §3.3). Generate a new key pair of 2048 bits or more.", name, pub.N.BitLen(), minRSABits)
	}
	if k.Algorithm != "" && !keyFitsAlg(&k, k.Algorithm) {
		return nil, newError(ErrInvalidJWKS, "%s has \"alg\" %s, which its key type (%s) cannot sign with. Set alg to one of %s, or remove it.", name, quote(k.Algorithm), describeKey(&k), strings.Join(algsFor(&k), ", "))
	}
	return &k, nil
}

// Find picks the key that verifies a signature made with alg by the key kid
// (the JWS header's "kid" and "alg", RFC 7515 §4.1): with a kid, the one key
// of that kid that can verify alg; with no kid, the one key in the set that
// can. A JWK that names an alg must name this one. Being strict about
// ambiguity keeps the choice of key out of the attacker's hands.
func Find(set *jose.JSONWebKeySet, kid, alg string) (*jose.JSONWebKey, error) {
	if !supportedAlg(alg) {
		return nil, newError(ErrUnsupportedAlg, "The client assertion's alg %s is not accepted. Sign with RS384 or ES384 (SMART Backend Services), or with RS256, RS512, PS256-PS512, ES256, ES512 or EdDSA.", quote(alg))
	}
	if set == nil {
		return nil, newError(ErrNoKey, "The client has no JSON Web Key Set. Register a jwks_uri or jwks with its public signing key.")
	}
	found, fits, pick := 0, 0, -1
	for i := range set.Keys {
		k := &set.Keys[i]
		if kid != "" && k.KeyID != kid {
			continue
		}
		found++
		if usableFor(k, alg) {
			fits++
			pick = i
		}
	}
	switch {
	case kid != "" && found == 0:
		return nil, newError(ErrUnknownKID, "No key in the client's JWK Set has kid %s. Publish the key that signed the assertion in the registered JWK Set, or sign with a key it holds.", quote(kid))
	case kid != "" && fits == 0:
		return nil, newError(ErrAlgMismatch, "The key with kid %s cannot verify alg %s (its type or its own alg differs). Sign with the algorithm that key is for, or publish a key for %s.", quote(kid), quote(alg), quote(alg))
	case kid != "" && fits > 1:
		return nil, newError(ErrAmbiguousKey, "More than one key in the client's JWK Set has kid %s and fits alg %s. Give each key a distinct kid (RFC 7517 §4.5).", quote(kid), quote(alg))
	case kid == "" && fits == 0:
		return nil, newError(ErrNoKey, "The client assertion has no kid and no key in the client's JWK Set can verify alg %s. Put the signing key's kid in the JWT header (SMART Backend Services requires it) and publish that key.", quote(alg))
	case kid == "" && fits > 1:
		return nil, newError(ErrAmbiguousKey, "The client assertion has no kid and %d keys in the client's JWK Set can verify alg %s. Put the signing key's kid in the JWT header (SMART Backend Services requires it).", fits, quote(alg))
	}
	k := set.Keys[pick] // a copy: callers cannot edit the cached set
	return &k, nil
}

// signatureAlgs are the JWS algorithms accepted for client assertions (RFC
// 7518 §3.1, RFC 8037 §3.1): asymmetric only, so never "none" or HS*.
var signatureAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func supportedAlg(alg string) bool { return slices.Contains(signatureAlgs, alg) }

// usableFor reports whether k may verify a signature made with alg. It
// repeats the FromJWKS rules so that a set built elsewhere is held to them.
func usableFor(k *jose.JSONWebKey, alg string) bool {
	if !k.IsPublic() || !k.Valid() || (k.Use != "" && k.Use != "sig") {
		return false
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	if pub, ok := k.Key.(*rsa.PublicKey); ok && pub.N.BitLen() < minRSABits {
		return false
	}
	return keyFitsAlg(k, alg)
}

// keyFitsAlg reports whether the key's type (and curve) can produce alg
// (RFC 7518 §3.3-3.5, RFC 8037 §3.1).
func keyFitsAlg(k *jose.JSONWebKey, alg string) bool {
	return slices.Contains(algsFor(k), alg)
}

func algsFor(k *jose.JSONWebKey) []string {
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		if pub.Curve == nil {
			return nil
		}
		switch pub.Curve.Params().Name {
		case "P-256":
			return []string{"ES256"}
		case "P-384":
			return []string{"ES384"}
		case "P-521":
			return []string{"ES512"}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

func describeKey(k *jose.JSONWebKey) string {
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC " + pub.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "unknown"
}

func keyName(i int, kid string) string {
	if kid == "" {
		return fmt.Sprintf("Key %d of the JWK Set", i)
	}
	return fmt.Sprintf("Key %d (kid %s) of the JWK Set", i, quote(kid))
}

func stringMember(m map[string]gojson.RawMessage, name string) (string, bool) {
	v, ok := m[name]
	if !ok {
		return "", false
	}
	return stringValue(v)
}

func stringValue(v gojson.RawMessage) (string, bool) {
	var s string
	if err := gojson.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// quoteRaw renders a member value of any JSON type for a message.
func quoteRaw(v gojson.RawMessage) string {
	if s, ok := stringValue(v); ok {
		return quote(s)
	}
	return quote(string(v))
}
