package extauth

import (
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strings"
	"time"

	"smartgate/internal/scope"
	"smartgate/internal/token"
)

var errNotObject = errors.New("extauth: not a JSON object with unique members")

// source says where claims come from: a verified JWT (with its normalised
// typ header) or an introspection response (RFC 7662 §2.2).
type source struct {
	typ          string
	introspected bool
}

// claims checks the claims of a verified JWT or of an active introspection
// response and turns them into smartgate's claims. exp is the token's
// expiry (zero when an introspection response gives none).
//
// The id_token rule: a token is refused as an id_token when its typ header
// names one (id_token+jwt), when its typ claim is "ID" (Keycloak marks its
// id_tokens so), when it carries at_hash, c_hash or s_hash (only id_tokens
// do, OpenID Connect Core §3.1.3.6, §3.3.2.11, FAPI), or when it carries a
// nonce while neither its typ header is at+jwt nor its typ claim "Bearer"
// (Keycloak before version 24 copied the sign-in's nonce into access
// tokens, which say typ "Bearer"). An id_token whose aud is the app's
// client id also fails the audience check; the rule makes the error say
// what the token is, and holds where an audience mapper also writes the
// FHIR base into id_tokens.
func (is *issuer) claims(m map[string]json.RawMessage, now time.Time, src source, fhirBase string) (c *token.Claims, exp time.Time, err error) {
	iss := is.cfg.Issuer
	if v, present, ok := str(m, "iss"); present && (!ok || v != iss) {
		return nil, exp, token.Refuse(token.WrongIssuer, "the introspection endpoint of %s describes a token of issuer %s", iss, clip(v))
	}
	ptyp, hasPTyp, _ := str(m, "typ")
	switch {
	case strings.EqualFold(ptyp, "ID"):
		return nil, exp, token.Refuse(token.IDToken, "its typ claim is \"ID\": it is a Keycloak id_token, which says who signed in to an app and is never an access token; send the access_token from %s's token response", iss)
	case hasPTyp && !strings.EqualFold(ptyp, "Bearer"):
		return nil, exp, token.Refuse(token.WrongType, "its typ claim is %s, not \"Bearer\": it is not an access token of %s (a refresh or logout token cannot be used as one)", clip(ptyp), iss)
	}
	for _, h := range []string{"at_hash", "c_hash", "s_hash"} {
		if _, ok := m[h]; ok {
			return nil, exp, token.Refuse(token.IDToken, "it carries %s, which only id_tokens carry (OpenID Connect Core); an id_token says who signed in to an app and is never an access token; send the access_token from %s's token response", h, iss)
		}
	}
	if _, ok := m["nonce"]; ok && src.typ != "at+jwt" && !strings.EqualFold(ptyp, "Bearer") {
		return nil, exp, token.Refuse(token.IDToken, "it carries a nonce and is not typed as an access token (typ at+jwt, or a typ claim \"Bearer\"), so it is taken for an id_token, which is never an access token; send the access_token from %s's token response", iss)
	}
	if src.introspected {
		if tt, present, _ := str(m, "token_type"); present && !strings.EqualFold(tt, "Bearer") && !strings.EqualFold(tt, "access_token") {
			if strings.EqualFold(tt, "DPoP") {
				return nil, exp, token.Refuse(token.SenderConstrained, "%s says it is a DPoP-bound token; this API checks no DPoP proofs, so it accepts only bearer tokens from %s", iss, iss)
			}
			return nil, exp, token.Refuse(token.WrongType, "%s says its token_type is %s, not an access token (a refresh token cannot be used as one)", iss, clip(tt))
		}
	}
	if _, ok := m["cnf"]; ok {
		return nil, exp, token.Refuse(token.SenderConstrained, "it is bound to a key (cnf claim, DPoP or mutual TLS) and this API checks no such proof, so it accepts only bearer tokens from %s; ask the issuer for a bearer token", iss)
	}

	auds, err := audiences(m)
	if err != nil {
		return nil, exp, token.Refuse(token.Malformed, "its aud claim is neither a string nor an array of strings")
	}
	if !containsAudience(auds, is.cfg.Audience) {
		have := "no aud claim"
		if len(auds) > 0 {
			have = "aud " + clip(strings.Join(auds, " "))
		}
		return nil, exp, token.Refuse(token.WrongAudience, "it has %s, but this API accepts tokens of %s only for the audience %q; have the issuer add that audience (Keycloak: an audience mapper)", have, iss, is.cfg.Audience)
	}

	skew := int64(is.skew / time.Second)
	e, hasExp, ok := num(m, "exp")
	switch {
	case !ok:
		return nil, exp, token.Refuse(token.Malformed, "its exp claim is not a number")
	case !hasExp && !src.introspected:
		return nil, exp, token.Refuse(token.Malformed, "it has no exp claim (RFC 9068 section 2.2); this API accepts only tokens that expire")
	case hasExp && now.Unix() >= e+skew:
		return nil, exp, expired(iss, e, skew)
	case hasExp:
		exp = time.Unix(e, 0)
	}
	nbf, hasNbf, ok1 := num(m, "nbf")
	iat, hasIat, ok2 := num(m, "iat")
	switch {
	case !ok1 || !ok2:
		return nil, exp, token.Refuse(token.Malformed, "its nbf or iat claim is not a number")
	case hasNbf && nbf > now.Unix()+skew:
		return nil, exp, token.Refuse(token.NotYetValid, "it is not valid before %s (nbf), more than %ds from now; check the clocks of this server and of %s", time.Unix(nbf, 0).UTC().Format(time.RFC3339), skew, iss)
	case hasIat && iat > now.Unix()+skew:
		return nil, exp, token.Refuse(token.NotYetValid, "it was issued at %s (iat), more than %ds in the future; check the clocks of this server and of %s", time.Unix(iat, 0).UTC().Format(time.RFC3339), skew, iss)
	}

	client, err := is.clientID(m)
	if err != nil {
		return nil, exp, err
	}
	sub, _, _ := str(m, "sub")
	jti, _, _ := str(m, "jti")

	kept, err := is.scopes(m)
	if err != nil {
		return nil, exp, err
	}
	patient, present, ok := str(m, is.cfg.PatientClaim)
	if present && !ok {
		return nil, exp, token.Refuse(token.Malformed, "its %s claim is not a string", is.cfg.PatientClaim)
	}
	if patient != "" {
		id, ok := patientID(patient, fhirBase)
		if !ok {
			return nil, exp, token.Refuse(token.Malformed, "its %s claim %s is not a Patient id, Patient/id or a Patient URL of this FHIR base", is.cfg.PatientClaim, clip(patient))
		}
		patient = id
	}
	if patient == "" {
		var ps []string
		for _, s := range kept {
			if s.Kind == scope.KindResource && s.Context == scope.ContextPatient {
				ps = append(ps, s.Raw)
			}
		}
		if len(ps) > 0 {
			return nil, exp, token.Refuse(token.MissingPatient, "it carries patient/ scopes (%s) but no %s claim naming the patient; have %s put the patient's id in that claim (Keycloak: a user attribute or hardcoded-claim mapper), set patient_claim in federation.issuers, or use user/ or system/ scopes",
				clipList(ps), is.cfg.PatientClaim, iss)
		}
	}
	fhirUser, present, ok := str(m, is.cfg.FHIRUserClaim)
	if present && !ok {
		return nil, exp, token.Refuse(token.Malformed, "its %s claim is not a string", is.cfg.FHIRUserClaim)
	}

	c = &token.Claims{
		Issuer: iss, Audience: is.cfg.Audience, Scope: scope.Join(kept),
		ClientID: qualify(client, iss), JTI: jti, Patient: patient, FHIRUser: fhirUser,
		IssuedAt: iat, NotBefore: nbf,
	}
	if sub != "" {
		c.Subject = qualify(sub, iss)
	}
	if hasExp {
		c.Expiry = e
	}
	return c, exp, nil
}

// qualify names an external client or subject with its issuer, so that
// audit events say where it comes from and it never equals a local id.
func qualify(id, iss string) string { return id + "@" + iss }

// clientID is the token's client: client_id_claim, or client_id (RFC 9068
// §2.2) and then azp (Keycloak before it wrote client_id).
func (is *issuer) clientID(m map[string]json.RawMessage) (string, error) {
	names := []string{"client_id", "azp"}
	if is.cfg.ClientIDClaim != "" {
		names = []string{is.cfg.ClientIDClaim}
	}
	for _, n := range names {
		v, present, ok := str(m, n)
		if !present {
			continue
		}
		if !ok || v == "" {
			return "", token.Refuse(token.Malformed, "its %s claim is not a client id", n)
		}
		return v, nil
	}
	return "", token.Refuse(token.Malformed, "it names no client (no %s claim, RFC 9068 section 2.2); set client_id_claim in federation.issuers to the claim that does", strings.Join(names, " or "))
}

// scopes reads the scope claim (a space-separated string, or an array of
// strings as Keycloak's and Azure's scp), maps each through scope_map, and
// parses the result as SMART scopes. Unknown ones are dropped; they are
// named only when no resource scope is left (NoUsableScope).
func (is *issuer) scopes(m map[string]json.RawMessage) ([]scope.Scope, error) {
	raw, present := m[is.cfg.ScopeClaim]
	var ext []string
	if present {
		var s string
		var list []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			ext = strings.Fields(s)
		case json.Unmarshal(raw, &list) == nil:
			for _, x := range list {
				ext = append(ext, strings.Fields(x)...)
			}
		default:
			return nil, token.Refuse(token.Malformed, "its %s claim is neither a string nor an array of strings", is.cfg.ScopeClaim)
		}
	}
	var mapped []string
	for _, s := range ext {
		if to, ok := is.cfg.ScopeMap[s]; ok {
			mapped = append(mapped, strings.Fields(to)...)
			continue
		}
		mapped = append(mapped, s)
	}
	parsed, dropped := scope.ParseList(strings.Join(mapped, " "))
	kept := parsed[:0:0]
	resources := 0
	for _, s := range parsed {
		if s.Kind == scope.KindAdmin {
			dropped = append(dropped, scope.Dropped{Scope: s.Raw, Reason: scope.ReasonNotAllowed, Detail: "external tokens never reach the admin API"})
			continue
		}
		if s.Kind == scope.KindResource {
			resources++
		}
		kept = append(kept, s)
	}
	if resources == 0 {
		have := "no " + is.cfg.ScopeClaim + " claim"
		if present {
			have = is.cfg.ScopeClaim + " " + clip(strings.Join(ext, " "))
		}
		why := ""
		if len(dropped) > 0 {
			why = " " + scope.Describe(dropped)
		}
		return nil, token.Refuse(token.NoUsableScope, "it has %s, which holds no SMART resource scope (patient/, user/ or system/) once federation.issuers scope_map is applied; have %s grant one, or map its scopes with scope_map.%s", have, is.cfg.Issuer, why)
	}
	return kept, nil
}

// fhirID is the FHIR id datatype (R4 §2.24.0.1).
var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// patientID reads a patient claim: an id, Patient/id, or the Patient's
// URL on this FHIR base.
func patientID(v, base string) (string, bool) {
	if base != "" {
		v = strings.TrimPrefix(v, base+"/")
	}
	v = strings.TrimPrefix(v, "Patient/")
	return v, fhirID.MatchString(v)
}

// str reads a string claim: present says the claim exists, ok that it is
// a string.
func str(m map[string]json.RawMessage, name string) (v string, present, ok bool) {
	raw, present := m[name]
	if !present || string(raw) == "null" {
		return "", false, true // null is no value (RFC 7519 leaves it open)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", true, false
	}
	return v, true, true
}

// num reads a NumericDate (RFC 7519 §2: seconds, possibly fractional),
// truncated to whole seconds; ok is false for anything else.
func num(m map[string]json.RawMessage, name string) (v int64, present, ok bool) {
	raw, present := m[name]
	if !present || string(raw) == "null" {
		return 0, false, true
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || math.IsNaN(f) || f < 0 || f > 1e12 {
		return 0, true, false
	}
	return int64(f), true, true
}

// audiences reads aud: a string or an array of strings (RFC 7519 §4.1.3).
func audiences(m map[string]json.RawMessage) ([]string, error) {
	raw, ok := m["aud"]
	if !ok {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// containsAudience compares exactly, a trailing slash tolerated (as
// smartgate does for the aud of an authorization request).
func containsAudience(auds []string, want string) bool {
	w := strings.TrimRight(want, "/")
	for _, a := range auds {
		if a == want || strings.TrimRight(a, "/") == w {
			return true
		}
	}
	return false
}

func clipList(ss []string) string {
	const max = 5
	if len(ss) > max {
		return strings.Join(ss[:max], " ") + " ..."
	}
	return strings.Join(ss, " ")
}
