// Package discovery generates the metadata documents clients discover
// smartgate with, from what is really enabled: OpenID Connect Discovery 1.0,
// OAuth 2.0 Authorization Server Metadata (RFC 8414) and SMART App Launch
// 2.2 .well-known/smart-configuration. A document is served only when every
// field its specification requires is present; otherwise it is 404 and the
// error lists what is missing (DESIGN.md principle 1: advertise only what
// works).
package discovery

import (
	"slices"
	"sort"
	"strings"
)

// Features is what the running server has enabled. Later features switch
// fields on by filling them in; an empty field is not advertised.
type Features struct {
	Issuer   string
	FHIRBase string // e.g. issuer + "/fhir"; empty while there is no FHIR API

	JWKS          bool
	Authorize     bool
	Token         bool
	Registration  bool
	Introspection bool
	Revocation    bool
	UserInfo      bool
	PAR           bool
	EndSession    bool
	Management    bool // /account/apps, the SMART management_endpoint

	ResponseTypes            []string
	GrantTypes               []string
	TokenAuthMethods         []string
	TokenAuthSigningAlgs     []string
	CodeChallengeMethods     []string
	Scopes                   []string
	Claims                   []string
	IDTokenSigningAlgs       []string
	SubjectTypes             []string
	SMARTCapabilities        []string
	AuthorizationResponseIss bool // RFC 9207
}

// Document is one discovery document and the fields its specification
// requires.
type Document struct {
	Name     string
	Path     string
	Spec     string
	Required []string
	// MayBeEmpty lists required fields that must be present but may be an
	// empty list (RFC 8414's response_types_supported before an
	// authorization endpoint exists).
	MayBeEmpty []string
	// RequiredIf adds fields required only with some features.
	RequiredIf func(f Features) []string
	build      func(f Features) map[string]any
}

// Documents lists every document smartgate can serve.
var Documents = []Document{
	{
		Name: "openid-configuration", Path: "/.well-known/openid-configuration",
		Spec: "OpenID Connect Discovery 1.0 §3",
		// REQUIRED in §3; token_endpoint is required unless only the implicit flow is used, which smartgate never offers.
		Required: []string{"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported"},
		build:    oauthFields,
	},
	{
		Name: "oauth-authorization-server", Path: "/.well-known/oauth-authorization-server",
		Spec: "RFC 8414 §2",
		// issuer and response_types_supported are REQUIRED; token_endpoint
		// unless only the implicit grant is supported (never here);
		// authorization_endpoint when a grant type uses it.
		Required:   []string{"issuer", "token_endpoint", "response_types_supported"},
		MayBeEmpty: []string{"response_types_supported"},
		RequiredIf: func(f Features) []string {
			for _, g := range f.GrantTypes {
				if g == "authorization_code" {
					return []string{"authorization_endpoint"}
				}
			}
			return nil
		},
		build: func(f Features) map[string]any {
			m := oauthFields(f)
			if _, ok := m["response_types_supported"]; !ok && f.Token {
				m["response_types_supported"] = []string{}
			}
			return m
		},
	},
	{
		Name: "smart-configuration", Path: "/fhir/.well-known/smart-configuration",
		Spec: "SMART App Launch 2.2 §Metadata (conformance)",
		// REQUIRED: issuer and jwks_uri (with sso-openid-connect), authorization_endpoint (with launch-ehr or launch-standalone), grant_types_supported, token_endpoint, capabilities, code_challenge_methods_supported.
		Required: []string{"issuer", "jwks_uri", "authorization_endpoint", "grant_types_supported", "token_endpoint", "capabilities", "code_challenge_methods_supported"},
		build:    smartFields,
	},
}

// Render builds document d and returns the required fields it lacks. The
// document may be served only when missing is empty.
func (d Document) Render(f Features) (doc map[string]any, missing []string) {
	doc = d.build(f)
	required := d.Required
	if d.RequiredIf != nil {
		required = append(append([]string(nil), required...), d.RequiredIf(f)...)
	}
	for _, k := range required {
		v, present := doc[k]
		if !present || (empty(v) && !slices.Contains(d.MayBeEmpty, k)) {
			missing = append(missing, k)
		}
	}
	return doc, missing
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []string:
		return len(x) == 0
	case bool:
		return !x
	}
	return false
}

func endpoint(f Features, on bool, path string) string {
	if !on || f.Issuer == "" {
		return ""
	}
	return strings.TrimRight(f.Issuer, "/") + path
}

func set(m map[string]any, k string, v any) {
	if !empty(v) {
		m[k] = v
	}
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// oauthFields fills the fields shared by OpenID Connect Discovery and
// RFC 8414.
func oauthFields(f Features) map[string]any {
	m := map[string]any{}
	set(m, "issuer", f.Issuer)
	set(m, "authorization_endpoint", endpoint(f, f.Authorize, "/oauth2/authorize"))
	set(m, "token_endpoint", endpoint(f, f.Token, "/oauth2/token"))
	set(m, "jwks_uri", endpoint(f, f.JWKS, "/oauth2/jwks"))
	set(m, "registration_endpoint", endpoint(f, f.Registration, "/oauth2/register"))
	set(m, "introspection_endpoint", endpoint(f, f.Introspection, "/oauth2/introspect"))
	set(m, "revocation_endpoint", endpoint(f, f.Revocation, "/oauth2/revoke"))
	set(m, "userinfo_endpoint", endpoint(f, f.UserInfo, "/oauth2/userinfo"))
	set(m, "pushed_authorization_request_endpoint", endpoint(f, f.PAR, "/oauth2/par"))
	set(m, "end_session_endpoint", endpoint(f, f.EndSession, "/oauth2/logout"))
	set(m, "response_types_supported", sorted(f.ResponseTypes))
	set(m, "response_modes_supported", responseModes(f))
	set(m, "grant_types_supported", sorted(f.GrantTypes))
	set(m, "token_endpoint_auth_methods_supported", sorted(f.TokenAuthMethods))
	set(m, "token_endpoint_auth_signing_alg_values_supported", sorted(f.TokenAuthSigningAlgs))
	if f.Introspection {
		set(m, "introspection_endpoint_auth_methods_supported", sorted(f.TokenAuthMethods))
		set(m, "introspection_endpoint_auth_signing_alg_values_supported", sorted(f.TokenAuthSigningAlgs))
	}
	if f.Revocation {
		set(m, "revocation_endpoint_auth_methods_supported", sorted(f.TokenAuthMethods))
		set(m, "revocation_endpoint_auth_signing_alg_values_supported", sorted(f.TokenAuthSigningAlgs))
	}
	set(m, "code_challenge_methods_supported", sorted(f.CodeChallengeMethods))
	set(m, "scopes_supported", sorted(f.Scopes))
	set(m, "claims_supported", sorted(f.Claims))
	set(m, "subject_types_supported", sorted(f.SubjectTypes))
	set(m, "id_token_signing_alg_values_supported", sorted(f.IDTokenSigningAlgs))
	set(m, "authorization_response_iss_parameter_supported", f.AuthorizationResponseIss)
	if f.Authorize {
		// OpenID Connect Discovery §3 defaults request_uri_parameter_supported
		// to true: say plainly that request objects (by value or by
		// reference) are not supported; pushed requests (PAR) are.
		m["request_parameter_supported"] = false
		m["request_uri_parameter_supported"] = false
		m["claims_parameter_supported"] = false
	}
	return m
}

func responseModes(f Features) []string {
	if !f.Authorize {
		return nil
	}
	return []string{"query"}
}

// smartFields fills the SMART configuration document.
func smartFields(f Features) map[string]any {
	m := oauthFields(f)
	// SMART's document carries no OpenID-only fields beyond these.
	for _, k := range []string{"request_parameter_supported", "request_uri_parameter_supported", "claims_parameter_supported", "subject_types_supported", "id_token_signing_alg_values_supported", "claims_supported", "end_session_endpoint", "userinfo_endpoint", "pushed_authorization_request_endpoint",
		"introspection_endpoint_auth_methods_supported", "introspection_endpoint_auth_signing_alg_values_supported", "revocation_endpoint_auth_methods_supported", "revocation_endpoint_auth_signing_alg_values_supported"} {
		delete(m, k)
	}
	set(m, "capabilities", sorted(f.SMARTCapabilities))
	set(m, "management_endpoint", endpoint(f, f.Management, "/account/apps"))
	return m
}
