package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// signPool signs n assertions on every core, stopping early when budget
// has passed, and returns them in no particular order with the time taken.
// All of them stay valid for assertionLifetime less budget.
func (o *options) signPool(n int, budget time.Duration) ([]string, time.Duration, error) {
	start := time.Now()
	deadline := start.Add(budget)
	var left atomic.Int64
	left.Store(int64(n))
	workers := runtime.GOMAXPROCS(0)
	parts := make([][]string, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 && time.Now().Before(deadline) {
				a, err := o.assertion(start)
				if err != nil {
					errs[w] = err
					return
				}
				parts[w] = append(parts[w], a)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, 0, fmt.Errorf("signing assertions: %w", err)
	}
	pool := slices.Concat(parts...)
	if len(pool) == 0 {
		return nil, 0, fmt.Errorf("no assertion signed within -sign-budget %s", budget)
	}
	return pool, time.Since(start), nil
}

// assertion signs an RFC 7523 client assertion issued at iat, with a fresh
// random jti.
func (o *options) assertion(iat time.Time) (string, error) {
	var j [16]byte
	_, _ = rand.Read(j[:])
	claims, _ := json.Marshal(map[string]any{
		"iss": o.clientID, "sub": o.clientID, "aud": o.aud,
		"iat": iat.Unix(), "exp": iat.Add(assertionLifetime).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(j[:]),
	})
	jws, err := o.signer.Sign(claims)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a private key", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type %T", path, k)
	}
	return s, nil
}

// keygen writes a private key and its public JWKS.
func keygen(args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	alg := fs.String("alg", "", "RS384 (RSA 2048) or ES384 (P-384)")
	kid := fs.String("kid", "", "key id")
	keyOut := fs.String("key", "", "private key file to write (PKCS #8 PEM)")
	jwksOut := fs.String("jwks", "", "public JWKS file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kid == "" || *keyOut == "" || *jwksOut == "" {
		return errors.New("-kid, -key and -jwks are required")
	}
	var priv crypto.Signer
	var err error
	switch *alg {
	case "RS384":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return fmt.Errorf("-alg %q: use RS384 or ES384", *alg)
	}
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*keyOut, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: *kid, Algorithm: *alg, Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	return os.WriteFile(*jwksOut, append(b, '\n'), 0o644)
}
