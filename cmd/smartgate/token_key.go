package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/oauth"
)

// assertionLifetime is how far ahead a CLI assertion's exp is: inside the
// 5 minutes SMART Backend Services allow, with room for clock skew.
const assertionLifetime = 4 * time.Minute

// runBackendToken is `smartgate token --client-id ID --key-file F`: it
// signs a client assertion (RFC 7523 §2.2, SMART Backend Services
// "Authenticating to the Token endpoint") and prints the client_credentials
// token response.
func runBackendToken(ctx context.Context, g *globals, server, clientID, keyFile, kid, alg, scopes string) error {
	key, err := loadSigningKey(keyFile, kid, alg)
	if err != nil {
		return err
	}
	tokenURL := server + "/oauth2/token"
	assertion, err := signAssertion(key, clientID, tokenURL, time.Now())
	if err != nil {
		return err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {oauth.AssertionType}, "client_assertion": {assertion}}
	if scopes != "" {
		form.Set("scope", scopes)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("the token request to %s failed: %w (is smartgate running there? --server sets its address)", tokenURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			URI         string `json:"error_uri"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			return fmt.Errorf("the token endpoint %s answered HTTP %d: %.300s", tokenURL, resp.StatusCode, body)
		}
		msg := fmt.Sprintf("the token endpoint answered HTTP %d %s: %s", resp.StatusCode, e.Error, e.Description)
		if e.Error == "invalid_client" {
			msg += fmt.Sprintf(" (the assertion was signed %s with kid %q; --kid and --alg change them)", key.alg, key.kid)
		}
		if e.URI != "" {
			msg += " (" + e.URI + ")"
		}
		return errors.New(msg)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return fmt.Errorf("the token endpoint answered something that is not JSON: %.300s", body)
	}
	out.WriteByte('\n')
	_, err = g.stdout.Write(out.Bytes())
	return err
}

// signingKey is a client's private key and how it signs.
type signingKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

// signAssertion makes a client assertion: iss = sub = the client_id, aud =
// the token endpoint, a fresh jti, exp a few minutes ahead.
func signAssertion(k signingKey, clientID, tokenURL string, now time.Time) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, opts)
	if err != nil {
		return "", fmt.Errorf("cannot sign with this key as %s: %w", k.alg, err)
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims, _ := json.Marshal(map[string]any{
		"iss": clientID, "sub": clientID, "aud": tokenURL,
		"iat": now.Unix(), "exp": now.Add(assertionLifetime).Unix(), "jti": base64.RawURLEncoding.EncodeToString(jti[:]),
	})
	jws, err := signer.Sign(claims)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// loadSigningKey reads a private key from a PEM file (PKCS#8, PKCS#1 RSA
// or SEC 1 EC) or a JSON file holding a private JWK (or a JWK Set with one
// private key, or one whose kid is given), and picks its algorithm: alg
// when given, else the JWK's alg, else by key type (RS384 for RSA, ES256,
// ES384, ES512 by curve, EdDSA for Ed25519). kid defaults to the JWK's kid,
// or for PEM to the RFC 7638 thumbprint (the kid docs/backend-services.md
// publishes).
func loadSigningKey(path, kid, alg string) (signingKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return signingKey{}, fmt.Errorf("--key-file: %w", err)
	}
	raw = bytes.TrimSpace(raw)
	var k signingKey
	var jwkAlg string
	if len(raw) > 0 && raw[0] == '{' {
		jwk, err := privateJWK(raw, kid)
		if err != nil {
			return signingKey{}, fmt.Errorf("--key-file %s: %w", path, err)
		}
		signer, ok := jwk.Key.(crypto.Signer)
		if !ok {
			return signingKey{}, fmt.Errorf("--key-file %s: the JWK is not an RSA, EC or OKP private key", path)
		}
		k = signingKey{priv: signer, kid: jwk.KeyID}
		jwkAlg = jwk.Algorithm
	} else {
		signer, err := pemPrivateKey(raw)
		if err != nil {
			return signingKey{}, fmt.Errorf("--key-file %s: %w", path, err)
		}
		k.priv = signer
		pub := jose.JSONWebKey{Key: signer.Public()}
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return signingKey{}, fmt.Errorf("--key-file %s: %w", path, err)
		}
		k.kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	if kid != "" {
		k.kid = kid
	}
	switch {
	case alg != "":
		k.alg = jose.SignatureAlgorithm(alg)
	case jwkAlg != "":
		k.alg = jose.SignatureAlgorithm(jwkAlg)
	default:
		switch p := k.priv.(type) {
		case *rsa.PrivateKey:
			k.alg = jose.RS384
		case *ecdsa.PrivateKey:
			switch p.Curve {
			case elliptic.P256():
				k.alg = jose.ES256
			case elliptic.P384():
				k.alg = jose.ES384
			case elliptic.P521():
				k.alg = jose.ES512
			}
		case ed25519.PrivateKey:
			k.alg = jose.EdDSA
		}
	}
	if !slices.Contains(oauth.AssertionAlgs, string(k.alg)) {
		return signingKey{}, fmt.Errorf("--alg %q: smartgate accepts client assertions signed with %s", k.alg, strings.Join(oauth.AssertionAlgs, ", "))
	}
	return k, nil
}

// privateJWK picks the private key of a JWK or a JWK Set.
func privateJWK(raw []byte, kid string) (jose.JSONWebKey, error) {
	var probe struct {
		Keys json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("not JSON: %v", err)
	}
	var candidates []jose.JSONWebKey
	if probe.Keys != nil {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(raw, &set); err != nil {
			return jose.JSONWebKey{}, fmt.Errorf("not a JWK Set: %v", err)
		}
		candidates = set.Keys
	} else {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			return jose.JSONWebKey{}, fmt.Errorf("not a JWK: %v", err)
		}
		candidates = []jose.JSONWebKey{jwk}
	}
	var found []jose.JSONWebKey
	for _, k := range candidates {
		if !k.IsPublic() && (kid == "" || k.KeyID == kid) {
			found = append(found, k)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && kid != "":
		return jose.JSONWebKey{}, fmt.Errorf("no private key with kid %q in it", kid)
	case len(found) == 0:
		return jose.JSONWebKey{}, errors.New("it holds only public keys; give the private key (the public one is what the server has)")
	}
	return jose.JSONWebKey{}, errors.New("it holds several private keys; pick one with --kid")
}

// pemPrivateKey parses the first PEM block as a private key.
func pemPrivateKey(raw []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("neither a PEM private key nor a JSON Web Key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the key is encrypted; decrypt it first: openssl pkey -in KEY.pem -out private.pem")
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("it holds a %s; give the private key", strings.ToLower(block.Type))
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("the PEM private key does not parse: %v", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("the PEM key is not an RSA, EC or Ed25519 private key")
	}
	return signer, nil
}
