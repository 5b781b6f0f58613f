// Package extauth verifies access tokens issued by the external
// authorization servers an administrator trusts (config federation.issuers,
// docs/federation.md): JWT access tokens against the issuer's JWK Set
// (RFC 9068, and the Keycloak variants: typ "JWT", scopes in an "scp"
// array), and opaque tokens at the issuer's introspection endpoint (RFC
// 7662). A verified token becomes the token.Claims smartgate's own tokens
// give, so the FHIR API enforces both with one code path.
//
// External tokens cannot be revoked here: smartgate's revocation list
// covers only what it issued, so an external token is good until it
// expires (or, introspected, until its issuer says it is inactive, at
// most introspection.cache_ttl later).
//
// The issuer's client and subject become "<id>@<issuer>" in the claims,
// so audit events name the issuer and an external client can never pass
// for a local client of the same id (Bulk Data jobs belong to a client id).
package extauth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"smartgate/internal/clientkeys"
	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/token"
)

// maxTokenBytes bounds a token: Keycloak tokens with many roles run to a
// few KiB; nothing legitimate is near this.
const maxTokenBytes = 32 << 10

// Options configure a Verifier.
type Options struct {
	// Own is smartgate's issuer: tokens naming it are not external.
	Own string
	// FHIRBase lets patient and fhirUser claims be absolute URLs.
	FHIRBase string
	Issuers  []config.ExternalIssuer
	// Dev lets every issuer live on loopback and private addresses.
	Dev   bool
	Clock func() time.Time
	// CacheSize bounds the verified-token cache and each issuer's
	// introspection cache; 0 means 100,000.
	CacheSize int
	// RootCAs verifies the issuers' TLS certificates; nil: system roots.
	RootCAs *x509.CertPool
	// MinRefetch is the shortest time between two fetches of a JWK Set
	// (an unknown kid fetches it again at most this often); 0: 60s.
	MinRefetch time.Duration
}

// Verifier verifies tokens of the configured issuers. It is safe for
// concurrent use; one serves the node.
type Verifier struct {
	own      string
	fhirBase string
	issuers  []*issuer
	byIss    map[string]*issuer
	clock    func() time.Time
	maxSize  int

	mu    sync.RWMutex
	cache map[[32]byte]cached
}

type cached struct {
	claims *token.Claims
	until  time.Time // exp + skew: the first instant the token is refused
}

// New returns a Verifier for opts.Issuers (validated by config).
func New(opts Options) *Verifier {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	v := &Verifier{own: strings.TrimRight(opts.Own, "/"), fhirBase: strings.TrimRight(opts.FHIRBase, "/"), byIss: map[string]*issuer{},
		clock: opts.Clock, maxSize: opts.CacheSize, cache: map[[32]byte]cached{}}
	type fetcher struct {
		keys   *clientkeys.Fetcher
		client httpDoer
	}
	fetchers := map[bool]fetcher{}
	for _, c := range opts.Issuers {
		c = c.WithDefaults()
		private := c.AllowPrivate || opts.Dev
		f, ok := fetchers[private]
		if !ok {
			// One fetcher (cache, address rules) per rule set; discovery
			// and introspection go through a client with the same rules.
			f.keys = clientkeys.New(clientkeys.Options{AllowPrivate: private, RootCAs: opts.RootCAs, Clock: opts.Clock, MinRefetch: opts.MinRefetch})
			f.client = f.keys.HTTPClient()
			fetchers[private] = f
		}
		is := newIssuer(c, f.keys, f.client, opts.Clock, opts.CacheSize)
		v.issuers = append(v.issuers, is)
		v.byIss[c.Issuer] = is
	}
	return v
}

// Verify checks a bearer token that smartgate's own verifier did not
// accept. It returns the claims of a valid external token; a *token.Error
// saying why a token of (or claiming) an external issuer is refused; a
// *problem.Error (external_issuer_unavailable) when the issuer could not be
// reached to decide; or token.ErrNotExternal when the token is none of its
// business (it names smartgate as issuer, or it is opaque and no issuer
// introspects).
func (v *Verifier) Verify(ctx context.Context, raw string) (*token.Claims, error) {
	if len(raw) > maxTokenBytes {
		return nil, token.Refuse(token.Malformed, "the token is longer than %d bytes, more than any access token this API accepts", maxTokenBytes)
	}
	now := v.clock()
	key := sha256.Sum256([]byte(raw))
	v.mu.RLock()
	e, hit := v.cache[key]
	v.mu.RUnlock()
	if hit {
		if now.Before(e.until) {
			return e.claims, nil
		}
		v.mu.Lock()
		delete(v.cache, key)
		v.mu.Unlock()
		return nil, expired(e.claims.Issuer, e.claims.Expiry, e.until.Unix()-e.claims.Expiry)
	}
	p, isJWT, err := peek(raw)
	if !isJWT {
		return v.introspect(ctx, raw, key, now)
	}
	if err != nil {
		return nil, err
	}
	c, until, err := v.verifyJWT(ctx, raw, p, now)
	if err != nil {
		return nil, err
	}
	v.remember(key, cached{claims: c, until: until})
	return c, nil
}

func (v *Verifier) remember(key [32]byte, e cached) {
	v.mu.Lock()
	defer v.mu.Unlock()
	evictSome(v.cache, v.maxSize)
	v.cache[key] = e
}

// evictSome drops about a tenth of a full cache, arbitrary entries (map
// order): cheap and bounded; a miss costs only a verification.
func evictSome[V any](m map[[32]byte]V, max int) {
	if len(m) < max {
		return
	}
	n := max/10 + 1
	for k := range m {
		delete(m, k)
		if n--; n <= 0 {
			break
		}
	}
}

// unknownIssuer is the refusal of a JWT whose iss is neither smartgate nor
// a trusted issuer.
func (v *Verifier) unknownIssuer(iss string) error {
	for _, is := range v.issuers {
		if strings.TrimRight(is.cfg.Issuer, "/") == strings.TrimRight(iss, "/") {
			return token.Refuse(token.WrongIssuer, "the token's issuer is %s, which differs from the trusted issuer %q only by a trailing slash; iss must match exactly (RFC 9068 section 4): correct federation.issuers issuer, or the issuer's own setting", clip(iss), is.cfg.Issuer)
		}
	}
	return token.Refuse(token.UnknownIssuer, "the token's issuer is %s: not this server (%s) and not one of the issuers an administrator trusts (federation.issuers); get a token from this server or from a trusted issuer", clip(iss), v.own)
}

func expired(iss string, exp, skew int64) error {
	return token.Refuse(token.Expired, "the access token expired at %s (issuer %s; %ds of clock difference tolerated); get a new one from its issuer",
		time.Unix(exp, 0).UTC().Format(time.RFC3339), iss, skew)
}

// unavailable is the answer when an issuer could not be reached: neither
// the client's fault nor a decision about its token (503).
func unavailable(iss, what string, cause error) error {
	return problem.Wrap(problem.ExternalIssuerUnavailable, cause,
		"the access token comes from %s, an issuer this API trusts, but %s, so the token could not be checked; try again later", iss, what).
		WithHeader("Retry-After", "10")
}

// clip quotes an attacker-chosen value for a message, cut short.
func clip(s string) string {
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// isUnavailable reports whether err is an unavailable issuer.
func isUnavailable(err error) bool { return problem.IsID(err, problem.ExternalIssuerUnavailable) }

// errInactive is an introspection answer of active false.
var errInactive = errors.New("extauth: inactive")

// httpDoer is the one method of *http.Client used.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}
