package discovery

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Keys only (the foundation): no document may be served.
var keysOnly = Features{Issuer: "https://ehr.example.org", JWKS: true, IDTokenSigningAlgs: []string{"RS256"}}

// Today's server: token endpoint, registration, introspection, revocation,
// no authorization endpoint. Only RFC 8414's document qualifies.
var current = Features{
	Issuer: "https://ehr.example.org", JWKS: true, Token: true, Registration: true, Introspection: true, Revocation: true,
	GrantTypes:           []string{"client_credentials", "refresh_token"},
	TokenAuthMethods:     []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
	TokenAuthSigningAlgs: []string{"RS384", "ES384", "RS256", "ES256", "PS256", "PS384", "EdDSA"},
	Scopes:               []string{"system/*.rs"},
}

// Everything switched on, as later issues will: every document qualifies.
var full = Features{
	Issuer: "https://ehr.example.org", FHIRBase: "https://ehr.example.org/fhir",
	JWKS: true, Authorize: true, Token: true, Registration: true, Introspection: true, Revocation: true,
	UserInfo: true, PAR: true, EndSession: true, Management: true,
	ResponseTypes:            []string{"code"},
	GrantTypes:               []string{"authorization_code", "refresh_token", "client_credentials"},
	TokenAuthMethods:         []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
	TokenAuthSigningAlgs:     []string{"RS384", "ES384"},
	CodeChallengeMethods:     []string{"S256"},
	Scopes:                   []string{"openid", "fhirUser", "launch", "offline_access"},
	Claims:                   []string{"sub", "iss", "fhirUser"},
	IDTokenSigningAlgs:       []string{"RS256"},
	SubjectTypes:             []string{"public"},
	SMARTCapabilities:        []string{"launch-ehr", "launch-standalone", "client-public", "sso-openid-connect"},
	AuthorizationResponseIss: true,
}

func TestNothingQualifiesWithKeysOnly(t *testing.T) {
	for _, d := range Documents {
		_, missing := d.Render(keysOnly)
		if len(missing) == 0 {
			t.Errorf("%s qualifies with only keys enabled; it would advertise endpoints that do not exist", d.Name)
		}
	}
}

func TestOnlyRFC8414WithoutAuthorizationEndpoint(t *testing.T) {
	for _, d := range Documents {
		doc, missing := d.Render(current)
		if d.Name == "oauth-authorization-server" {
			if len(missing) != 0 {
				t.Errorf("RFC 8414 document misses %v with a token endpoint and no authorization endpoint", missing)
			}
			if rt, ok := doc["response_types_supported"].([]string); !ok || len(rt) != 0 {
				t.Errorf("response_types_supported = %#v, want [] until the authorization endpoint exists", doc["response_types_supported"])
			}
			continue
		}
		if len(missing) == 0 {
			t.Errorf("%s qualifies without an authorization endpoint", d.Name)
		}
	}
	// With authorization_code advertised, RFC 8414 also needs the authorization endpoint.
	withCode := current
	withCode.GrantTypes = append([]string{"authorization_code"}, current.GrantTypes...)
	if _, missing := Documents[1].Render(withCode); len(missing) != 1 || missing[0] != "authorization_endpoint" {
		t.Errorf("authorization_code without an authorization endpoint: missing %v, want [authorization_endpoint]", missing)
	}
	_, missing := Documents[0].Render(current)
	want := []string{"authorization_endpoint", "response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported"}
	if d := cmp.Diff(want, missing); d != "" {
		t.Errorf("openid-configuration missing fields (-want +got):\n%s", d)
	}
}

func TestEachRequiredFieldIsEnforced(t *testing.T) {
	for _, d := range Documents {
		doc, missing := d.Render(full)
		if len(missing) != 0 {
			t.Fatalf("%s: full features still miss %v", d.Name, missing)
		}
		for _, k := range d.Required {
			if _, ok := doc[k]; !ok {
				t.Errorf("%s: required %s absent", d.Name, k)
			}
		}
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Features
	}{{"full", full}, {"current", current}, {"keys-only", keysOnly}} {
		for _, d := range Documents {
			doc, missing := d.Render(tc.f)
			got, _ := json.MarshalIndent(map[string]any{"document": doc, "missing": missing}, "", "  ")
			path := filepath.Join("testdata", tc.name+"-"+d.Name+".json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/discovery -update)", err)
			}
			if d := cmp.Diff(string(want), string(got)+"\n"); d != "" {
				t.Errorf("%s differs from the golden file (-want +got):\n%s", path, d)
			}
		}
	}
}
