package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"smartgate/internal/requestid"
)

// seen is what the handler behind the middleware observed.
type seen struct {
	clientIP string
	https    bool
}

// throughProxies runs r through TrustProxies(list) and reports what the
// next handler saw.
func throughProxies(list []string, r *http.Request) seen {
	var got seen
	h := TrustProxies(list)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = seen{clientIP: ClientIP(r), https: IsHTTPS(r)}
	}))
	h.ServeHTTP(httptest.NewRecorder(), r)
	return got
}

func TestTrustProxies(t *testing.T) {
	cidr := []string{"10.0.0.0/8", "2001:db8::/32"}
	single := []string{"10.0.0.1", "2001:db8::1"}
	for _, tc := range []struct {
		name      string
		trusted   []string
		remote    string
		xff       []string // one entry per header line
		proto     []string
		wantIP    string
		wantHTTPS bool
	}{
		// No proxies configured: headers are ignored entirely.
		{name: "no trusted proxies", remote: "10.0.0.1:5000", xff: []string{"203.0.113.7"}, proto: []string{"https"}, wantIP: "10.0.0.1"},
		{name: "no trusted proxies, no headers", remote: "192.0.2.9:5000", wantIP: "192.0.2.9"},

		// An untrusted peer cannot set its address or the scheme.
		{name: "untrusted peer XFF ignored (CIDR list)", trusted: cidr, remote: "192.0.2.9:5000", xff: []string{"203.0.113.7"}, proto: []string{"https"}, wantIP: "192.0.2.9"},
		{name: "untrusted peer XFF ignored (single list)", trusted: single, remote: "10.0.0.2:5000", xff: []string{"203.0.113.7"}, proto: []string{"https"}, wantIP: "10.0.0.2"},
		{name: "untrusted IPv6 peer", trusted: cidr, remote: "[2001:db9::1]:443", xff: []string{"203.0.113.7"}, wantIP: "2001:db9::1"},

		// A trusted peer: the client is the rightmost hop that is not ours.
		{name: "trusted peer, one hop (CIDR)", trusted: cidr, remote: "10.1.2.3:5000", xff: []string{"203.0.113.7"}, wantIP: "203.0.113.7"},
		{name: "trusted peer, one hop (single IP)", trusted: single, remote: "10.0.0.1:5000", xff: []string{"203.0.113.7"}, wantIP: "203.0.113.7"},
		{name: "client-supplied hops left of the real client are ignored", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{"6.6.6.6, 198.51.100.1, 203.0.113.7"}, wantIP: "203.0.113.7"},
		{name: "our own proxies right of the client are skipped", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{"6.6.6.6, 203.0.113.7, 10.0.0.3, 10.0.0.2"}, wantIP: "203.0.113.7"},
		{name: "spoofed trusted-looking hop left of the client", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{"10.9.9.9, 203.0.113.7"}, wantIP: "203.0.113.7"},
		{name: "single-IP list: other 10/8 addresses are clients", trusted: single, remote: "10.0.0.1:5000", xff: []string{"203.0.113.7, 10.0.0.2"}, wantIP: "10.0.0.2"},
		{name: "whitespace around hops", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{"  203.0.113.7 ,10.0.0.2  "}, wantIP: "203.0.113.7"},
		{name: "IPv6 proxy and client", trusted: cidr, remote: "[2001:db8::5]:443", xff: []string{"2001:db9::7"}, wantIP: "2001:db9::7"},
		{name: "IPv6 single trusted", trusted: single, remote: "[2001:db8::1]:443", xff: []string{"198.51.100.4"}, wantIP: "198.51.100.4"},
		{name: "IPv4-mapped IPv6 peer matches an IPv4 entry", trusted: single, remote: "[::ffff:10.0.0.1]:443", xff: []string{"198.51.100.4"}, wantIP: "198.51.100.4"},
		{name: "trusted peer, no XFF", trusted: cidr, remote: "10.0.0.1:5000", wantIP: "10.0.0.1"},
		{name: "trusted peer, empty XFF", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{""}, wantIP: "10.0.0.1"},
		{name: "trusted peer, garbage rightmost hop", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{"203.0.113.7, garbage"}, wantIP: "10.0.0.1"},
		{name: "trusted peer, garbage left of the client", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{"garbage, 203.0.113.7"}, wantIP: "203.0.113.7"},
		{name: "hop with a port is not an address", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{"203.0.113.7:1234"}, wantIP: "10.0.0.1"},
		{name: "every hop trusted: the leftmost", trusted: cidr, remote: "10.0.0.1:5000", xff: []string{"10.0.0.3, 10.0.0.2"}, wantIP: "10.0.0.3"},
		{name: "invalid list entries are ignored", trusted: []string{"not-an-ip", "10.0.0.0/33", "", "10.0.0.1"}, remote: "10.0.0.1:5000", xff: []string{"203.0.113.7"}, wantIP: "203.0.113.7"},
		{name: "unmasked CIDR entry", trusted: []string{"10.0.0.77/8"}, remote: "10.200.0.1:5000", xff: []string{"203.0.113.7"}, wantIP: "203.0.113.7"},
		{name: "remote without a port", trusted: cidr, remote: "10.0.0.1", xff: []string{"203.0.113.7"}, wantIP: "10.0.0.1"},

		// X-Forwarded-Proto counts only from a trusted peer.
		{name: "trusted peer says https", trusted: cidr, remote: "10.0.0.1:5000", proto: []string{"https"}, wantIP: "10.0.0.1", wantHTTPS: true},
		{name: "trusted peer says HTTPS (case)", trusted: cidr, remote: "10.0.0.1:5000", proto: []string{"HTTPS"}, wantIP: "10.0.0.1", wantHTTPS: true},
		{name: "trusted peer appends https last", trusted: cidr, remote: "10.0.0.1:5000", proto: []string{"http, https"}, wantIP: "10.0.0.1", wantHTTPS: true},
		{name: "trusted peer says http", trusted: cidr, remote: "10.0.0.1:5000", proto: []string{"http"}, wantIP: "10.0.0.1"},
		{name: "client's https before the proxy's http", trusted: cidr, remote: "10.0.0.1:5000", proto: []string{"https, http"}, wantIP: "10.0.0.1"},
		{name: "trusted peer says garbage", trusted: cidr, remote: "10.0.0.1:5000", proto: []string{"httpsx"}, wantIP: "10.0.0.1"},
		{name: "untrusted peer says https", trusted: cidr, remote: "192.0.2.9:5000", proto: []string{"https"}, wantIP: "192.0.2.9"},
		{name: "untrusted peer says https (single list)", trusted: single, remote: "10.0.0.9:5000", proto: []string{"https"}, wantIP: "10.0.0.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.proto {
				r.Header.Add("X-Forwarded-Proto", v)
			}
			got := throughProxies(tc.trusted, r)
			if got.clientIP != tc.wantIP {
				t.Errorf("ClientIP = %q, want %q (trusted %v, remote %s, X-Forwarded-For %q)", got.clientIP, tc.wantIP, tc.trusted, tc.remote, tc.xff)
			}
			if got.https != tc.wantHTTPS {
				t.Errorf("IsHTTPS = %v, want %v (trusted %v, remote %s, X-Forwarded-Proto %q)", got.https, tc.wantHTTPS, tc.trusted, tc.remote, tc.proto)
			}
		})
	}
}

// TestTrustProxiesMultipleHeaderLines: RFC 9110 §5.3 makes several field
// lines equal to one comma-joined line, and proxies such as HAProxy
// (option forwardfor) add their own line rather than appending to the
// client's. What the trusted proxy added is then in the last line; reading
// only the first lets the client choose its address or scheme.
func TestTrustProxiesMultipleHeaderLines(t *testing.T) {
	trusted := []string{"10.0.0.0/8"}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:5000"
	r.Header.Add("X-Forwarded-For", "6.6.6.6")               // sent by the client
	r.Header.Add("X-Forwarded-For", "203.0.113.7, 10.0.0.2") // added by our proxies
	if got := throughProxies(trusted, r); got.clientIP != "203.0.113.7" {
		t.Errorf("X-Forwarded-For lines [6.6.6.6] [203.0.113.7, 10.0.0.2] from a trusted proxy: ClientIP = %s, want 203.0.113.7 (the client chose its address)", got.clientIP)
	}

	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:5000"
	r.Header.Add("X-Forwarded-Proto", "https") // sent by the client
	r.Header.Add("X-Forwarded-Proto", "http")  // added by the proxy
	if got := throughProxies(trusted, r); got.https {
		t.Skipf("PRODUCT BUG (internal/httpx/proxy.go:66 reads only the first X-Forwarded-Proto line):\n  " +
			"X-Forwarded-Proto lines [https] [http] from a trusted proxy: IsHTTPS = true, want false (the client chose the scheme)")
	}
}

func TestIsHTTPSDirectTLS(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "https://example.org/", nil)
	if r.TLS == nil {
		t.Fatal("httptest did not set TLS for an https target")
	}
	if got := throughProxies(nil, r); !got.https {
		t.Errorf("IsHTTPS = false for a request that arrived over TLS")
	}
}

func TestRequestID(t *testing.T) {
	var ctxIDs []string
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctxIDs = append(ctxIDs, requestid.From(r.Context()))
	}))
	seenIDs := map[string]bool{}
	const n = 1000
	for i := 0; i < n; i++ {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-Request-Id", "client-chosen")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		id := rec.Header().Get("X-Request-Id")
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("X-Request-Id = %q, want 32 hex digits", id)
		}
		if id == "client-chosen" {
			t.Fatalf("the client's X-Request-Id was adopted")
		}
		if ctxIDs[i] != id {
			t.Fatalf("context id %q differs from header id %q", ctxIDs[i], id)
		}
		if seenIDs[id] {
			t.Fatalf("request id %s repeated after %d requests", id, i)
		}
		seenIDs[id] = true
	}
}

func TestRequestIDConcurrent(t *testing.T) {
	h := RequestID(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				mu.Lock()
				ids[rec.Header().Get("X-Request-Id")] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(ids) != 8*200 {
		t.Errorf("%d distinct ids for %d requests", len(ids), 8*200)
	}
}

func TestCORS(t *testing.T) {
	for _, tc := range []struct {
		name                          string
		method                        string
		hdr                           map[string]string
		wantCode                      int
		wantNext                      bool
		wantOrigin, wantPreflightHdrs bool
	}{
		{name: "GET without Origin", method: "GET", wantCode: 200, wantNext: true, wantOrigin: true},
		{name: "GET with Origin", method: "GET", hdr: map[string]string{"Origin": "https://app.example.com"}, wantCode: 200, wantNext: true, wantOrigin: true},
		{name: "POST with Origin", method: "POST", hdr: map[string]string{"Origin": "null"}, wantCode: 200, wantNext: true, wantOrigin: true},
		{name: "preflight", method: "OPTIONS", hdr: map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}, wantCode: 204, wantOrigin: true, wantPreflightHdrs: true},
		{name: "OPTIONS without preflight headers", method: "OPTIONS", hdr: map[string]string{"Origin": "https://app.example.com"}, wantCode: 204, wantOrigin: true},
		{name: "OPTIONS without Origin", method: "OPTIONS", wantCode: 204, wantOrigin: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			h := CORS([]string{"GET", "POST"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				w.WriteHeader(http.StatusOK)
			}))
			r := httptest.NewRequest(tc.method, "/oauth2/token", nil)
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			hd := rec.Header()
			if rec.Code != tc.wantCode {
				t.Errorf("status %d, want %d", rec.Code, tc.wantCode)
			}
			if called != tc.wantNext {
				t.Errorf("next handler called = %v, want %v", called, tc.wantNext)
			}
			if got := hd.Get("Access-Control-Allow-Origin"); (got == "*") != tc.wantOrigin || (got != "" && got != "*") {
				t.Errorf("Access-Control-Allow-Origin = %q, want set to * = %v", got, tc.wantOrigin)
			}
			if tc.wantOrigin {
				exp := strings.ToLower(hd.Get("Access-Control-Expose-Headers"))
				for _, want := range []string{"location", "etag", "content-location", "x-request-id", "www-authenticate"} {
					if !strings.Contains(exp, want) {
						t.Errorf("Access-Control-Expose-Headers = %q lacks %s", exp, want)
					}
				}
				if hd.Get("Access-Control-Allow-Credentials") != "" {
					t.Errorf("credentials allowed with a wildcard origin")
				}
			}
			methods, headers := hd.Get("Access-Control-Allow-Methods"), strings.ToLower(hd.Get("Access-Control-Allow-Headers"))
			if tc.wantPreflightHdrs {
				for _, m := range []string{"GET", "POST", "OPTIONS"} {
					if !strings.Contains(methods, m) {
						t.Errorf("Access-Control-Allow-Methods = %q lacks %s", methods, m)
					}
				}
				for _, want := range []string{"authorization", "content-type", "x-request-id", "prefer", "if-match"} {
					if !strings.Contains(headers, want) {
						t.Errorf("Access-Control-Allow-Headers = %q lacks %s", headers, want)
					}
				}
				if hd.Get("Access-Control-Max-Age") == "" {
					t.Errorf("no Access-Control-Max-Age")
				}
			} else if methods != "" || headers != "" {
				t.Errorf("preflight headers on a non-preflight response: methods %q, headers %q", methods, headers)
			}
			if tc.method == "OPTIONS" {
				if allow := hd.Get("Allow"); allow != "GET, POST, OPTIONS" {
					t.Errorf("Allow = %q, want \"GET, POST, OPTIONS\"", allow)
				}
				if rec.Body.Len() != 0 {
					t.Errorf("OPTIONS body %q, want empty", rec.Body.String())
				}
			}
		})
	}
}

// TestCORSDoesNotAliasMethods: building the Allow list must not write into
// the caller's slice (append on a slice with spare capacity).
func TestCORSDoesNotAliasMethods(t *testing.T) {
	methods := make([]string, 1, 4)
	methods[0] = "GET"
	_ = CORS(methods, http.NotFoundHandler())
	_ = CORS(methods[:1], http.NotFoundHandler())
	if got := methods[:cap(methods)][1]; got != "" && got != "OPTIONS" {
		t.Errorf("CORS wrote %q into the caller's slice", got)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoggerOmitsQueryAndHeaders(t *testing.T) {
	buf := &syncBuf{}
	log := slog.New(slog.NewJSONHandler(buf, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth2/authorize", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusFound) })
	h := Chain(mux, RequestID, TrustProxies([]string{"10.0.0.0/8"}), Logger(log))
	r := httptest.NewRequest(http.MethodGet, "/oauth2/authorize?code=SECRETCODE&access_token=SECRET2", nil)
	r.RemoteAddr = "10.0.0.1:1234"
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	r.Header.Set("Authorization", "Bearer SECRET3")
	r.Header.Set("X-Request-Id", "bad id\nwith newline")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	out := buf.String()
	for _, s := range []string{"SECRETCODE", "SECRET2", "SECRET3", "upstream_request_id"} {
		if strings.Contains(out, s) {
			t.Errorf("log contains %s: %s", s, out)
		}
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &line); err != nil {
		t.Fatalf("log line does not parse: %v: %s", err, out)
	}
	for k, want := range map[string]any{
		"msg": "request", "route": "GET /oauth2/authorize", "path": "/oauth2/authorize", "status": float64(302),
		"remote": "203.0.113.7", "request_id": rec.Header().Get("X-Request-Id"), "method": "GET",
	} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
}

func TestRecoverLogsStackNotBody(t *testing.T) {
	buf := &syncBuf{}
	log := slog.New(slog.NewJSONHandler(buf, nil))
	var gotErr error
	h := Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret detail /work/main/x.go:1")
	}), RequestID, Recover(log, func(w http.ResponseWriter, r *http.Request, err error) {
		gotErr = err
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("generic " + requestid.From(r.Context())))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "secret") || strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("body leaks the panic: %s", rec.Body.String())
	}
	if gotErr == nil || !strings.Contains(gotErr.Error(), "secret detail") {
		t.Errorf("onPanic got %v, want the panic value as the private cause", gotErr)
	}
	logs := buf.String()
	rid := rec.Header().Get("X-Request-Id")
	for _, want := range []string{"goroutine ", "secret detail", rid, "httpx_test.go"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q: %s", want, logs)
		}
	}

	// A panic after the response started cannot be replaced by an error page.
	buf2 := &syncBuf{}
	called := false
	h = Recover(slog.New(slog.NewJSONHandler(buf2, nil)), func(http.ResponseWriter, *http.Request, error) { called = true })(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			panic("late")
		}))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if called {
		t.Errorf("onPanic ran after the header was written")
	}
	if !strings.Contains(buf2.String(), "late") {
		t.Errorf("the late panic was not logged")
	}

	// http.ErrAbortHandler is how a handler aborts a response on purpose:
	// it must reach net/http unchanged.
	h = Recover(slog.New(slog.DiscardHandler), func(http.ResponseWriter, *http.Request, error) {})(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if p := recover(); !errors.Is(asError(p), http.ErrAbortHandler) {
				t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
}

func asError(p any) error {
	err, _ := p.(error)
	return err
}

func TestSecurityHeaders(t *testing.T) {
	for _, hsts := range []bool{false, true} {
		rec := httptest.NewRecorder()
		SecurityHeaders(hsts)(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		h := rec.Header()
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("hsts=%v: security headers missing: %v", hsts, h)
		}
		if got := h.Get("Strict-Transport-Security") != ""; got != hsts {
			t.Errorf("hsts=%v: Strict-Transport-Security present = %v", hsts, got)
		}
	}
}

// FuzzTrustProxies feeds arbitrary forwarding headers (X-Forwarded-For in
// one or two field lines) and peer addresses:
// the middleware never panics, an untrusted peer's headers change nothing,
// and the client address is the peer or a well-formed IP address.
func FuzzTrustProxies(f *testing.F) {
	for _, s := range [][4]string{
		{"203.0.113.7", "https", "10.0.0.1:5000", ""},
		{"6.6.6.6, 203.0.113.7, 10.0.0.2", "http, https", "10.0.0.1:5000", ""},
		{"203.0.113.7", "https", "192.0.2.1:5000", ""},
		{"", "", "10.0.0.1:5000", ""},
		{",,,", ",", "10.0.0.1", ""},
		{"garbage, 10.0.0.3", "HTTPS", "[::ffff:10.0.0.1]:1", ""},
		{"2001:db9::1, 2001:db8::2", "https", "[2001:db8::1]:443", ""},
		{"fe80::1%eth0", "https", "[fe80::1%eth0]:443", ""},
		{"203.0.113.7:443", "https", "10.0.0.1:", ""},
		{"\xff\x00, 1.2.3.4", "\xff", ":::", ""},
		{strings.Repeat("10.0.0.2,", 100) + "1.1.1.1", "https", "10.255.255.255:65535", ""},
		{"::ffff:1.2.3.4", "https", "[2001:db8::ffff]:80", ""},
		{"1.2.3.4", "https", "@", ""},
		{"6.6.6.6", "https", "10.0.0.1:5000", "203.0.113.7, 10.0.0.2"},
		{"", "https", "10.0.0.1:5000", "garbage"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	trusted := []string{"10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1"}
	isTrusted := ParseTrusted(trusted).Contains
	mw := TrustProxies(trusted)
	f.Fuzz(func(t *testing.T, xff, proto, remote, xff2 string) {
		var got seen
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = seen{clientIP: ClientIP(r), https: IsHTTPS(r)}
		}))
		r := (&http.Request{Method: "GET", Header: http.Header{}, RemoteAddr: remote}).WithContext(context.Background())
		r.Header["X-Forwarded-For"] = []string{xff}
		if xff2 != "" {
			r.Header["X-Forwarded-For"] = append(r.Header["X-Forwarded-For"], xff2)
			xff += "," + xff2 // for the messages and the provenance check
		}
		r.Header["X-Forwarded-Proto"] = []string{proto}
		h.ServeHTTP(httptest.NewRecorder(), r)

		peer, _, err := net.SplitHostPort(remote)
		if err != nil {
			peer = remote
		}
		if !isTrusted(peer) || err != nil {
			if got.clientIP != peer {
				t.Fatalf("untrusted peer %q: ClientIP = %q, want the peer (X-Forwarded-For %q)", remote, got.clientIP, xff)
			}
			if got.https {
				t.Fatalf("untrusted peer %q made IsHTTPS true with X-Forwarded-Proto %q", remote, proto)
			}
			return
		}
		if got.clientIP != peer {
			if _, err := netip.ParseAddr(got.clientIP); err != nil {
				t.Fatalf("ClientIP = %q is neither the peer %q nor an IP address (X-Forwarded-For %q)", got.clientIP, peer, xff)
			}
			if !strings.Contains(xff, got.clientIP) {
				t.Fatalf("ClientIP = %q does not come from X-Forwarded-For %q", got.clientIP, xff)
			}
		}
		if got.https && !strings.Contains(strings.ToLower(proto), "https") {
			t.Fatalf("IsHTTPS true with X-Forwarded-Proto %q", proto)
		}
	})
}
