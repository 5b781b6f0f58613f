package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A full federation.issuers entry loads from the YAML file, nested objects
// and maps included, and the same entry loads from JSON in the
// environment.
func TestIssuersLoad(t *testing.T) {
	file := writeYAML(t, `
issuer: https://ehr.example.org
tls: {cert_file: a, key_file: b}
federation:
  issuers:
    - issuer: https://kc.example.org/realms/ehr
      audience: https://ehr.example.org/fhir
      types: [JWT, at+jwt]
      algorithms: [RS256]
      scope_claim: scp
      patient_claim: patient_id
      fhir_user_claim: fhir_user
      client_id_claim: azp
      scope_map:
        fhir-read: "user/*.rs"
        labs: "patient/Observation.rs?category=laboratory"
      max_skew: 30s
      allow_private: true
      introspection:
        url: https://kc.example.org/realms/ehr/protocol/openid-connect/token/introspect
        client_id: smartgate
        client_secret: s3cret
        cache_ttl: 2m
`)
	want := ExternalIssuer{
		Issuer: "https://kc.example.org/realms/ehr", Audience: "https://ehr.example.org/fhir",
		Types: []string{"JWT", "at+jwt"}, Algorithms: []string{"RS256"}, ScopeClaim: "scp",
		PatientClaim: "patient_id", FHIRUserClaim: "fhir_user", ClientIDClaim: "azp",
		ScopeMap: map[string]string{"fhir-read": "user/*.rs", "labs": "patient/Observation.rs?category=laboratory"},
		MaxSkew:  Duration(30 * time.Second), AllowPrivate: true,
		Introspection: &IssuerIntrospection{URL: "https://kc.example.org/realms/ehr/protocol/openid-connect/token/introspect",
			ClientID: "smartgate", ClientSecret: "s3cret", CacheTTL: Duration(2 * time.Minute)},
	}
	l, err := Load(Options{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]ExternalIssuer{want}, l.Federation.Issuers); d != "" {
		t.Errorf("issuers from the file (-want +got):\n%s", d)
	}
	if err := l.Validate(); err != nil {
		t.Errorf("a valid entry: %v", err)
	}

	env := `SMARTGATE_FEDERATION_ISSUERS=[{"issuer":"https://kc.example.org/realms/ehr","audience":"https://ehr.example.org/fhir","types":["JWT","at+jwt"],` +
		`"algorithms":["RS256"],"scope_claim":"scp","patient_claim":"patient_id","fhir_user_claim":"fhir_user","client_id_claim":"azp",` +
		`"scope_map":{"fhir-read":"user/*.rs","labs":"patient/Observation.rs?category=laboratory"},"max_skew":"30s","allow_private":true,` +
		`"introspection":{"url":"https://kc.example.org/realms/ehr/protocol/openid-connect/token/introspect","client_id":"smartgate","client_secret":"s3cret","cache_ttl":"2m"}}]`
	l, err = Load(Options{Env: []string{env}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]ExternalIssuer{want}, l.Federation.Issuers); d != "" {
		t.Errorf("issuers from the environment (-want +got):\n%s", d)
	}

	// A bare number is not a duration, here as everywhere.
	_, err = Load(Options{Env: []string{`SMARTGATE_FEDERATION_ISSUERS=[{"issuer":"https://a.example","audience":"x","max_skew":30}]`}})
	if err == nil || !strings.Contains(err.Error(), "not a duration") {
		t.Errorf("max_skew: 30: %v, want an error saying it is not a duration", err)
	}
}

func TestIssuerDefaults(t *testing.T) {
	got := ExternalIssuer{Issuer: "https://a.example", Audience: "x", Introspection: &IssuerIntrospection{ClientID: "c", ClientSecret: "s"}}.WithDefaults()
	want := ExternalIssuer{Issuer: "https://a.example", Audience: "x", Types: []string{"at+jwt", "application/at+jwt"},
		Algorithms: []string{"RS256", "ES256", "PS256"}, ScopeClaim: "scope", PatientClaim: "patient", FHIRUserClaim: "fhirUser",
		MaxSkew: Duration(time.Minute), Introspection: &IssuerIntrospection{ClientID: "c", ClientSecret: "s", CacheTTL: Duration(time.Minute)}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("defaults (-want +got):\n%s", d)
	}
}

// Every rule of validateIssuers names the key (with the entry's index) and
// what to write instead.
func TestIssuersValidate(t *testing.T) {
	base := func() Config {
		c := Default()
		c.Issuer, c.TLS = "https://ehr.example.org", TLS{CertFile: "a", KeyFile: "b"}
		c.Resolve()
		return c
	}
	good := ExternalIssuer{Issuer: "https://kc.example.org/realms/ehr", Audience: "https://ehr.example.org/fhir"}
	tests := []struct {
		name  string
		edit  func(*ExternalIssuer)
		key   string
		words []string
	}{
		{"issuer missing", func(e *ExternalIssuer) { e.Issuer = "" }, "federation.issuers[0].issuer", []string{"required"}},
		{"issuer relative", func(e *ExternalIssuer) { e.Issuer = "kc.example.org" }, "federation.issuers[0].issuer", []string{"absolute URL"}},
		{"issuer with a query", func(e *ExternalIssuer) { e.Issuer = "https://kc.example.org/?realm=x" }, "federation.issuers[0].issuer", []string{"query"}},
		{"issuer over http", func(e *ExternalIssuer) { e.Issuer = "http://kc.internal/realms/ehr" }, "federation.issuers[0].issuer", []string{"allow_private"}},
		{"smartgate itself", func(e *ExternalIssuer) { e.Issuer = "https://ehr.example.org" }, "federation.issuers[0].issuer", []string{"own issuer"}},
		{"jwks_uri over http", func(e *ExternalIssuer) { e.JWKSURI = "http://kc.internal/certs" }, "federation.issuers[0].jwks_uri", []string{"https://"}},
		{"audience missing", func(e *ExternalIssuer) { e.Audience = " " }, "federation.issuers[0].audience", []string{"required", "https://ehr.example.org/fhir"}},
		{"an id_token type", func(e *ExternalIssuer) { e.Types = []string{"JWT", "id_token+jwt"} }, "federation.issuers[0].types", []string{"id_token"}},
		{"alg none", func(e *ExternalIssuer) { e.Algorithms = []string{"none"} }, "federation.issuers[0].algorithms", []string{"never accepted"}},
		{"alg HS256", func(e *ExternalIssuer) { e.Algorithms = []string{"RS256", "HS256"} }, "federation.issuers[0].algorithms", []string{"HMAC"}},
		{"alg lower case", func(e *ExternalIssuer) { e.Algorithms = []string{"rs256"} }, "federation.issuers[0].algorithms", []string{"case matters"}},
		{"claim with a space", func(e *ExternalIssuer) { e.PatientClaim = "patient id" }, "federation.issuers[0].patient_claim", []string{"not a claim name"}},
		{"scope_map to an unknown scope", func(e *ExternalIssuer) { e.ScopeMap = map[string]string{"read": "patient/Observaton.rs"} }, "federation.issuers[0].scope_map", []string{"Observaton", "Observation"}},
		{"scope_map to admin", func(e *ExternalIssuer) { e.ScopeMap = map[string]string{"admin": "smartgate:admin"} }, "federation.issuers[0].scope_map", []string{"smartgate:admin"}},
		{"scope_map to nothing", func(e *ExternalIssuer) { e.ScopeMap = map[string]string{"x": ""} }, "federation.issuers[0].scope_map", []string{"maps to nothing"}},
		{"skew too long", func(e *ExternalIssuer) { e.MaxSkew = Duration(10 * time.Minute) }, "federation.issuers[0].max_skew", []string{"between 0s and 5m0s"}},
		{"skew without a unit", func(e *ExternalIssuer) { e.MaxSkew = 60 }, "federation.issuers[0].max_skew", []string{"unit"}},
		{"introspection without credentials", func(e *ExternalIssuer) {
			e.Introspection = &IssuerIntrospection{URL: "https://kc.example.org/introspect"}
		}, "federation.issuers[0].introspection", []string{"client_id and client_secret"}},
		{"introspection cached too long", func(e *ExternalIssuer) {
			e.Introspection = &IssuerIntrospection{ClientID: "a", ClientSecret: "b", CacheTTL: Duration(time.Hour)}
		}, "federation.issuers[0].introspection.cache_ttl", []string{"between 1s and 10m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			e := good
			tt.edit(&e)
			c.Federation.Issuers = []ExternalIssuer{e}
			err := c.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a problem with %s", err, tt.key)
			}
			for _, p := range ve.Problems {
				if p.Key != tt.key {
					continue
				}
				for _, w := range tt.words {
					if !strings.Contains(p.Message, w) {
						t.Errorf("%s: %q does not say %q", p.Key, p.Message, w)
					}
				}
				return
			}
			t.Errorf("no problem for %s in %v", tt.key, ve.Problems)
		})
	}

	t.Run("private issuer allowed when said so", func(t *testing.T) {
		c := base()
		e := good
		e.Issuer, e.JWKSURI, e.AllowPrivate = "http://127.0.0.1:8081/realms/ehr", "http://127.0.0.1:8081/certs", true
		c.Federation.Issuers = []ExternalIssuer{e}
		if err := c.Validate(); err != nil {
			t.Errorf("allow_private: %v", err)
		}
	})
	t.Run("duplicate issuer", func(t *testing.T) {
		c := base()
		c.Federation.Issuers = []ExternalIssuer{good, good}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "federation.issuers[1].issuer") || !strings.Contains(err.Error(), "also federation.issuers[0]") {
			t.Errorf("a repeated issuer: %v", err)
		}
	})
}
