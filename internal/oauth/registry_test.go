package oauth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

func TestValidateDefaults(t *testing.T) {
	f := newOAuthFixture(t, nil)
	md := store.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb", "https://app.example.com/cb"}, Scope: "openid fhirUser launch patient/*.rs"}
	typ, scopes, err := f.s.Clients.Validate(&md)
	if err != nil {
		t.Fatal(err)
	}
	if typ != ConfidentialSymmetric {
		t.Errorf("type = %s, want %s (RFC 7591 section 2: the default auth method is client_secret_basic)", typ, ConfidentialSymmetric)
	}
	want := store.ClientMetadata{
		RedirectURIs:            []string{"https://app.example.com/cb"}, // duplicates collapse
		TokenEndpointAuthMethod: "client_secret_basic",
		GrantTypes:              []string{"authorization_code"},
		ResponseTypes:           []string{"code"},
		Scope:                   "openid fhirUser launch patient/*.rs",
	}
	if d := cmp.Diff(want, md); d != "" {
		t.Errorf("normalised metadata (-want +got):\n%s", d)
	}
	if len(scopes) != 4 {
		t.Errorf("parsed %d scopes, want 4", len(scopes))
	}

	// Each auth method implies its client type.
	for method, wantType := range map[string]string{"none": Public, "client_secret_basic": ConfidentialSymmetric, "client_secret_post": ConfidentialSymmetric} {
		md := store.ClientMetadata{TokenEndpointAuthMethod: method, RedirectURIs: []string{"https://app.example.com/cb"}, Scope: "patient/*.rs"}
		if typ, _, err := f.s.Clients.Validate(&md); err != nil || typ != wantType {
			t.Errorf("Validate(auth method %s) = %s, %v; want %s", method, typ, err, wantType)
		}
	}
	pub, _ := ecJWKS(t)
	md = store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKS: pub, Scope: "system/Observation.rs"}
	if typ, _, err := f.s.Clients.Validate(&md); err != nil || typ != ConfidentialAsymmetric {
		t.Errorf("Validate(private_key_jwt with jwks) = %s, %v; want %s", typ, err, ConfidentialAsymmetric)
	}
	if md.ResponseTypes != nil {
		t.Errorf("a client_credentials client got response_types %v, want none", md.ResponseTypes)
	}
	md = store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKSURI: "https://lab.example.org/jwks.json", Scope: "system/Observation.rs"}
	if _, _, err := f.s.Clients.Validate(&md); err != nil {
		t.Errorf("Validate(private_key_jwt with jwks_uri): %v", err)
	}
}

func TestValidateRefusals(t *testing.T) {
	dev := newOAuthFixture(t, nil)
	prod := newOAuthFixture(t, func(c *config.Config) { c.Dev = false })
	pub, priv := ecJWKS(t)

	// base is a valid confidential user-facing client; each case breaks one rule.
	base := func() store.ClientMetadata {
		return store.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb"}, Scope: "patient/*.rs"}
	}
	backend := func() store.ClientMetadata {
		return store.ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", GrantTypes: []string{"client_credentials"}, JWKS: pub, Scope: "system/*.rs"}
	}
	for _, tc := range []struct {
		name string
		md   func() store.ClientMetadata
		prod bool // validate against a non-dev configuration
		id   problem.ID
		want string // a fragment of the description
	}{
		{"client_secret_jwt", func() store.ClientMetadata { m := base(); m.TokenEndpointAuthMethod = "client_secret_jwt"; return m },
			false, problem.InvalidClientMetadata, "client_secret_jwt is not supported"},
		{"unknown auth method", func() store.ClientMetadata { m := base(); m.TokenEndpointAuthMethod = "tls_client_auth"; return m },
			false, problem.InvalidClientMetadata, `"tls_client_auth" is not one of none, client_secret_basic, client_secret_post, private_key_jwt`},
		{"unknown grant type", func() store.ClientMetadata {
			m := base()
			m.GrantTypes = []string{"authorization_code", "implicit"}
			return m
		},
			false, problem.InvalidClientMetadata, `grant_types: "implicit" is not supported`},
		{"implicit grant", func() store.ClientMetadata { m := base(); m.GrantTypes = []string{"implicit"}; return m },
			false, problem.InvalidClientMetadata, `grant_types: "implicit" is not supported`},
		{"response type token", func() store.ClientMetadata { m := base(); m.ResponseTypes = []string{"token"}; return m },
			false, problem.InvalidClientMetadata, `response_types: "token" is not supported`},
		{"response_types without authorization_code", func() store.ClientMetadata { m := backend(); m.ResponseTypes = []string{"code"}; return m },
			false, problem.InvalidClientMetadata, "response_types code needs grant_types to include authorization_code"},
		{"client_credentials on a public client", func() store.ClientMetadata {
			return store.ClientMetadata{TokenEndpointAuthMethod: "none", GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}
		}, false, problem.InvalidClientMetadata, "grant_types client_credentials needs a confidential client"},
		{"authorization_code without redirect_uris", func() store.ClientMetadata { m := base(); m.RedirectURIs = nil; return m },
			false, problem.InvalidClientMetadata, "redirect_uris is required with grant type authorization_code"},
		{"bad redirect uri", func() store.ClientMetadata { m := base(); m.RedirectURIs = []string{"http://localhost/cb"}; return m },
			false, problem.InvalidRedirectURI, "uses localhost"},
		{"private-use scheme on a confidential client", func() store.ClientMetadata { m := base(); m.RedirectURIs = []string{"com.example.app:/cb"}; return m },
			false, problem.InvalidRedirectURI, "only public native apps may register"},
		{"jwks and jwks_uri", func() store.ClientMetadata { m := backend(); m.JWKSURI = "https://lab.example.org/jwks.json"; return m },
			false, problem.InvalidClientMetadata, "give jwks or jwks_uri, not both"},
		{"private_key_jwt without keys", func() store.ClientMetadata { m := backend(); m.JWKS = nil; return m },
			false, problem.InvalidClientMetadata, "private_key_jwt needs the client's public keys"},
		{"jwks with private members", func() store.ClientMetadata { m := backend(); m.JWKS = priv; return m },
			false, problem.InvalidClientMetadata, `contains the private key member "d"`},
		{"jwks not a set", func() store.ClientMetadata { m := backend(); m.JWKS = json.RawMessage(`{"kty":"EC"}`); return m },
			false, problem.InvalidClientMetadata, `jwks: The JWK Set has no "keys" member`},
		{"jwks_uri on a private address outside dev", func() store.ClientMetadata {
			m := backend()
			m.JWKS, m.JWKSURI = nil, "https://10.0.0.8/jwks.json"
			return m
		}, true, problem.InvalidClientMetadata, "jwks_uri: jwks_uri must point to a public internet host"},
		{"jwks_uri over http outside dev", func() store.ClientMetadata {
			m := backend()
			m.JWKS, m.JWKSURI = nil, "http://lab.example.org/jwks.json"
			return m
		}, true, problem.InvalidClientMetadata, "jwks_uri must use https"},
		{"logo_uri http outside dev", func() store.ClientMetadata { m := base(); m.LogoURI = "http://app.example.com/logo.png"; return m },
			true, problem.InvalidClientMetadata, `logo_uri: "http://app.example.com/logo.png" must be an absolute https URL`},
		{"tos_uri relative", func() store.ClientMetadata { m := base(); m.TOSURI = "/tos"; return m },
			false, problem.InvalidClientMetadata, `tos_uri: "/tos" must be an absolute https URL`},
		{"policy_uri javascript", func() store.ClientMetadata { m := base(); m.PolicyURI = "javascript:alert(1)"; return m },
			false, problem.InvalidClientMetadata, "policy_uri"},
		{"long client_name", func() store.ClientMetadata { m := base(); m.ClientName = strings.Repeat("n", 201); return m },
			false, problem.InvalidClientMetadata, "client_name is longer than 200 characters"},
		{"empty contact", func() store.ClientMetadata { m := base(); m.Contacts = []string{""}; return m },
			false, problem.InvalidClientMetadata, "contacts: each entry must be a non-empty address"},
		{"missing scope", func() store.ClientMetadata { m := base(); m.Scope = "  "; return m },
			false, problem.InvalidClientMetadata, "scope is required"},
		{"unknown scope", func() store.ClientMetadata { m := base(); m.Scope = "patient/Observaton.rs openid"; return m },
			false, problem.InvalidClientMetadata, "'patient/Observaton.rs' is unknown"},
		{"malformed scope", func() store.ClientMetadata { m := base(); m.Scope = "patient/Observation"; return m },
			false, problem.InvalidClientMetadata, "'patient/Observation' is malformed"},
		{"system scope without client_credentials", func() store.ClientMetadata { m := base(); m.Scope = "patient/*.rs system/Patient.rs"; return m },
			false, problem.InvalidClientMetadata, "scope system/Patient.rs is a system/ scope, which only the client_credentials grant"},
		{"patient scope without authorization_code", func() store.ClientMetadata { m := backend(); m.Scope = "system/*.rs patient/Observation.rs"; return m },
			false, problem.InvalidClientMetadata, "scope patient/Observation.rs needs a user and so the authorization_code grant"},
		{"user scope without authorization_code", func() store.ClientMetadata { m := backend(); m.Scope = "user/Observation.rs"; return m },
			false, problem.InvalidClientMetadata, "scope user/Observation.rs needs a user"},
	} {
		f := dev
		if tc.prod {
			f = prod
		}
		md := tc.md()
		_, _, err := f.s.Clients.Validate(&md)
		if err == nil {
			t.Errorf("%s: Validate accepted %+v", tc.name, md)
			continue
		}
		pe := problem.From(err)
		if pe.ID != tc.id {
			t.Errorf("%s: id %s, want %s (%s)", tc.name, pe.ID, tc.id, pe.Description)
		}
		if !strings.Contains(pe.Description, tc.want) {
			t.Errorf("%s: description %q does not contain %q", tc.name, pe.Description, tc.want)
		}
	}

	// The same http logo_uri is fine in dev mode.
	md := base()
	md.LogoURI = "http://127.0.0.1:8080/logo.png"
	if _, _, err := dev.s.Clients.Validate(&md); err != nil {
		t.Errorf("dev mode refused an http logo_uri: %v", err)
	}
	md = base()
	md.ClientName = strings.Repeat("n", 200)
	if _, _, err := dev.s.Clients.Validate(&md); err != nil {
		t.Errorf("a 200-character client_name was refused: %v", err)
	}
}

// A registration over HTTP reports a refusal as the OAuth error it is.
func TestRegisterRefusalOverHTTP(t *testing.T) {
	f := newOAuthFixture(t, nil)
	w := f.serve(f.s.Register, jsonRequest("POST", "/oauth2/register", "", `{"redirect_uris":["http://localhost/cb"],"scope":"patient/*.rs","token_endpoint_auth_method":"none"}`))
	wantError(t, "localhost redirect", w, 400, "invalid_redirect_uri", problem.InvalidRedirectURI, "127.0.0.1")
	w = f.serve(f.s.Register, jsonRequest("POST", "/oauth2/register", "", `{"redirect_uris":"https://app.example.com/cb","scope":"patient/*.rs"}`))
	wantError(t, "redirect_uris as a string", w, 400, "invalid_client_metadata", problem.InvalidClientMetadata, "redirect_uris has the wrong JSON type: it must be an array of strings")
	r := jsonRequest("POST", "/oauth2/register", "", `{"scope":"patient/*.rs"}`)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantError(t, "form body", f.serve(f.s.Register, r), 400, "invalid_request", problem.InvalidRequest, "send Content-Type: application/json")
}

func TestRegistryStatusAndSecrets(t *testing.T) {
	f := newOAuthFixture(t, nil)
	ctx := context.Background()
	c := f.backendService("system/*.rs")
	if !secretMatches(c.Secret, c.Client.SecretHash) || len(c.Client.RegistrationTokenHash) != 32 {
		t.Fatal("the stored hashes do not match the secrets handed out")
	}
	secret, err := f.s.Clients.RotateSecret(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "old secret after rotation", f.clientCredentials(c, ""), 401, "invalid_client", problem.InvalidClient, "the client secret for "+c.ID+" is wrong")
	c.Secret = secret
	tokenResponse(t, f.clientCredentials(c, ""))

	pub := f.create(store.ClientMetadata{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://app.example.com/cb"}, Scope: "patient/*.rs"}, Options{ByAdmin: true})
	if _, err := f.s.Clients.RotateSecret(ctx, pub.ID); !problem.IsID(err, problem.InvalidClientMetadata) {
		t.Errorf("RotateSecret(public client) = %v, want %s", err, problem.InvalidClientMetadata)
	}
	if _, err := f.s.Clients.Create(ctx, store.ClientMetadata{GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"}, Options{Admin: true}); !problem.IsID(err, problem.InvalidClientMetadata) {
		t.Errorf("a self-registered admin client = %v, want %s", err, problem.InvalidClientMetadata)
	}
	// A type change through Update is refused: register a new client instead.
	app := f.userApp("patient/*.rs offline_access")
	md := app.Client.Metadata
	md.TokenEndpointAuthMethod = "none"
	if _, _, err := f.s.Clients.Update(ctx, app.ID, md, true); err == nil || !strings.Contains(problem.From(err).Description, "would change the client type from confidential-symmetric to public") {
		t.Errorf("Update changing the type = %v", err)
	}
}
