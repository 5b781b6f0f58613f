package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"smartgate/internal/scope"
)

// ExternalIssuer is one authorization server whose access tokens the FHIR
// API accepts (federation.issuers): a Keycloak realm, or any OAuth 2.0
// server that issues JWT access tokens (RFC 9068) or answers token
// introspection (RFC 7662). docs/federation.md explains every member.
type ExternalIssuer struct {
	// Issuer is the exact iss of its tokens (and the base of its discovery
	// document).
	Issuer string `yaml:"issuer"`
	// JWKSURI is where its signing keys are; empty: the jwks_uri of its
	// discovery document (OpenID Connect Discovery, else RFC 8414).
	JWKSURI string `yaml:"jwks_uri"`
	// Audience must be one of the token's aud values: usually this FHIR
	// base URL (Keycloak: an audience mapper adds it).
	Audience string `yaml:"audience"`
	// Types are the accepted JOSE typ header values (default at+jwt and
	// application/at+jwt, RFC 9068 §2.1; Keycloak sends JWT).
	Types []string `yaml:"types"`
	// Algorithms are the accepted JWS algorithms (default RS256, ES256,
	// PS256); asymmetric only.
	Algorithms []string `yaml:"algorithms"`
	// ScopeClaim holds the scopes: a space-separated string (scope, the
	// default) or an array of strings (scp).
	ScopeClaim string `yaml:"scope_claim"`
	// PatientClaim and FHIRUserClaim hold the SMART context (default
	// patient and fhirUser).
	PatientClaim  string `yaml:"patient_claim"`
	FHIRUserClaim string `yaml:"fhir_user_claim"`
	// ClientIDClaim names the client; empty: client_id, then azp.
	ClientIDClaim string `yaml:"client_id_claim"`
	// ScopeMap turns an external scope into one or more SMART scopes
	// (space-separated); scopes not in the map are taken as they are.
	ScopeMap map[string]string `yaml:"scope_map"`
	// MaxSkew is the clock difference tolerated on exp, nbf and iat
	// (default 60s, at most 5m).
	MaxSkew Duration `yaml:"max_skew"`
	// AllowPrivate lets smartgate reach this issuer (discovery, JWKS,
	// introspection) on loopback and private addresses and over http://;
	// an admin-configured internal Keycloak is the usual reason.
	AllowPrivate bool `yaml:"allow_private"`
	// Introspection, when set, checks the issuer's opaque (non-JWT)
	// access tokens at its RFC 7662 endpoint.
	Introspection *IssuerIntrospection `yaml:"introspection"`
}

// IssuerIntrospection is how smartgate asks an external issuer about an
// opaque token (RFC 7662 §2), authenticating as a client with HTTP Basic
// (client_secret_basic).
type IssuerIntrospection struct {
	// URL is the introspection endpoint; empty: the discovery document's
	// introspection_endpoint.
	URL          string `yaml:"url"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// CacheTTL bounds how long an answer is reused (default 60s, at most
	// 10m); never past the token's exp.
	CacheTTL Duration `yaml:"cache_ttl"`
}

// Defaults of federation.issuers members (docs/federation.md).
var (
	DefaultIssuerTypes      = []string{"at+jwt", "application/at+jwt"}
	DefaultIssuerAlgorithms = []string{"RS256", "ES256", "PS256"}
)

const (
	DefaultIssuerScopeClaim    = "scope"
	DefaultIssuerPatientClaim  = "patient"
	DefaultIssuerFHIRUserClaim = "fhirUser"
	DefaultIssuerMaxSkew       = time.Minute
	MaxIssuerMaxSkew           = 5 * time.Minute
	DefaultIntrospectionTTL    = time.Minute
	MaxIntrospectionTTL        = 10 * time.Minute
)

// IssuerAlgorithms are the JWS algorithms an external issuer may be
// allowed to sign with (RFC 7518 §3.1, RFC 8037): asymmetric only, so that
// a public key can never be used as an HMAC secret, and never "none".
var IssuerAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// WithDefaults returns e with every unset member at its default.
func (e ExternalIssuer) WithDefaults() ExternalIssuer {
	if len(e.Types) == 0 {
		e.Types = slices.Clone(DefaultIssuerTypes)
	}
	if len(e.Algorithms) == 0 {
		e.Algorithms = slices.Clone(DefaultIssuerAlgorithms)
	}
	if e.ScopeClaim == "" {
		e.ScopeClaim = DefaultIssuerScopeClaim
	}
	if e.PatientClaim == "" {
		e.PatientClaim = DefaultIssuerPatientClaim
	}
	if e.FHIRUserClaim == "" {
		e.FHIRUserClaim = DefaultIssuerFHIRUserClaim
	}
	if e.MaxSkew == 0 {
		e.MaxSkew = Duration(DefaultIssuerMaxSkew)
	}
	if e.Introspection != nil {
		in := *e.Introspection
		if in.CacheTTL == 0 {
			in.CacheTTL = Duration(DefaultIntrospectionTTL)
		}
		e.Introspection = &in
	}
	return e
}

// validateIssuers checks federation.issuers; add reports a problem. Keys
// are named federation.issuers[i].member, counting from 0.
func (c *Config) validateIssuers(add func(key, format string, args ...any)) {
	seen := map[string]int{}
	for i, raw := range c.Federation.Issuers {
		e := raw.WithDefaults()
		key := func(member string) string { return fmt.Sprintf("federation.issuers[%d].%s", i, member) }
		// http:// and private addresses: only where an admin said so (or in
		// dev mode, which runs everything on loopback).
		private := e.AllowPrivate || c.Dev
		checkURL := func(member, raw string, base bool) {
			u, err := url.Parse(raw)
			switch {
			case err != nil || !u.IsAbs() || u.Host == "":
				add(key(member), "%q is not an absolute URL; write it like https://kc.example.org/realms/ehr", raw)
				return
			case u.User != nil || u.Fragment != "":
				add(key(member), "%q must not have user info or a fragment", raw)
			case base && u.RawQuery != "":
				add(key(member), "%q must not have a query (RFC 8414 section 2)", raw)
			}
			switch u.Scheme {
			case "https":
			case "http":
				if !private {
					add(key(member), "%q uses http://; use https://, or set allow_private: true for an issuer on a private network (tokens and keys then travel unencrypted)", raw)
				}
			default:
				add(key(member), "%q must start with https://", raw)
			}
		}
		if e.Issuer == "" {
			add(key("issuer"), "required: the exact iss value of the issuer's tokens, e.g. https://kc.example.org/realms/ehr")
		} else {
			checkURL("issuer", e.Issuer, true)
			if j, dup := seen[e.Issuer]; dup {
				add(key("issuer"), "%q is also federation.issuers[%d]; list each issuer once", e.Issuer, j)
			}
			seen[e.Issuer] = i
			if c.Issuer != "" && strings.TrimRight(e.Issuer, "/") == c.Issuer {
				add(key("issuer"), "%q is smartgate's own issuer; its tokens are verified without configuration, remove this entry", e.Issuer)
			}
		}
		if e.JWKSURI != "" {
			checkURL("jwks_uri", e.JWKSURI, false)
		}
		if strings.TrimSpace(e.Audience) == "" {
			add(key("audience"), "required: the aud value the issuer puts in tokens meant for this FHIR API, usually the FHIR base URL (%s/fhir); without it a token issued for any other service would be accepted", orExample(c.Issuer))
		}
		for _, t := range e.Types {
			if strings.TrimSpace(t) == "" {
				add(key("types"), "has an empty entry; list typ values such as at+jwt, application/at+jwt or JWT")
			}
			if n := strings.ToLower(strings.TrimPrefix(strings.ToLower(t), "application/")); strings.Contains(n, "id_token") || strings.Contains(n, "id-token") {
				add(key("types"), "%q is the type of an id_token, which is never accepted as an access token; remove it", t)
			}
		}
		for _, a := range e.Algorithms {
			switch {
			case slices.Contains(IssuerAlgorithms, a):
			case strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS"):
				add(key("algorithms"), "%q is never accepted: an unsigned or HMAC-signed token cannot be verified with the issuer's public keys; use %s", a, strings.Join(IssuerAlgorithms, ", "))
			default:
				add(key("algorithms"), "%q is not a JWS algorithm smartgate verifies; use %s (case matters)", a, strings.Join(IssuerAlgorithms, ", "))
			}
		}
		for member, v := range map[string]string{"scope_claim": e.ScopeClaim, "patient_claim": e.PatientClaim, "fhir_user_claim": e.FHIRUserClaim, "client_id_claim": e.ClientIDClaim} {
			if v != strings.TrimSpace(v) || strings.ContainsAny(v, " \t\n") {
				add(key(member), "%q is not a claim name (no spaces)", v)
			}
		}
		for from, to := range e.ScopeMap {
			if strings.TrimSpace(from) == "" || strings.Contains(from, " ") {
				add(key("scope_map"), "%q is not one external scope (no spaces, not empty)", from)
			}
			scopes, dropped := scope.ParseList(to)
			switch {
			case len(dropped) > 0:
				add(key("scope_map"), "%q maps to %q: %s", from, to, scope.Describe(dropped))
			case len(scopes) == 0:
				add(key("scope_map"), "%q maps to nothing; give one or more SMART scopes such as patient/*.rs", from)
			}
			for _, s := range scopes {
				if s.Kind == scope.KindAdmin {
					add(key("scope_map"), "%q maps to smartgate:admin, which external tokens never carry", from)
				}
			}
		}
		if d := e.MaxSkew.D(); d < 0 || d > MaxIssuerMaxSkew {
			add(key("max_skew"), "must be between 0s and %s, not %s", MaxIssuerMaxSkew, d)
		} else if d > 0 && d < time.Second {
			add(key("max_skew"), "%s is less than a second; write it with a unit, like 60s", d)
		}
		if in := e.Introspection; in != nil {
			if in.URL != "" {
				checkURL("introspection.url", in.URL, false)
			}
			if in.ClientID == "" || in.ClientSecret == "" {
				add(key("introspection"), "needs client_id and client_secret: the credentials smartgate authenticates with at the introspection endpoint (RFC 7662 section 2.1)")
			}
			if d := in.CacheTTL.D(); d < time.Second || d > MaxIntrospectionTTL {
				add(key("introspection.cache_ttl"), "must be between 1s and %s, not %s", MaxIntrospectionTTL, d)
			}
		}
	}
}

func orExample(issuer string) string {
	if issuer == "" {
		return "https://ehr.example.org"
	}
	return issuer
}
