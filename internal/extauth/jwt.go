package extauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/token"
)

// peeked is what is read from a JWT before its signature is checked: only
// enough to pick the issuer and refuse early what no key could make good.
type peeked struct {
	alg, kid, typ string
	hasTyp        bool
	iss           string
	hasIss        bool
	// idMark names an unverified sign of an id_token (a typ claim "ID", a
	// nonce, at_hash, c_hash or s_hash), for the message when the typ
	// header already refuses the token.
	idMark string
}

// peek reads the unverified header and iss of a JWS Compact Serialization
// (RFC 7515 §7.1). isJWT is false for anything not shaped like one (three
// base64url parts, the first a JSON object with an alg): an opaque token.
func peek(raw string) (p peeked, isJWT bool, err error) {
	h, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return p, false, nil
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return p, false, nil
	}
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return p, false, nil
	}
	var hdr map[string]json.RawMessage
	if json.Unmarshal(hb, &hdr) != nil || hdr == nil {
		return p, false, nil
	}
	if _, ok := hdr["alg"]; !ok {
		return p, false, nil
	}
	malformed := func(what string) (peeked, bool, error) {
		return p, true, token.Refuse(token.Malformed, "the token looks like a JWT but %s; send the access_token value from the token response unchanged", what)
	}
	if json.Unmarshal(hdr["alg"], &p.alg) != nil {
		return malformed("its alg header is not a string")
	}
	if v, ok := hdr["kid"]; ok && json.Unmarshal(v, &p.kid) != nil {
		return malformed("its kid header is not a string")
	}
	if v, ok := hdr["typ"]; ok {
		p.hasTyp = true
		if json.Unmarshal(v, &p.typ) != nil {
			return malformed("its typ header is not a string")
		}
	}
	pb, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return malformed("its payload is not base64url")
	}
	var claims struct {
		Iss    json.RawMessage `json:"iss"`
		Typ    any             `json:"typ"`
		Nonce  json.RawMessage `json:"nonce"`
		AtHash json.RawMessage `json:"at_hash"`
		CHash  json.RawMessage `json:"c_hash"`
		SHash  json.RawMessage `json:"s_hash"`
	}
	if json.Unmarshal(pb, &claims) != nil {
		return malformed("its payload is not a JSON object")
	}
	switch {
	case claims.Typ == "ID":
		p.idMark = `a typ claim "ID"`
	case claims.AtHash != nil:
		p.idMark = "at_hash"
	case claims.CHash != nil:
		p.idMark = "c_hash"
	case claims.SHash != nil:
		p.idMark = "s_hash"
	case claims.Nonce != nil && !isBearer(claims.Typ):
		// Keycloak before 24 put the nonce into access tokens too; they
		// say typ "Bearer".
		p.idMark = "a nonce"
	}
	if claims.Iss != nil {
		p.hasIss = true
		if json.Unmarshal(claims.Iss, &p.iss) != nil {
			return malformed("its iss claim is not a string")
		}
	}
	return p, true, nil
}

// verifyJWT verifies a JWT access token of a trusted issuer (RFC 9068 §4):
// the issuer, typ and alg first, then the signature with the issuer's key,
// then the claims. until is the first instant it is refused as expired.
func (v *Verifier) verifyJWT(ctx context.Context, raw string, p peeked, now time.Time) (c *token.Claims, until time.Time, err error) {
	if !p.hasIss || p.iss == "" {
		return nil, until, token.Refuse(token.UnknownIssuer, "the token has no iss claim, so it names no issuer this API trusts; get a token from this server (%s) or from a trusted issuer", v.own)
	}
	if strings.TrimRight(p.iss, "/") == v.own {
		return nil, until, token.ErrNotExternal
	}
	is := v.byIss[p.iss]
	if is == nil {
		return nil, until, v.unknownIssuer(p.iss)
	}
	typ := normType(p.typ)
	switch {
	case strings.Contains(typ, "id_token") || strings.Contains(typ, "id-token"):
		return nil, until, token.Refuse(token.IDToken, "its typ is %s: an id_token says who signed in to an app and is never an access token; send the access_token from %s's token response", clip(p.typ), is.cfg.Issuer)
	case !is.types[typ] && p.idMark != "":
		got := "no typ header"
		if p.hasTyp {
			got = "typ " + clip(p.typ)
		}
		return nil, until, token.Refuse(token.IDToken, "it has %s and carries %s: it is an id_token, which says who signed in to an app and is never an access token; send the access_token from %s's token response", got, p.idMark, is.cfg.Issuer)
	case !is.types[typ]:
		got := "no typ header"
		if p.hasTyp {
			got = "typ " + clip(p.typ)
		}
		return nil, until, token.Refuse(token.WrongType, "the JWT has %s, and tokens of %s are accepted with typ %s (federation.issuers types); an id_token, logout token or client assertion cannot be used as an access token", got, is.cfg.Issuer, strings.Join(is.cfg.Types, ", "))
	}
	if !is.algs[p.alg] {
		why := ""
		if strings.EqualFold(p.alg, "none") || strings.HasPrefix(strings.ToUpper(p.alg), "HS") {
			why = " (unsigned and HMAC-signed tokens are never accepted)"
		}
		return nil, until, token.Refuse(token.AlgNotAllowed, "the token is signed with alg %s%s; tokens of %s are accepted with %s (federation.issuers algorithms)", clip(p.alg), why, is.cfg.Issuer, strings.Join(is.cfg.Algorithms, ", "))
	}
	k, err := is.key(ctx, p.kid, p.alg)
	if err != nil {
		return nil, until, err
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(p.alg)})
	if err != nil {
		return nil, until, token.Refuse(token.Malformed, "the token is not a valid signed JWT (RFC 7515 compact serialization)")
	}
	payload, err := jws.Verify(k.Key)
	if err != nil {
		return nil, until, token.Refuse(token.BadSignature, "the token's signature does not verify with the key kid %s of %s; it was altered or not signed by that issuer", clip(p.kid), is.cfg.Issuer)
	}
	m, err := decodeObject(payload)
	if err != nil {
		return nil, until, token.Refuse(token.Malformed, "the token's payload is not a JSON object with each claim once")
	}
	if iss, _, _ := str(m, "iss"); iss != p.iss {
		return nil, until, token.Refuse(token.Malformed, "the token's payload was read two ways")
	}
	c, exp, err := is.claims(m, now, source{typ: typ}, v.fhirBase)
	if err != nil {
		return nil, until, err
	}
	return c, exp.Add(is.skew), nil
}

// decodeObject decodes a JSON object, refusing one that repeats a member
// (two parsers could each see a different value).
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(m))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := t.(string)
		if names[name] {
			return nil, errNotObject
		}
		names[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func isBearer(v any) bool {
	s, ok := v.(string)
	return ok && strings.EqualFold(s, "Bearer")
}
