package clientkeys

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// maxRedirects is how many redirects a fetch follows.
const maxRedirects = 3

// userAgent identifies smartgate to the client's server.
const userAgent = "smartgate"

// httpDoer is the one method of *http.Client the Fetcher uses.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// newHTTPClient builds the client for jwks_uri fetches: no proxy (a proxy
// would make the dial check judge the proxy, not the target), the address
// check on every dial, no cookie jar, bounded redirects held to the URL
// rules, and the timeouts of Options.
func (f *Fetcher) newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: f.opts.Timeout, KeepAlive: 30 * time.Second}
	if f.permit != nil {
		dialer.Control = f.dialControl
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: f.opts.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    f.opts.Timeout,
		ResponseHeaderTimeout:  f.opts.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
	}
	return &http.Client{
		Transport:     transport,
		CheckRedirect: f.checkRedirect,
		Timeout:       f.opts.Timeout,
		// Jar stays nil: no cookies are kept or sent.
	}
}

// checkRedirect holds each redirect target to the jwks_uri rules (https,
// no user info, no forbidden IP literal or localhost name); the dial check
// then applies to the address it resolves to.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return newError(ErrFetch, "The client's jwks_uri redirected more than %d times. Register the final URL of the JWK Set.", maxRedirects).detail("redirect %d to %s", len(via), req.URL.Redacted())
	}
	if err := f.checkURL(req.URL); err != nil {
		return newError(ErrFetch, "The client's jwks_uri redirected to a URL smartgate does not fetch: %s", PublicMessage(err)).detail("redirect to %s", req.URL.Redacted()).cause(err)
	}
	return nil
}

// fetch GETs uri and parses the JWK Set. It returns how long the set stays
// fresh. The context bounds the whole exchange, redirects and body included.
func (f *Fetcher) fetch(ctx context.Context, uri string) (*jose.JSONWebKeySet, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, 0, newError(ErrInvalidURL, "jwks_uri is not a valid URL. Register an absolute https URL such as https://client.example.com/.well-known/jwks.json.").cause(err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/jwk-set+json, application/json")

	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, f.classify(ctx, uri, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return nil, 0, newError(ErrFetch, "The client's jwks_uri answered HTTP %d; smartgate needs 200 with the JWK Set. Make the URL serve the JWK Set publicly.", resp.StatusCode).detail("GET %s", uri)
	}
	if resp.ContentLength > f.opts.MaxBytes {
		return nil, 0, f.tooLarge(uri, resp.ContentLength)
	}
	// Read one byte past the limit: if it arrives, the body is too large,
	// whatever Content-Length said (or did not say).
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.opts.MaxBytes+1))
	if err == nil && ctx.Err() != nil {
		// The deadline passed while the body streamed: what arrived may be
		// cut short by a clean end of an HTTP/2 stream, so it is a timeout,
		// not a malformed set.
		err = ctx.Err()
	}
	if err != nil {
		return nil, 0, f.classify(ctx, uri, err)
	}
	if int64(len(body)) > f.opts.MaxBytes {
		return nil, 0, f.tooLarge(uri, -1)
	}
	set, err := FromJWKS(body)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Public = "The JWK Set at the client's jwks_uri is invalid: " + e.Public
			e.Detail = "GET " + uri
		}
		return nil, 0, err
	}
	return set, f.freshness(resp.Header), nil
}

func (f *Fetcher) tooLarge(uri string, length int64) error {
	return newError(ErrTooLarge, "The client's jwks_uri returned more than %d bytes. Serve only the JWK Set, with the client's current public keys.", f.opts.MaxBytes).detail("GET %s, Content-Length %d", uri, length)
}

// classify turns a transport failure into an *Error whose public sentence
// says what kind of failure it was, never the Go error text (that names
// addresses and internals) which stays in Cause for the log.
func (f *Fetcher) classify(ctx context.Context, uri string, err error) error {
	var own *Error
	if errors.As(err, &own) {
		// From the dial check or the redirect policy: already described.
		if own.Detail == "" {
			own.Detail = "GET " + uri
		} else {
			own.Detail = "GET " + uri + ": " + own.Detail
		}
		return own
	}
	detail := "GET " + uri
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var netErr net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return newError(ErrFetch, "The client's jwks_uri did not answer within %s. Make sure the URL is reachable from the internet and answers promptly.", f.opts.Timeout).detail("%s", detail).cause(err)
	case errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalidCert):
		return newError(ErrFetch, "smartgate does not trust the TLS certificate of the client's jwks_uri. Serve it with a valid certificate for that host name from a public certificate authority.").detail("%s", detail).cause(err)
	}
	return newError(ErrFetch, "smartgate could not connect to the client's jwks_uri or read its answer. Make sure the host name resolves and the URL is reachable from the internet over https.").detail("%s", detail).cause(err)
}

// freshness is how long a fetched set is served without asking again:
// MaxAge, or a smaller Cache-Control max-age (RFC 9111 §5.2.2.1; no-store and
// no-cache count as 0), never less than MinRefetch, since asking the client's
// server more often than that is what MinRefetch forbids.
func (f *Fetcher) freshness(h http.Header) time.Duration {
	fresh := f.opts.MaxAge
	if age, ok := cacheMaxAge(h); ok && age < fresh {
		fresh = age
	}
	if fresh < f.opts.MinRefetch {
		fresh = f.opts.MinRefetch
	}
	return fresh
}

// cacheMaxAge reads the response's Cache-Control max-age (the first valid
// one), treating no-store and no-cache as zero.
func cacheMaxAge(h http.Header) (time.Duration, bool) {
	var age time.Duration
	found := false
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				if found {
					continue
				}
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(value), `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				if n > int64(365*24*time.Hour/time.Second) {
					n = int64(365 * 24 * time.Hour / time.Second)
				}
				age, found = time.Duration(n)*time.Second, true
			}
		}
	}
	return age, found
}
