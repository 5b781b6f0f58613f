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

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/clientkeys"
	"smartgate/internal/config"
	"smartgate/internal/token"
)

// Discovery cache policy: a fetched document is used for discoveryMaxAge;
// a failed fetch is not retried before discoveryRetry, and meanwhile the
// last good document stays in use (up to discoveryStale old).
const (
	discoveryMaxAge = time.Hour
	discoveryRetry  = 30 * time.Second
	discoveryStale  = 24 * time.Hour
	maxDocBytes     = 256 << 10
)

// issuer is one federation.issuers entry at run time.
type issuer struct {
	cfg      config.ExternalIssuer // with defaults
	types    map[string]bool       // accepted typ values, normalised
	algs     map[string]bool
	skew     time.Duration
	keys     *clientkeys.Fetcher
	http     httpDoer
	clock    func() time.Time
	intro    *introCache // nil without introspection
	cacheMax int

	mu        sync.Mutex // guards the discovery state below
	doc       *metadata
	fetched   time.Time
	attempted time.Time
	lastErr   error
}

// metadata is what smartgate reads from an issuer's discovery document
// (OpenID Connect Discovery 1.0 §3, RFC 8414 §2).
type metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

func newIssuer(c config.ExternalIssuer, keys *clientkeys.Fetcher, client httpDoer, clock func() time.Time, cacheMax int) *issuer {
	is := &issuer{cfg: c, types: map[string]bool{}, algs: map[string]bool{}, skew: c.MaxSkew.D(), keys: keys, http: client, clock: clock, cacheMax: cacheMax}
	for _, t := range c.Types {
		is.types[normType(t)] = true
	}
	for _, a := range c.Algorithms {
		is.algs[a] = true
	}
	if c.Introspection != nil {
		is.intro = &introCache{ttl: c.Introspection.CacheTTL.D(), m: map[[32]byte]introEntry{}}
	}
	return is
}

// normType folds a JOSE typ for comparison: media types are compared
// without regard to case, and "application/" may be left out (RFC 7515
// §4.1.9).
func normType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}

// key returns the issuer's public key for kid and alg: its JWK Set is
// cached, and fetched again for an unknown kid at most once a minute
// (internal/clientkeys).
func (is *issuer) key(ctx context.Context, kid, alg string) (*jose.JSONWebKey, error) {
	uri := is.cfg.JWKSURI
	if uri == "" {
		doc, err := is.discover(ctx)
		if err != nil {
			return nil, err
		}
		if doc.JWKSURI == "" {
			return nil, unavailable(is.cfg.Issuer, "its discovery document has no jwks_uri (set jwks_uri in federation.issuers)", errors.New("no jwks_uri in the discovery document"))
		}
		uri = doc.JWKSURI
	}
	k, err := is.keys.Key(ctx, uri, kid, alg)
	switch {
	case err == nil:
		return k, nil
	case errors.Is(err, clientkeys.ErrUnknownKID), errors.Is(err, clientkeys.ErrNoKey):
		what := fmt.Sprintf("kid %s", clip(kid))
		if kid == "" {
			what = "no kid, and none of its keys fits " + clip(alg)
		}
		return nil, token.Refuse(token.UnknownKey, "the token names %s, which is not in the JWK Set of %s (fetched again at most a minute ago); it was not signed by that issuer, or with a key the issuer no longer publishes", what, is.cfg.Issuer)
	case errors.Is(err, clientkeys.ErrAlgMismatch), errors.Is(err, clientkeys.ErrAmbiguousKey):
		return nil, token.Refuse(token.BadSignature, "the key kid %s of %s cannot verify alg %s unambiguously; the token was not signed by that key", clip(kid), is.cfg.Issuer, clip(alg))
	}
	return nil, unavailable(is.cfg.Issuer, "its signing keys (JWK Set) could not be fetched", err)
}

// discover returns the issuer's discovery document: OpenID Connect
// Discovery (/.well-known/openid-configuration appended to the issuer),
// else RFC 8414 §3.1 (/.well-known/oauth-authorization-server inserted
// before the issuer's path). Its issuer must be exactly the configured one
// (OpenID Connect Discovery §4.3, RFC 8414 §3.3).
func (is *issuer) discover(ctx context.Context) (*metadata, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	now := is.clock()
	if is.doc != nil && now.Sub(is.fetched) < discoveryMaxAge {
		return is.doc, nil
	}
	if !is.attempted.IsZero() && now.Sub(is.attempted) < discoveryRetry {
		if is.doc != nil && now.Sub(is.fetched) < discoveryStale {
			return is.doc, nil
		}
		return nil, unavailable(is.cfg.Issuer, "its discovery document could not be fetched (not retried for a few seconds)", is.lastErr)
	}
	is.attempted = now
	doc, err := is.fetchDiscovery(ctx)
	if err != nil {
		is.lastErr = err
		if is.doc != nil && now.Sub(is.fetched) < discoveryStale {
			return is.doc, nil
		}
		return nil, unavailable(is.cfg.Issuer, "its discovery document could not be fetched", err)
	}
	is.doc, is.fetched, is.lastErr = doc, now, nil
	return doc, nil
}

func (is *issuer) fetchDiscovery(ctx context.Context) (*metadata, error) {
	u, err := url.Parse(is.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	oidc := strings.TrimRight(is.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	rfc8414 := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimRight(u.EscapedPath(), "/")
	var errs []error
	for _, uri := range []string{oidc, rfc8414} {
		doc, err := is.getJSON(ctx, uri)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var m metadata
		if err := json.Unmarshal(doc, &m); err != nil {
			errs = append(errs, fmt.Errorf("GET %s: not a JSON object: %w", uri, err))
			continue
		}
		if m.Issuer != is.cfg.Issuer {
			errs = append(errs, fmt.Errorf("GET %s: the document's issuer is %q, not %q (OpenID Connect Discovery section 4.3); correct federation.issuers issuer", uri, m.Issuer, is.cfg.Issuer))
			continue
		}
		return &m, nil
	}
	return nil, errors.Join(errs...)
}

// getJSON GETs uri under the address rules of the issuer's fetcher.
func (is *issuer) getJSON(ctx context.Context, uri string) ([]byte, error) {
	if err := is.keys.ValidateURL(uri); err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := is.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", uri, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	if len(body) > maxDocBytes {
		return nil, fmt.Errorf("GET %s: more than %d bytes", uri, maxDocBytes)
	}
	return body, nil
}
