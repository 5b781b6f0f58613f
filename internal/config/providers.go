package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Provider is one upstream OpenID Connect provider users may sign in
// through (federation.providers): Keycloak, or any provider that serves
// OpenID Connect Discovery 1.0. smartgate is a confidential client of it
// (authorization code flow with PKCE, OpenID Connect Core §3.1) and
// authenticates with client_secret (client_secret_basic) or a private key
// (private_key_jwt, RFC 7523 / OpenID Connect Core §9). docs/federation.md
// explains every member.
type Provider struct {
	// ID names the provider in URLs (/login/upstream/{id}), in user links
	// (smartgate user link --provider ID) and in the idp hint; it must not
	// change once users are linked.
	ID string `yaml:"id"`
	// Name is the label of the login page's button (default: the id).
	Name string `yaml:"name"`
	// Issuer is the provider's issuer URL; discovery reads
	// <issuer>/.well-known/openid-configuration.
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// PrivateKeyFile is a PEM private key (RSA of 2048 bits or more, EC
	// P-256 or P-384, or Ed25519) that signs the client assertion instead
	// of a secret; PrivateKeyID is the "kid" its header carries (default:
	// the RFC 7638 thumbprint of the public key).
	PrivateKeyFile string `yaml:"private_key_file"`
	PrivateKeyID   string `yaml:"private_key_id"`
	// Scopes asked of the provider (default openid email profile).
	Scopes       []string       `yaml:"scopes"`
	Claims       ProviderClaims `yaml:"claims"`
	MatchClaim   string         `yaml:"match_claim"`
	Provisioning Provisioning   `yaml:"provisioning"`
	// TrustRoles lets the role claim or the groups claim set the user's
	// role (admin included, which still needs local two-factor login).
	// Off: upstream roles are ignored.
	TrustRoles bool `yaml:"trust_roles"`
	// AllowPrivate lets smartgate reach the provider on loopback, private
	// or link-local addresses (an internal Keycloak), and over http://.
	AllowPrivate bool `yaml:"allow_private"`
}

// ProviderClaims names the claims of the id_token (or, when missing there,
// of the UserInfo response) smartgate reads. A name with dots that is not
// itself a claim is a path into nested objects (Keycloak's
// realm_access.roles).
type ProviderClaims struct {
	Email         string `yaml:"email"`          // default "email"
	EmailVerified string `yaml:"email_verified"` // default "email_verified"
	FHIRUser      string `yaml:"fhir_user"`      // default "fhirUser"
	// Role holds smartgate role names (a string or a list); a value listed
	// in GroupRoles is mapped first.
	Role string `yaml:"role"`
	// Groups holds group names (a list), mapped to roles by GroupRoles.
	Groups     string            `yaml:"groups"`
	GroupRoles map[string]string `yaml:"group_roles"`
}

// Provisioning creates a local user at the first login of an upstream
// identity that is neither linked nor matched.
type Provisioning struct {
	Enabled bool `yaml:"enabled"`
	// EmailDomains lists the domains whose verified email addresses may be
	// provisioned (exact domains, lower case; required when enabled).
	EmailDomains []string `yaml:"email_domains"`
	// Role is the new user's role when no trusted role claim gives one
	// (default patient).
	Role string `yaml:"role"`
}

// Match claims.
const (
	MatchNone  = "none"
	MatchEmail = "email"
)

// roleNames are the user roles (identity.Roles; config cannot import it).
var roleNames = []string{"practitioner", "patient", "related-person", "admin"}

var (
	providerIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	scopeTokenRE = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`) // RFC 6749 §3.3 scope-token
	domainRE     = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// DisplayName is the button label.
func (p Provider) DisplayName() string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// ScopeList is the scopes asked of the provider.
func (p Provider) ScopeList() []string {
	if len(p.Scopes) == 0 {
		return []string{"openid", "email", "profile"}
	}
	return p.Scopes
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// EmailClaim, EmailVerifiedClaim and FHIRUserClaim are the claim names
// with their defaults applied.
func (p Provider) EmailClaim() string         { return or(p.Claims.Email, "email") }
func (p Provider) EmailVerifiedClaim() string { return or(p.Claims.EmailVerified, "email_verified") }
func (p Provider) FHIRUserClaim() string      { return or(p.Claims.FHIRUser, "fhirUser") }

// Match is the match claim with its default (none).
func (p Provider) Match() string { return or(p.MatchClaim, MatchNone) }

// ProvisionRole is the role of a provisioned user without a trusted role
// claim.
func (p Provider) ProvisionRole() string { return or(p.Provisioning.Role, "patient") }

// ProviderByID returns the configured provider id.
func (c *Config) ProviderByID(id string) (Provider, bool) {
	for _, p := range c.Federation.Providers {
		if p.ID == id {
			return p, true
		}
	}
	return Provider{}, false
}

// LoadPrivateKey reads a PEM private key file (PKCS #8, PKCS #1 or SEC 1)
// for private_key_jwt and checks it is a kind that signs well: RSA of at
// least 2048 bits, EC P-256 or P-384, or Ed25519.
func LoadPrivateKey(path string) (crypto.Signer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var block *pem.Block
	for rest := raw; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key block in the file")
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			break
		}
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not an unencrypted private key (write it as PKCS #8: openssl pkcs8 -topk8 -nocrypt)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("the %s block does not parse: %v", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("the RSA key has %d bits; use 2048 or more", k.N.BitLen())
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("the EC key's curve %s is not P-256 or P-384", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("a %T key cannot sign client assertions; use RSA, EC P-256/P-384 or Ed25519", key)
}

// validateProviders checks federation.providers; add reports a problem.
// Keys are named federation.providers[N].member, and each message names
// the provider's id.
func (c *Config) validateProviders(add func(key, format string, args ...any)) {
	seen := map[string]int{}
	for i, p := range c.Federation.Providers {
		key := func(member string) string { return fmt.Sprintf("federation.providers[%d].%s", i, member) }
		who := fmt.Sprintf("provider %q", p.ID)
		switch {
		case p.ID == "":
			add(key("id"), "missing: give the provider a short id like keycloak (lower-case letters, digits, . _ -); it appears in URLs and in user links")
			who = fmt.Sprintf("provider #%d", i)
		case !providerIDRE.MatchString(p.ID):
			add(key("id"), "%q is not a provider id: use 1 to 64 lower-case letters, digits, . _ - (starting with a letter or digit)", p.ID)
		default:
			if j, dup := seen[p.ID]; dup {
				add(key("id"), "%q is also the id of federation.providers[%d]; every provider needs its own id", p.ID, j)
			}
			seen[p.ID] = i
		}

		c.validateProviderIssuer(p, key("issuer"), who, add)

		if strings.TrimSpace(p.ClientID) == "" {
			add(key("client_id"), "%s: missing: the client id smartgate was registered with at the provider (in Keycloak: Clients > the client's Client ID)", who)
		}
		switch {
		case p.ClientSecret != "" && p.PrivateKeyFile != "":
			add(key("client_secret"), "%s: both client_secret and private_key_file are set; keep one (client_secret for client_secret_basic, private_key_file for private_key_jwt)", who)
		case p.ClientSecret == "" && p.PrivateKeyFile == "":
			add(key("client_secret"), "%s: missing: smartgate is a confidential client; set client_secret (the client's secret at the provider) or private_key_file (a PEM key whose public half the provider knows, for private_key_jwt)", who)
		case p.PrivateKeyFile != "":
			if _, err := LoadPrivateKey(p.PrivateKeyFile); err != nil {
				add(key("private_key_file"), "%s: %s cannot be used: %v", who, p.PrivateKeyFile, err)
			}
		}
		if p.PrivateKeyID != "" && p.PrivateKeyFile == "" {
			add(key("private_key_id"), "%s: private_key_id only applies with private_key_file", who)
		}

		if len(p.Scopes) > 0 && !slices.Contains(p.Scopes, "openid") {
			add(key("scopes"), "%s: must include openid (this is an OpenID Connect login), e.g. [openid, email, profile]", who)
		}
		for _, s := range p.Scopes {
			if !scopeTokenRE.MatchString(s) {
				add(key("scopes"), "%s: %q is not a scope (no spaces, quotes or backslashes; list each scope on its own)", who, s)
			}
		}

		for member, v := range map[string]string{"claims.email": p.Claims.Email, "claims.email_verified": p.Claims.EmailVerified,
			"claims.fhir_user": p.Claims.FHIRUser, "claims.role": p.Claims.Role, "claims.groups": p.Claims.Groups} {
			if v != "" && (strings.TrimSpace(v) != v || strings.Contains(v, "..") || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".")) {
				add(key(member), "%s: %q is not a claim name (no surrounding spaces; dots only between the parts of a nested path like realm_access.roles)", who, v)
			}
		}
		groups := make([]string, 0, len(p.Claims.GroupRoles))
		for g := range p.Claims.GroupRoles {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		for _, g := range groups {
			if r := p.Claims.GroupRoles[g]; !slices.Contains(roleNames, r) {
				add(key("claims.group_roles"), "%s: group %q maps to %q, which is not a role; use one of %s", who, g, r, strings.Join(roleNames, ", "))
			}
		}
		if len(p.Claims.GroupRoles) > 0 && p.Claims.Groups == "" && p.Claims.Role == "" {
			add(key("claims.group_roles"), "%s: group_roles needs claims.groups (or claims.role) to name the claim that holds the groups, e.g. groups", who)
		}
		if p.TrustRoles && p.Claims.Groups == "" && p.Claims.Role == "" {
			add(key("trust_roles"), "%s: trust_roles is on but no claim gives a role; set claims.role (role names) or claims.groups with claims.group_roles", who)
		}

		switch p.MatchClaim {
		case "", MatchNone, MatchEmail:
		default:
			add(key("match_claim"), "%s: %q is not a match rule; use email (a verified email equal to a local username links the user at first login) or none (only links an administrator made)", who, p.MatchClaim)
		}

		pv := p.Provisioning
		if pv.Role != "" && !slices.Contains(roleNames, pv.Role) {
			add(key("provisioning.role"), "%s: %q is not a role; use one of practitioner, patient, related-person", who, pv.Role)
		} else if pv.Role == "admin" {
			add(key("provisioning.role"), "%s: provisioning never makes administrators by default; give admin rights with trust_roles and a group mapped to admin, or with smartgate user create", who)
		}
		for _, d := range pv.EmailDomains {
			if !domainRE.MatchString(d) {
				add(key("provisioning.email_domains"), "%s: %q is not a domain; write it in lower case like example.org (each domain exactly; subdomains are listed on their own)", who, d)
			}
		}
		if pv.Enabled && len(pv.EmailDomains) == 0 {
			add(key("provisioning.email_domains"), "%s: provisioning is enabled but no email domain is listed; list the domains whose users may get an account, e.g. [example.org]", who)
		}
	}
}

func (c *Config) validateProviderIssuer(p Provider, key, who string, add func(key, format string, args ...any)) {
	if p.Issuer == "" {
		add(key, "%s: missing: the provider's issuer URL, e.g. https://keycloak.example.org/realms/ehr (smartgate reads <issuer>/.well-known/openid-configuration)", who)
		return
	}
	u, err := url.Parse(p.Issuer)
	if err != nil || !u.IsAbs() || u.Host == "" {
		add(key, "%s: %q is not an absolute URL; write it like https://keycloak.example.org/realms/ehr", who, p.Issuer)
		return
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		add(key, "%s: %q must not have a query, fragment or user info (OpenID Connect Discovery §2)", who, p.Issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowPrivate {
			add(key, "%s: %q uses http://; the client secret and the codes would cross the network unencrypted. Use https://, or, for a provider on this machine or a private network (a test Keycloak), set allow_private: true", who, p.Issuer)
		}
	default:
		add(key, "%s: %q must start with https://", who, p.Issuer)
	}
}
