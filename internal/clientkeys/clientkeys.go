// Package clientkeys gives the token endpoint the public keys of a client
// that authenticates with a signed assertion (RFC 7523 §2.2, private_key_jwt;
// SMART App Launch 2.2, Backend Services and "Client Authentication:
// Asymmetric"): from the JWK Set the client registered inline (FromJWKS) or
// from its jwks_uri (Fetcher), fetched safely and cached.
//
// Fetching a URL a client chose is a server-side request forgery risk, so
// outside dev mode (Options.AllowPrivate) a fetch is https only, and every
// connection, including after a redirect, is checked on the resolved
// address it is about to reach: loopback, private, link-local, metadata and
// other non-public addresses are refused (DESIGN Principle 3).
//
// Cache policy: a fetched set is fresh for Options.MaxAge, or less when the
// response's Cache-Control max-age says so, never less than MinRefetch. An
// unknown kid triggers one refetch, at most once per MinRefetch per URL. A
// failed fetch keeps the last good set in service until 2×MaxAge after it was
// fetched, and is itself not retried before MinRefetch has passed.
package clientkeys

import (
	"container/list"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Options configure a Fetcher. Zero values take the defaults noted.
type Options struct {
	AllowPrivate bool           // dev mode only: permit http:// and loopback/private targets
	Timeout      time.Duration  // whole fetch, redirects included; default 5s
	MaxBytes     int64          // response body limit; default 256 KiB
	MinRefetch   time.Duration  // never fetch the same URL more often than this, except the first fetch; default 60s
	MaxAge       time.Duration  // how long a fetched set is fresh; default 1h (a smaller Cache-Control max-age wins, bounded below by MinRefetch)
	RootCAs      *x509.CertPool // nil = system roots
	Clock        func() time.Time
	MaxEntries   int // URLs cached at most; the least recently used is evicted; default 10,000
}

// Defaults for Options.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxBytes   = 256 << 10
	DefaultMinRefetch = 60 * time.Second
	DefaultMaxAge     = time.Hour
	DefaultMaxEntries = 10_000
)

// Fetcher fetches and caches clients' remote JWK Sets. It is safe for
// concurrent use; one Fetcher serves the whole node.
type Fetcher struct {
	opts Options
	// permit judges an address a fetch may reach; nil (AllowPrivate) permits
	// every address. Tests replace it to treat loopback as public.
	permit func(netip.Addr) error
	client httpDoer

	mu      sync.Mutex
	entries map[string]*list.Element // values are *entry
	lru     *list.List               // front: most recently used
}

// entry is the cache state of one jwks_uri.
type entry struct {
	uri        string
	set        *jose.JSONWebKeySet // last good set; nil before the first success
	fetched    time.Time           // when set was fetched
	freshUntil time.Time           // set is served without a fetch until then
	attempted  time.Time           // when the last fetch (good or failed) started
	lastErr    error               // the last fetch's failure; nil after a success
	call       *call               // the fetch in flight, if any
}

// call is one fetch that any number of callers wait for.
type call struct {
	done     chan struct{}
	set      *jose.JSONWebKeySet // what Keys returns: the new set, or the previous one still in service
	err      error               // what Keys returns when no set can be served
	fetchErr error               // the fetch's own failure, even when a previous set is served
	waiters  int                 // callers waiting (for tests)
}

// New returns a Fetcher with opts, defaults filled in.
func New(opts Options) *Fetcher {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MinRefetch <= 0 {
		opts.MinRefetch = DefaultMinRefetch
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	f := &Fetcher{
		opts:    opts,
		entries: make(map[string]*list.Element),
		lru:     list.New(),
	}
	if !opts.AllowPrivate {
		f.permit = checkAddr
	}
	f.client = f.newHTTPClient()
	return f
}

// Keys returns the JWK Set at uri: the cached one while it is fresh,
// otherwise a newly fetched one. Concurrent callers share one fetch. The
// uri is checked with ValidateURL first, so a URL stored before a policy
// change is still held to the current rules.
func (f *Fetcher) Keys(ctx context.Context, uri string) (*jose.JSONWebKeySet, error) {
	if err := f.ValidateURL(uri); err != nil {
		return nil, err
	}
	set, _, _, err := f.load(ctx, uri, false)
	return set, err
}

// Key returns the key in uri's JWK Set that verifies a signature by kid with
// alg (see Find). When the kid is unknown (or, with no kid, no key fits), the
// client may have rotated its keys, so the set is fetched again once, if the
// last fetch of uri was at least MinRefetch ago, and searched again.
func (f *Fetcher) Key(ctx context.Context, uri, kid, alg string) (*jose.JSONWebKey, error) {
	set, err := f.Keys(ctx, uri)
	if err != nil {
		return nil, err
	}
	k, findErr := Find(set, kid, alg)
	if findErr == nil || !(errors.Is(findErr, ErrUnknownKID) || errors.Is(findErr, ErrNoKey)) {
		return k, findErr
	}
	newSet, fetched, fetchErr, err := f.load(ctx, uri, true)
	if newSet != nil && newSet != set {
		// Fetched now, or by another caller since we looked: search again.
		k, findErr = Find(newSet, kid, alg)
		if findErr == nil {
			return k, nil
		}
	}
	var e *Error
	if !errors.As(findErr, &e) {
		return nil, findErr
	}
	switch {
	case fetchErr != nil:
		e.Detail = fmt.Sprintf("refetching %s failed", uri)
		e.Cause = fetchErr
		e.Public += " (Refetching the jwks_uri failed: " + PublicMessage(fetchErr) + ")"
	case fetched:
		e.Detail = fmt.Sprintf("refetched %s", uri)
	case err != nil && !errors.Is(err, ErrRateLimited):
		return nil, err // the caller's context ended
	default:
		e.Detail = fmt.Sprintf("not refetched: %s was fetched less than %s ago", uri, f.opts.MinRefetch)
	}
	return nil, e
}

// load returns the set for uri. With force, it fetches even a fresh set,
// unless the last attempt was less than MinRefetch ago; fetched reports
// whether a fetch was made (or joined). fetchErr is the fetch's own failure
// when a previous set is served in its place.
func (f *Fetcher) load(ctx context.Context, uri string, force bool) (set *jose.JSONWebKeySet, fetched bool, fetchErr, err error) {
	f.mu.Lock()
	now := f.opts.Clock()
	e := f.lookup(uri)
	if !force && e.set != nil && now.Before(e.freshUntil) {
		set = e.set
		f.mu.Unlock()
		return set, false, nil, nil
	}
	c := e.call
	if c == nil {
		if !e.attempted.IsZero() && now.Sub(e.attempted) < f.opts.MinRefetch {
			set, err = f.fallback(e, now)
			f.mu.Unlock()
			return set, false, nil, err
		}
		c = &call{done: make(chan struct{})}
		e.call = c
		e.attempted = now
		// The fetch outlives any one caller: a caller that gives up must not
		// fail it for the others. It keeps the caller's values (request id
		// for logs) and is bounded by Options.Timeout.
		go f.run(context.WithoutCancel(ctx), e, c)
	}
	c.waiters++
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.set, true, c.fetchErr, c.err
	case <-ctx.Done():
		return nil, false, nil, newError(ErrFetch, "The request ended before the client's JWK Set was fetched.").detail("waiting for %s", uri).cause(ctx.Err())
	}
}

// run performs one fetch and publishes its result to the entry and the call.
func (f *Fetcher) run(ctx context.Context, e *entry, c *call) {
	set, fresh, err := f.fetch(ctx, e.uri)

	f.mu.Lock()
	now := f.opts.Clock()
	e.call = nil
	if err == nil {
		e.set, e.fetched, e.freshUntil, e.lastErr = set, now, now.Add(fresh), nil
		c.set = set
	} else {
		e.lastErr = err
		c.fetchErr = err
		if f.servable(e, now) {
			c.set = e.set // the failure stays in fetchErr, for Key and the log
		} else {
			c.err = err
		}
	}
	f.mu.Unlock()
	close(c.done)
}

// fallback answers when no fetch may be made now: the last good set while
// it is younger than 2×MaxAge, otherwise the reason there is none.
func (f *Fetcher) fallback(e *entry, now time.Time) (*jose.JSONWebKeySet, error) {
	if f.servable(e, now) {
		return e.set, nil
	}
	retry := e.attempted.Add(f.opts.MinRefetch).Sub(now).Round(time.Second)
	if retry < time.Second {
		retry = time.Second
	}
	err := newError(ErrRateLimited, "smartgate fetched the client's jwks_uri less than %s ago and will not fetch it again for %s.", f.opts.MinRefetch, retry).detail("uri %s", e.uri)
	if e.lastErr != nil {
		err.Public = "The last fetch of the client's jwks_uri failed and smartgate will not retry it for " + retry.String() + ". That fetch failed because: " + PublicMessage(e.lastErr)
		err.Cause = e.lastErr
	}
	return nil, err
}

// servable reports whether the entry's last good set may still be served
// although it is no longer fresh: for up to 2×MaxAge after it was fetched, so
// a client's brief outage does not lock it out.
func (f *Fetcher) servable(e *entry, now time.Time) bool {
	return e.set != nil && now.Before(e.fetched.Add(2*f.opts.MaxAge))
}

// lookup returns uri's entry, creating it (and evicting the least recently
// used one beyond MaxEntries) as needed. f.mu must be held.
func (f *Fetcher) lookup(uri string) *entry {
	if el, ok := f.entries[uri]; ok {
		f.lru.MoveToFront(el)
		return el.Value.(*entry)
	}
	e := &entry{uri: uri}
	f.entries[uri] = f.lru.PushFront(e)
	for f.lru.Len() > f.opts.MaxEntries {
		// An evicted entry with a fetch in flight is harmless: its waiters
		// hold the call, and the result lands on an entry no one can reach.
		old := f.lru.Back()
		f.lru.Remove(old)
		delete(f.entries, old.Value.(*entry).uri)
	}
	return e
}
