package clientkeys

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksHandler serves body (swappable) and counts requests.
type jwksHandler struct {
	hits   atomic.Int32
	mu     sync.Mutex
	body   []byte
	status int
	header http.Header
	last   *http.Request
}

func (h *jwksHandler) set(status int, body []byte, header http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status, h.body, h.header = status, body, header
}

func (h *jwksHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.hits.Add(1)
	h.mu.Lock()
	status, body, header := h.status, h.body, h.header
	h.last = r.Clone(context.Background())
	h.mu.Unlock()
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(body)
}

// devFetcher is a Fetcher in dev mode trusting pool, on a fake clock.
func devFetcher(pool *x509.CertPool, clk *fakeClock, mod ...func(*Options)) *Fetcher {
	o := Options{AllowPrivate: true, Clock: clk.Now, RootCAs: pool}
	for _, m := range mod {
		m(&o)
	}
	return New(o)
}

func TestKeysFetchesAndCaches(t *testing.T) {
	fixtures(t)
	h := &jwksHandler{}
	h.set(200, jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", "")), nil)
	srv, pool := tlsServer(t, h)
	clk := newClock()
	f := devFetcher(pool, clk)
	ctx := context.Background()

	for i := range 3 {
		set, err := f.Keys(ctx, srv.URL+"/jwks")
		if err != nil || len(set.Keys) != 1 {
			t.Fatalf("Keys #%d = %v, %v", i, set, err)
		}
	}
	if got := h.hits.Load(); got != 1 {
		t.Fatalf("server hit %d times for 3 calls within MaxAge, want 1", got)
	}
	r := h.last
	if got := r.Header.Get("User-Agent"); got != "smartgate" {
		t.Errorf("User-Agent = %q, want smartgate", got)
	}
	if got := r.Header.Get("Accept"); !strings.Contains(got, "application/jwk-set+json") || !strings.Contains(got, "application/json") {
		t.Errorf("Accept = %q, want both JWK Set and JSON media types", got)
	}

	clk.Advance(time.Hour + time.Second)
	if _, err := f.Keys(ctx, srv.URL+"/jwks"); err != nil {
		t.Fatal(err)
	}
	if got := h.hits.Load(); got != 2 {
		t.Fatalf("after MaxAge: server hit %d times, want 2", got)
	}
}

// No cookie set by the client's server is ever sent back.
func TestNoCookies(t *testing.T) {
	fixtures(t)
	h := &jwksHandler{}
	h.set(200, jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", "")), http.Header{"Set-Cookie": {"session=abc; Path=/"}})
	srv, pool := tlsServer(t, h)
	clk := newClock()
	f := devFetcher(pool, clk)
	f.Keys(context.Background(), srv.URL)
	clk.Advance(2 * time.Hour)
	f.Keys(context.Background(), srv.URL)
	if h.hits.Load() != 2 {
		t.Fatalf("hits = %d, want 2", h.hits.Load())
	}
	if c := h.last.Header.Get("Cookie"); c != "" {
		t.Fatalf("second request sent Cookie %q", c)
	}
}

func TestKeyRefetchesOnceForUnknownKid(t *testing.T) {
	fixtures(t)
	a := jwk(t, &ecP256.PublicKey, "a", "")
	b := jwk(t, &ecP384.PublicKey, "b", "")
	h := &jwksHandler{}
	h.set(200, jwksDoc(t, a), nil)
	srv, pool := tlsServer(t, h)
	clk := newClock()
	f := devFetcher(pool, clk)
	ctx := context.Background()
	uri := srv.URL + "/jwks"

	if _, err := f.Key(ctx, uri, "a", "ES256"); err != nil {
		t.Fatal(err)
	}
	// The client rotates; right after the first fetch, an unknown kid does
	// not cause a second one.
	h.set(200, jwksDoc(t, a, b), nil)
	_, err := f.Key(ctx, uri, "b", "ES384")
	wantKind(t, "unknown kid right after first fetch", err, ErrUnknownKID)
	if got := h.hits.Load(); got != 1 {
		t.Fatalf("hits = %d, want 1 (no refetch within MinRefetch of the first fetch)", got)
	}

	clk.Advance(2 * time.Minute)
	k, err := f.Key(ctx, uri, "b", "ES384")
	if err != nil || k.KeyID != "b" {
		t.Fatalf("Key(b) after MinRefetch = %v, %v; want the new key", k, err)
	}
	if got := h.hits.Load(); got != 2 {
		t.Fatalf("hits = %d, want 2 (one refetch)", got)
	}
	// A second unknown kid within MinRefetch: no refetch.
	_, err = f.Key(ctx, uri, "c", "ES256")
	wantKind(t, "second unknown kid", err, ErrUnknownKID)
	if !strings.Contains(err.Error(), "not refetched") {
		t.Errorf("log form %q does not say the set was not refetched", err)
	}
	clk.Advance(30 * time.Second)
	_, err = f.Key(ctx, uri, "c", "ES256")
	wantKind(t, "third unknown kid", err, ErrUnknownKID)
	if got := h.hits.Load(); got != 2 {
		t.Fatalf("hits = %d, want 2 (unknown kids within MinRefetch must not refetch)", got)
	}
	// The known keys still work from the cache.
	if _, err := f.Key(ctx, uri, "a", "ES256"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(31 * time.Second)
	f.Key(ctx, uri, "c", "ES256")
	if got := h.hits.Load(); got != 3 {
		t.Fatalf("hits = %d, want 3 (MinRefetch has passed)", got)
	}
	// Alg mismatch on a known kid is not a reason to refetch.
	clk.Advance(2 * time.Minute)
	_, err = f.Key(ctx, uri, "a", "RS256")
	wantKind(t, "alg mismatch", err, ErrAlgMismatch)
	if got := h.hits.Load(); got != 3 {
		t.Fatalf("hits = %d, want 3 (alg mismatch must not refetch)", got)
	}
}

func TestCacheControlMaxAge(t *testing.T) {
	fixtures(t)
	doc := jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", ""))
	cases := []struct {
		cacheControl string
		fresh        time.Duration // served from cache before, fetched after
	}{
		{"max-age=120", 120 * time.Second},
		{"public, max-age=600, must-revalidate", 600 * time.Second},
		{"max-age=10", 60 * time.Second},     // bounded below by MinRefetch
		{"no-store", 60 * time.Second},       // likewise
		{"no-cache", 60 * time.Second},       // likewise
		{"max-age=86400", time.Hour},         // bounded above by MaxAge
		{"max-age=junk", time.Hour},          // ignored
		{"", time.Hour},                      // none: MaxAge
		{`max-age="300"`, 300 * time.Second}, // quoted, leniently
	}
	for _, c := range cases {
		t.Run(c.cacheControl, func(t *testing.T) {
			h := &jwksHandler{}
			var hdr http.Header
			if c.cacheControl != "" {
				hdr = http.Header{"Cache-Control": {c.cacheControl}}
			}
			h.set(200, doc, hdr)
			srv, pool := tlsServer(t, h)
			clk := newClock()
			f := devFetcher(pool, clk)
			ctx := context.Background()
			f.Keys(ctx, srv.URL)
			clk.Advance(c.fresh - time.Second)
			f.Keys(ctx, srv.URL)
			if got := h.hits.Load(); got != 1 {
				t.Fatalf("at fresh-1s: hits = %d, want 1", got)
			}
			clk.Advance(2 * time.Second)
			f.Keys(ctx, srv.URL)
			if got := h.hits.Load(); got != 2 {
				t.Fatalf("at fresh+1s: hits = %d, want 2", got)
			}
		})
	}
}

func TestSizeLimit(t *testing.T) {
	fixtures(t)
	doc := jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", ""))
	const limit = 1024
	pad := func(n int) []byte { // a valid document of exactly n bytes
		return append(append([]byte{}, doc[:len(doc)-1]...), append([]byte(strings.Repeat(" ", n-len(doc))), '}')...)
	}
	for _, c := range []struct {
		name    string
		size    int
		chunked bool
		want    error
	}{
		{"at the limit", limit, false, nil},
		{"over, with Content-Length", limit + 1, false, ErrTooLarge},
		{"over, chunked", limit + 1, true, ErrTooLarge},
		{"far over, chunked", 50 * limit, true, ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := pad(c.size)
			srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.chunked {
					w.Write(body[:10])
					w.(http.Flusher).Flush() // no Content-Length from here on
					w.Write(body[10:])
					return
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.Write(body)
			}))
			f := devFetcher(pool, newClock(), func(o *Options) { o.MaxBytes = limit })
			_, err := f.Keys(context.Background(), srv.URL)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Keys = %v, want success", err)
				}
				return
			}
			wantKind(t, c.name, err, c.want)
			if !errors.Is(err, ErrFetch) {
				t.Errorf("ErrTooLarge should also match ErrFetch")
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	f := devFetcher(pool, newClock(), func(o *Options) { o.Timeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := f.Keys(context.Background(), srv.URL)
	elapsed := time.Since(start)
	wantKind(t, "slow server", err, ErrFetch)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to match context.DeadlineExceeded", err)
	}
	if !strings.Contains(PublicMessage(err), "did not answer within 200ms") {
		t.Errorf("public message %q does not say it timed out", PublicMessage(err))
	}
	if elapsed > 2*time.Second {
		t.Errorf("fetch took %v, want about 200ms", elapsed)
	}
}

// A slow body counts against the same timeout as the headers.
func TestTimeoutWhileReadingBody(t *testing.T) {
	release := make(chan struct{})
	srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[`))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })
	f := devFetcher(pool, newClock(), func(o *Options) { o.Timeout = 200 * time.Millisecond })
	_, err := f.Keys(context.Background(), srv.URL)
	wantKind(t, "slow body", err, ErrFetch)
}

func TestHTTPStatus(t *testing.T) {
	h := &jwksHandler{}
	h.set(404, []byte("not here"), nil)
	srv, pool := tlsServer(t, h)
	f := devFetcher(pool, newClock())
	_, err := f.Keys(context.Background(), srv.URL)
	wantKind(t, "404", err, ErrFetch)
	if !strings.Contains(PublicMessage(err), "HTTP 404") {
		t.Errorf("public message %q does not name the status", PublicMessage(err))
	}
}

func TestInvalidSetFromServer(t *testing.T) {
	fixtures(t)
	h := &jwksHandler{}
	h.set(200, jwksDoc(t, jwk(t, ecP256, "leaked", "")), nil)
	srv, pool := tlsServer(t, h)
	f := devFetcher(pool, newClock())
	_, err := f.Keys(context.Background(), srv.URL)
	wantKind(t, "private key served", err, ErrPrivateKey)
	if !strings.HasPrefix(PublicMessage(err), "The JWK Set at the client's jwks_uri is invalid") {
		t.Errorf("public message %q does not say where the set came from", PublicMessage(err))
	}
}

func TestUntrustedCertificate(t *testing.T) {
	h := &jwksHandler{}
	srv, _ := tlsServer(t, h)
	f := New(Options{AllowPrivate: true, RootCAs: x509.NewCertPool()}) // trusts nothing
	_, err := f.Keys(context.Background(), srv.URL)
	wantKind(t, "untrusted certificate", err, ErrFetch)
	if !strings.Contains(PublicMessage(err), "certificate") {
		t.Errorf("public message %q does not mention the certificate", PublicMessage(err))
	}
	if h.hits.Load() != 0 {
		t.Error("request reached the handler over an untrusted connection")
	}
}

// redirector answers /r/N with a redirect to /r/N-1, and /r/0 with the set.
func redirector(t *testing.T, doc []byte) (*httptest.Server, *jwksHandler, *x509.CertPool) {
	h := &jwksHandler{}
	h.set(200, doc, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/r/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			h.ServeHTTP(w, r)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
	})
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
	})
	srv, pool := tlsServer(t, mux)
	return srv, h, pool
}

func TestRedirectLimit(t *testing.T) {
	fixtures(t)
	srv, _, pool := redirector(t, jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", "")))
	f := devFetcher(pool, newClock())
	if _, err := f.Keys(context.Background(), srv.URL+"/r/3"); err != nil {
		t.Fatalf("3 redirects: %v, want success", err)
	}
	_, err := f.Keys(context.Background(), srv.URL+"/r/4")
	wantKind(t, "4 redirects", err, ErrFetch)
	if !strings.Contains(PublicMessage(err), "redirected more than 3 times") {
		t.Errorf("public message %q does not name the rule", PublicMessage(err))
	}
}

// With AllowPrivate=false (loopback treated as public so a test server can
// stand in for a public one), redirects are held to the jwks_uri rules.
func TestRedirectRules(t *testing.T) {
	fixtures(t)
	doc := jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", ""))
	plain := &jwksHandler{}
	plain.set(200, doc, nil)
	plainSrv := httptest.NewServer(plain)
	t.Cleanup(plainSrv.Close)
	srv, final, pool := redirector(t, doc)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]

	f := New(Options{RootCAs: pool, Clock: newClock().Now})
	f.permit = loopbackAsPublic

	if _, err := f.Keys(context.Background(), srv.URL+"/r/1"); err != nil {
		t.Fatalf("https redirect on the same host: %v, want success", err)
	}
	for _, c := range []struct {
		target string
		want   error
	}{
		{plainSrv.URL + "/jwks", ErrInvalidURL}, // downgrade to http
		{"https://10.0.0.1/jwks", ErrForbiddenAddress},
		{"https://169.254.169.254/latest/meta-data/", ErrForbiddenAddress},
		{"https://[::ffff:192.168.0.1]/jwks", ErrForbiddenAddress},
		{"https://localhost:" + port + "/r/0", ErrForbiddenAddress},
		{"https://user:pw@127.0.0.1:" + port + "/r/0", ErrInvalidURL},
	} {
		before := final.hits.Load()
		_, err := f.Keys(context.Background(), srv.URL+"/to?u="+c.target)
		wantKind(t, "redirect to "+c.target, err, c.want)
		if !errors.Is(err, ErrFetch) {
			t.Errorf("redirect to %s: %v should also match ErrFetch", c.target, err)
		}
		if final.hits.Load() != before {
			t.Errorf("redirect to %s was followed", c.target)
		}
	}
	if plain.hits.Load() != 0 {
		t.Errorf("the http server got %d requests, want 0", plain.hits.Load())
	}

	// In dev mode, http targets are allowed, redirects included.
	dev := devFetcher(pool, newClock())
	if _, err := dev.Keys(context.Background(), srv.URL+"/to?u="+plainSrv.URL+"/jwks"); err != nil {
		t.Fatalf("dev mode redirect to http: %v, want success", err)
	}
}

// Outside dev mode, loopback is refused: by ValidateURL for literals and
// localhost names, and by the dial check for whatever a name resolves to.
func TestForbiddenAddressesWithoutAllowPrivate(t *testing.T) {
	h := &jwksHandler{}
	srv, pool := tlsServer(t, h)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	f := New(Options{RootCAs: pool})
	ctx := context.Background()

	for _, u := range []string{srv.URL + "/jwks", "https://localhost:" + port + "/jwks", "https://[::1]:" + port + "/jwks"} {
		_, err := f.Keys(ctx, u)
		wantKind(t, u, err, ErrForbiddenAddress)
	}
	// The dial check on its own: bypass ValidateURL and fetch directly.
	for _, u := range []string{srv.URL + "/jwks", "https://[::ffff:127.0.0.1]:" + port + "/jwks"} {
		_, _, err := f.fetch(ctx, u)
		wantKind(t, "dial "+u, err, ErrForbiddenAddress)
		if pub := PublicMessage(err); strings.Contains(pub, "127.0.0.1") || strings.Contains(pub, "dial") {
			t.Errorf("public message leaks internals: %q", pub)
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("log form %q should name the refused address", err)
		}
	}
	if h.hits.Load() != 0 {
		t.Fatalf("server reached %d times, want 0", h.hits.Load())
	}
}

func TestConcurrentKeysShareOneFetch(t *testing.T) {
	fixtures(t)
	doc := jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", ""))
	var hits atomic.Int32
	release := make(chan struct{})
	srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		w.Write(doc)
	}))
	f := devFetcher(pool, newClock())
	const n = 50
	var wg sync.WaitGroup
	sets := make([]*jose.JSONWebKeySet, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { sets[i], errs[i] = f.Keys(context.Background(), srv.URL) })
	}
	// Release the server once every caller waits on the one fetch.
	deadline := time.Now().Add(3 * time.Second)
	for f.waiters(srv.URL) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || sets[i] != sets[0] {
			t.Fatalf("caller %d: %v, %v (want the shared set)", i, sets[i], errs[i])
		}
	}
	if got := hits.Load(); got != 1 {
		t.Fatalf("%d concurrent callers caused %d fetches, want 1", n, got)
	}
}

// A caller that gives up does not fail the shared fetch for the others.
func TestCallerCancelDoesNotFailSharedFetch(t *testing.T) {
	fixtures(t)
	doc := jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", ""))
	release := make(chan struct{})
	srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write(doc)
	}))
	f := devFetcher(pool, newClock())
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := f.Keys(ctx, srv.URL); first <- err }()
	for f.waiters(srv.URL) < 1 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { _, err := f.Keys(context.Background(), srv.URL); second <- err }()
	for f.waiters(srv.URL) < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("other caller: %v, want success", err)
	}
}

func TestFailedFetchServesPreviousSet(t *testing.T) {
	fixtures(t)
	h := &jwksHandler{}
	h.set(200, jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", "")), nil)
	srv, pool := tlsServer(t, h)
	clk := newClock()
	f := devFetcher(pool, clk)
	ctx := context.Background()
	hits := func(want int32, when string) {
		t.Helper()
		if got := h.hits.Load(); got != want {
			t.Fatalf("%s: hits = %d, want %d", when, got, want)
		}
	}
	good, err := f.Keys(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	h.set(500, nil, nil)

	clk.Advance(time.Hour + time.Second) // stale: fetch, fail, serve the old set
	set, err := f.Keys(ctx, srv.URL)
	if err != nil || set != good {
		t.Fatalf("after a failed refresh: %v, %v; want the previous set", set, err)
	}
	hits(2, "stale")
	set, err = f.Keys(ctx, srv.URL) // the failure is rate limited
	if err != nil || set != good {
		t.Fatalf("within MinRefetch of the failure: %v, %v; want the previous set", set, err)
	}
	hits(2, "within MinRefetch of a failure")

	clk.Advance(time.Minute) // MinRefetch passed: try again, fail, serve old
	if set, _ := f.Keys(ctx, srv.URL); set != good {
		t.Fatal("want the previous set")
	}
	hits(3, "after MinRefetch")

	clk.Advance(time.Hour) // past 2×MaxAge: nothing left to serve
	_, err = f.Keys(ctx, srv.URL)
	wantKind(t, "past 2×MaxAge", err, ErrFetch)
	hits(4, "past 2×MaxAge")
	_, err = f.Keys(ctx, srv.URL)
	wantKind(t, "rate limited", err, ErrRateLimited)
	if !errors.Is(err, ErrFetch) || !strings.Contains(PublicMessage(err), "HTTP 500") {
		t.Errorf("rate-limited error %v should carry the failure that caused it", err)
	}
	hits(4, "rate limited")

	h.set(200, jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", "")), nil)
	clk.Advance(time.Minute)
	if _, err := f.Keys(ctx, srv.URL); err != nil {
		t.Fatalf("server recovered: %v", err)
	}
	hits(5, "recovered")
}

// A first fetch that fails is not retried before MinRefetch, and a refetch
// for an unknown kid that fails says so.
func TestFirstFetchFailureRateLimited(t *testing.T) {
	h := &jwksHandler{}
	h.set(404, nil, nil)
	srv, pool := tlsServer(t, h)
	clk := newClock()
	f := devFetcher(pool, clk)
	for i := range 3 {
		_, err := f.Key(context.Background(), srv.URL, "a", "ES256")
		if i == 0 {
			wantKind(t, "first", err, ErrFetch)
		} else {
			wantKind(t, "again", err, ErrRateLimited)
		}
	}
	if h.hits.Load() != 1 {
		t.Fatalf("hits = %d, want 1", h.hits.Load())
	}
}

func TestRefetchFailureReported(t *testing.T) {
	fixtures(t)
	h := &jwksHandler{}
	h.set(200, jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", "")), nil)
	srv, pool := tlsServer(t, h)
	clk := newClock()
	f := devFetcher(pool, clk)
	f.Keys(context.Background(), srv.URL)
	h.set(503, nil, nil)
	clk.Advance(2 * time.Minute)
	_, err := f.Key(context.Background(), srv.URL, "b", "ES256")
	wantKind(t, "unknown kid, refetch failed", err, ErrUnknownKID)
	if !errors.Is(err, ErrFetch) || !strings.Contains(PublicMessage(err), "HTTP 503") {
		t.Errorf("error %v should carry the refetch failure", err)
	}
	// The old set is still in service.
	if _, err := f.Key(context.Background(), srv.URL, "a", "ES256"); err != nil {
		t.Fatalf("known kid after failed refetch: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	fixtures(t)
	h := &jwksHandler{}
	h.set(200, jwksDoc(t, jwk(t, &ecP256.PublicKey, "a", "")), nil)
	srv, pool := tlsServer(t, h)
	f := devFetcher(pool, newClock(), func(o *Options) { o.MaxEntries = 2 })
	ctx := context.Background()
	for _, p := range []string{"/1", "/2", "/1", "/3"} { // /2 is least recently used when /3 arrives
		f.Keys(ctx, srv.URL+p)
	}
	if n := f.cached(); n != 2 {
		t.Fatalf("cache holds %d URLs, want 2", n)
	}
	f.Keys(ctx, srv.URL+"/1")
	if got := h.hits.Load(); got != 3 {
		t.Fatalf("hits = %d, want 3 (/1 kept)", got)
	}
	f.Keys(ctx, srv.URL+"/2")
	if got := h.hits.Load(); got != 4 {
		t.Fatalf("hits = %d, want 4 (/2 evicted and fetched again)", got)
	}
}

// waiters reports how many callers wait on uri's in-flight fetch.
func (f *Fetcher) waiters(uri string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	el, ok := f.entries[uri]
	if !ok || el.Value.(*entry).call == nil {
		return 0
	}
	return el.Value.(*entry).call.waiters
}

func (f *Fetcher) cached() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

// Public messages never carry Go error text, addresses or library names;
// the log form (Error) keeps them.
func TestPublicMessagesDoNotLeak(t *testing.T) {
	fixtures(t)
	ctx := context.Background()
	var errs []error

	closed, pool := tlsServer(t, http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // connection refused from now on
	errs = append(errs, func() error { _, err := devFetcher(pool, newClock()).Keys(ctx, closedURL); return err }())

	release := make(chan struct{})
	slow, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })
	errs = append(errs, func() error {
		_, err := devFetcher(pool, newClock(), func(o *Options) { o.Timeout = 100 * time.Millisecond }).Keys(ctx, slow.URL)
		return err
	}())

	bad, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"!","y":"!"}]}`))
	}))
	errs = append(errs, func() error { _, err := devFetcher(pool, newClock()).Keys(ctx, bad.URL); return err }())
	errs = append(errs, func() error {
		_, err := New(Options{RootCAs: x509.NewCertPool(), AllowPrivate: true}).Keys(ctx, bad.URL)
		return err
	}())
	errs = append(errs, func() error { _, _, err := New(Options{RootCAs: pool}).fetch(ctx, bad.URL); return err }())

	for _, err := range errs {
		if err == nil {
			t.Fatal("want an error")
		}
		pub := PublicMessage(err)
		for _, leak := range []string{"127.0.0.1", "dial", "x509", "tls:", "context deadline", "go-jose", "json:", "connection refused", "Get \""} {
			if strings.Contains(pub, leak) {
				t.Errorf("public message leaks %q: %q", leak, pub)
			}
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("log form %q should name the URL", err)
		}
	}
	if got := PublicMessage(errors.New("dial tcp 10.0.0.1:443: secret detail")); got != genericPublic {
		t.Errorf("PublicMessage(foreign error) = %q, want the generic sentence", got)
	}
	if PublicMessage(nil) != "" {
		t.Error("PublicMessage(nil) should be empty")
	}
}
