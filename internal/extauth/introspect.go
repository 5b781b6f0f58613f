package extauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"smartgate/internal/token"
)

// maxIntrospectionBytes bounds an introspection response.
const maxIntrospectionBytes = 64 << 10

// introCache remembers introspection answers by a hash of the token: an
// active token until its exp or ttl, whichever comes first (so it is never
// trusted past its life, and a revocation at the issuer counts within
// ttl); an inactive one for ttl.
type introCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[32]byte]introEntry
}

type introEntry struct {
	claims *token.Claims
	err    error // a refusal, or errInactive
	until  time.Time
}

// introspect asks the issuers that introspect, in configuration order,
// about an opaque token; the first that knows it active decides. (The
// token is shown to each in turn: configure introspection only for
// issuers trusted alike.)
func (v *Verifier) introspect(ctx context.Context, raw string, key [32]byte, now time.Time) (*token.Claims, error) {
	var down error
	asked := 0
	for _, is := range v.issuers {
		if is.intro == nil {
			continue
		}
		asked++
		c, err := is.introspect(ctx, raw, key, now, v.fhirBase)
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, errInactive):
		case isUnavailable(err):
			if down == nil {
				down = err
			}
		default:
			return nil, err
		}
	}
	switch {
	case asked == 0:
		return nil, token.ErrNotExternal
	case down != nil:
		return nil, down
	}
	return nil, token.Refuse(token.Inactive, "it is not a JWT, and the introspection endpoints of the issuers this API trusts do not report it active: it expired, was revoked by its issuer, or was issued by none of them")
}

func (is *issuer) introspect(ctx context.Context, raw string, key [32]byte, now time.Time, fhirBase string) (*token.Claims, error) {
	ic := is.intro
	ic.mu.Lock()
	e, hit := ic.m[key]
	if hit && !now.Before(e.until) {
		delete(ic.m, key)
		hit = false
	}
	ic.mu.Unlock()
	if hit {
		return e.claims, e.err
	}
	m, err := is.postIntrospection(ctx, raw)
	if err != nil {
		return nil, err // not cached: the issuer is asked again next time
	}
	e = introEntry{until: now.Add(ic.ttl)}
	var active bool
	if a, ok := m["active"]; !ok || json.Unmarshal(a, &active) != nil {
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint answered without an active member (RFC 7662 section 2.2)", errors.New("no boolean active member"))
	}
	if !active {
		e.err = errInactive
	} else {
		var exp time.Time
		e.claims, exp, e.err = is.claims(m, now, source{introspected: true}, fhirBase)
		if !exp.IsZero() && exp.Before(e.until) {
			e.until = exp
		}
		if e.claims != nil && e.claims.Expiry == 0 {
			e.claims.Expiry = e.until.Unix()
		}
	}
	ic.mu.Lock()
	evictSome(ic.m, is.cacheMax)
	ic.m[key] = e
	ic.mu.Unlock()
	return e.claims, e.err
}

// postIntrospection sends the token to the issuer's introspection endpoint
// (RFC 7662 §2.1) with client_secret_basic (RFC 6749 §2.3.1: id and secret
// form-encoded, then Basic).
func (is *issuer) postIntrospection(ctx context.Context, raw string) (map[string]json.RawMessage, error) {
	in := is.cfg.Introspection
	uri := in.URL
	if uri == "" {
		doc, err := is.discover(ctx)
		if err != nil {
			return nil, err
		}
		if doc.IntrospectionEndpoint == "" {
			return nil, unavailable(is.cfg.Issuer, "its discovery document has no introspection_endpoint (set introspection.url in federation.issuers)", errors.New("no introspection_endpoint"))
		}
		uri = doc.IntrospectionEndpoint
	}
	if err := is.keys.ValidateURL(uri); err != nil {
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint is not a URL smartgate may call", err)
	}
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint could not be called", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	resp, err := is.http.Do(req)
	if err != nil {
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint could not be reached", fmt.Errorf("POST %s: %w", uri, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBytes+1))
	switch {
	case err != nil:
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint's answer could not be read", fmt.Errorf("POST %s: %w", uri, err))
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint refused smartgate's credentials", fmt.Errorf("POST %s: HTTP %d (check introspection client_id and client_secret): %.200s", uri, resp.StatusCode, body))
	case resp.StatusCode != http.StatusOK:
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint failed", fmt.Errorf("POST %s: HTTP %d: %.200s", uri, resp.StatusCode, body))
	case len(body) > maxIntrospectionBytes:
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint answered too much", fmt.Errorf("POST %s: more than %d bytes", uri, maxIntrospectionBytes))
	}
	m, err := decodeObject(body)
	if err != nil {
		return nil, unavailable(is.cfg.Issuer, "its introspection endpoint did not answer a JSON object", fmt.Errorf("POST %s: %w", uri, err))
	}
	return m, nil
}
