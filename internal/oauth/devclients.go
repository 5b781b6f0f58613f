package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/store"
)

// CLIClientID is the built-in public client of `smartgate token`
// (DESIGN.md "Command line"): loopback redirect, any port.
const CLIClientID = "smartgate-cli"

// CLIRedirectURI is smartgate-cli's redirect URI; any port matches.
const CLIRedirectURI = "http://127.0.0.1/callback"

// EnsureCLIClient creates the built-in client smartgate-cli when it does
// not exist (every start does this).
func EnsureCLIClient(ctx context.Context, reg *Registry) error {
	if _, err := reg.Get(ctx, CLIClientID); err == nil || !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, err := reg.Create(ctx, store.ClientMetadata{
		ClientName: "smartgate command line (smartgate token)", TokenEndpointAuthMethod: "none",
		RedirectURIs: []string{CLIRedirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scope: "openid fhirUser profile launch/patient offline_access online_access patient/*.cruds user/*.cruds smartgate:admin",
	}, Options{ByAdmin: true, ID: CLIClientID})
	if errors.Is(err, store.ErrConflict) {
		return nil // another node made it first
	}
	return err
}

// DevClient is one entry of <data-dir>/dev-clients.json (DESIGN.md "Dev mode").
type DevClient struct {
	ClientID         string          `json:"client_id"`
	ClientSecret     string          `json:"client_secret,omitempty"`
	Type             string          `json:"type"`
	Name             string          `json:"name"`
	RedirectURIs     []string        `json:"redirect_uris,omitempty"`
	Scope            string          `json:"scope"`
	GrantTypes       []string        `json:"grant_types"`
	InitiateLoginURI string          `json:"initiate_login_uri,omitempty"`
	MayLaunch        bool            `json:"may_launch"`
	PrivateJWK       json.RawMessage `json:"private_jwk,omitempty"`
}

// DevClientsFile is the file name of the demo clients in the data dir.
const DevClientsFile = "dev-clients.json"

// devClientTemplates are the demo clients of serve --dev.
func devClientTemplates() []DevClient {
	return []DevClient{
		{ClientID: "demo-patient-app", Type: Public, Name: "Demo patient app",
			RedirectURIs: []string{"http://127.0.0.1/callback"},
			Scope:        "openid fhirUser launch/patient offline_access patient/*.rs", GrantTypes: []string{"authorization_code", "refresh_token"}},
		{ClientID: "demo-clinician-app", Type: ConfidentialSymmetric, Name: "Demo clinician app",
			RedirectURIs: []string{"http://127.0.0.1/callback"}, InitiateLoginURI: "http://127.0.0.1/launch", MayLaunch: true,
			Scope:      "openid fhirUser profile launch launch/patient launch/encounter online_access offline_access user/*.cruds patient/*.rs",
			GrantTypes: []string{"authorization_code", "refresh_token"}},
		{ClientID: "demo-backend", Type: ConfidentialAsymmetric, Name: "Demo backend service",
			Scope: "system/*.rs", GrantTypes: []string{"client_credentials"}},
	}
}

// EnsureDevClients makes the demo clients exist and writes path (mode
// 0600) with their ids, secrets and the backend's private key. A later
// start reuses path, re-creating clients missing from the database (a new
// database) with the same secrets and keys.
func EnsureDevClients(ctx context.Context, reg *Registry, path string) ([]DevClient, error) {
	var dcs []DevClient
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &dcs); err != nil {
			return nil, fmt.Errorf("%s is not the demo clients' JSON (%v); delete it and restart to make new demo clients", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		dcs = devClientTemplates()
	default:
		return nil, err
	}
	changed := false
	for i := range dcs {
		dc := &dcs[i]
		_, err := reg.Get(ctx, dc.ClientID)
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		md := store.ClientMetadata{ClientName: dc.Name, RedirectURIs: dc.RedirectURIs, Scope: dc.Scope, GrantTypes: dc.GrantTypes, InitiateLoginURI: dc.InitiateLoginURI}
		switch dc.Type {
		case Public:
			md.TokenEndpointAuthMethod = "none"
		case ConfidentialSymmetric:
			md.TokenEndpointAuthMethod = "client_secret_basic"
			if dc.ClientSecret == "" {
				dc.ClientSecret, _ = NewSecret()
				changed = true
			}
		case ConfidentialAsymmetric:
			md.TokenEndpointAuthMethod = "private_key_jwt"
			if len(dc.PrivateJWK) == 0 {
				priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
				if err != nil {
					return nil, err
				}
				jwk := jose.JSONWebKey{Key: priv, KeyID: "demo-backend-es384", Algorithm: "ES384", Use: "sig"}
				if dc.PrivateJWK, err = jwk.MarshalJSON(); err != nil {
					return nil, err
				}
				changed = true
			}
			var jwk jose.JSONWebKey
			if err := jwk.UnmarshalJSON(dc.PrivateJWK); err != nil {
				return nil, fmt.Errorf("%s: the private_jwk of %s does not parse: %v", path, dc.ClientID, err)
			}
			pub, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk.Public()}})
			if err != nil {
				return nil, err
			}
			md.JWKS = pub
		}
		if _, err := reg.Create(ctx, md, Options{ByAdmin: true, ID: dc.ClientID, Secret: dc.ClientSecret, MayLaunch: dc.MayLaunch}); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("demo client %s: %w", dc.ClientID, err)
		}
		changed = true
	}
	if _, err := os.Stat(path); changed || err != nil {
		out, err := json.MarshalIndent(dcs, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o600); err != nil {
			return nil, err
		}
	}
	_ = os.Chmod(path, 0o600)
	return dcs, nil
}
