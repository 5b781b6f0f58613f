package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"smartgate/internal/discovery"
	"smartgate/internal/problem"
)

// headerList splits a comma-separated header value into its tokens.
func headerList(v string) map[string]bool {
	out := map[string]bool{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out[strings.ToLower(s)] = true
		}
	}
	return out
}

func TestJWKSHeaders(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		name     string
		method   string
		origin   string
		wantCORS bool
	}{
		{name: "GET without Origin", method: http.MethodGet},
		{name: "GET with Origin", method: http.MethodGet, origin: "https://app.example.com", wantCORS: true},
		{name: "HEAD with Origin", method: http.MethodHead, origin: "https://app.example.com", wantCORS: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/oauth2/jwks", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			rec := ts.do(r)
			h := rec.Header()
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body.String())
			}
			if got := h.Get("Content-Type"); got != "application/jwk-set+json" {
				t.Errorf("Content-Type = %q, want application/jwk-set+json", got)
			}
			if got := h.Get("Cache-Control"); got != "public, max-age=900" {
				t.Errorf("Cache-Control = %q, want \"public, max-age=900\" (keys.jwks_max_age defaults to 15m)", got)
			}
			// The answer does not depend on Origin (so a shared cache may
			// serve it to any browser): always the wildcard.
			acao := h.Get("Access-Control-Allow-Origin")
			if acao != "*" {
				t.Errorf("Access-Control-Allow-Origin = %q, want *", acao)
			}
			if got := h.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("Access-Control-Allow-Credentials = %q; bearer-token endpoints never allow credentials", got)
			}
			exposed := headerList(h.Get("Access-Control-Expose-Headers"))
			for _, want := range []string{"X-Request-Id", "Location", "ETag", "Content-Location"} {
				if !exposed[strings.ToLower(want)] {
					t.Errorf("Access-Control-Expose-Headers = %q lacks %s", h.Get("Access-Control-Expose-Headers"), want)
				}
			}
		})
	}
}

func TestJWKSBody(t *testing.T) {
	ts := newTestServer(t)
	rec := ts.get(t, "/oauth2/jwks")
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatalf("JWKS does not parse: %v\n%s", err, rec.Body.String())
	}
	algs := map[string]bool{}
	for _, k := range set.Keys {
		alg, _ := k["alg"].(string)
		algs[alg] = true
		if k["kid"] == nil || k["kty"] == nil {
			t.Errorf("key %v lacks kid or kty", k)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v carries the private member %q", k["kid"], private)
			}
		}
	}
	for _, want := range []string{"ES256", "RS256"} {
		if !algs[want] {
			t.Errorf("JWKS has no %s key; algs %v", want, algs)
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		name, path, reqHeaders string
	}{
		{"jwks with Authorization", "/oauth2/jwks", "authorization"},
		{"jwks with several headers", "/oauth2/jwks", "Authorization, Content-Type, X-Request-Id"},
		{"openid-configuration", "/.well-known/openid-configuration", "authorization"},
		{"smart-configuration", "/fhir/.well-known/smart-configuration", "authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodOptions, tc.path, nil)
			r.Header.Set("Origin", "https://app.example.com")
			r.Header.Set("Access-Control-Request-Method", "GET")
			r.Header.Set("Access-Control-Request-Headers", tc.reqHeaders)
			rec := ts.do(r)
			h := rec.Header()
			if rec.Code != http.StatusNoContent {
				t.Fatalf("OPTIONS %s: status %d, want 204; body %s", tc.path, rec.Code, rec.Body.String())
			}
			if got := h.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin = %q, want *", got)
			}
			methods := headerList(h.Get("Access-Control-Allow-Methods"))
			if !methods["get"] {
				t.Errorf("Access-Control-Allow-Methods = %q lacks GET", h.Get("Access-Control-Allow-Methods"))
			}
			if methods["post"] || methods["delete"] {
				t.Errorf("Access-Control-Allow-Methods = %q allows methods the route does not serve", h.Get("Access-Control-Allow-Methods"))
			}
			allowed := headerList(h.Get("Access-Control-Allow-Headers"))
			for _, want := range strings.Split(tc.reqHeaders, ",") {
				if !allowed[strings.ToLower(strings.TrimSpace(want))] {
					t.Errorf("Access-Control-Allow-Headers = %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
				}
			}
			if h.Get("Access-Control-Max-Age") == "" {
				t.Errorf("no Access-Control-Max-Age: every request would repeat the preflight")
			}
			if rec.Body.Len() != 0 {
				t.Errorf("preflight body %q, want none", rec.Body.String())
			}
			if h.Get("X-Request-Id") == "" {
				t.Errorf("preflight has no X-Request-Id")
			}
		})
	}
}

// TestNoCORSOnPages: DESIGN.md allows CORS for the API endpoints only; pages
// and operational endpoints never answer cross-origin JavaScript.
func TestNoCORSOnPages(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/docs/errors"},
		{http.MethodGet, "/"},
		{http.MethodGet, "/healthz"},
		{http.MethodGet, "/readyz"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/static/style.css"},
		{http.MethodOptions, "/docs/errors"},
		{http.MethodOptions, "/"},
		{http.MethodOptions, "/healthz"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		r.Header.Set("Origin", "https://app.example.com")
		if tc.method == http.MethodOptions {
			r.Header.Set("Access-Control-Request-Method", "GET")
			r.Header.Set("Access-Control-Request-Headers", "authorization")
		}
		rec := ts.do(r)
		for k := range rec.Header() {
			if strings.HasPrefix(strings.ToLower(k), "access-control-") {
				t.Errorf("%s %s with Origin: response carries %s: %q", tc.method, tc.path, k, rec.Header().Get(k))
			}
		}
		if tc.method == http.MethodOptions && rec.Code < 400 {
			t.Errorf("%s %s preflight: status %d, want it refused", tc.method, tc.path, rec.Code)
		}
	}
}

func TestDiscoveryNotAvailable(t *testing.T) {
	ts := newTestServer(t)
	for _, d := range discovery.Documents {
		t.Run(d.Name, func(t *testing.T) {
			_, missing := d.Render(ts.s.Features())
			if len(missing) == 0 {
				t.Skipf("%s is complete and served now; this test covers the not-yet-served case", d.Path)
			}
			rec := ts.get(t, d.Path, "Origin", "https://app.example.com")
			if rec.Code != http.StatusNotFound {
				t.Fatalf("GET %s: status %d, want 404", d.Path, rec.Code)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("GET %s: body does not parse: %v\n%s", d.Path, err, rec.Body.String())
			}
			if body["error"] != "not_found" {
				t.Errorf("error = %q, want not_found", body["error"])
			}
			if want := testIssuer + "/docs/errors#discovery_not_available"; body["error_uri"] != want {
				t.Errorf("error_uri = %q, want %q", body["error_uri"], want)
			}
			desc := body["error_description"]
			for _, f := range missing {
				if !strings.Contains(desc, f) {
					t.Errorf("error_description %q does not name the missing field %s", desc, f)
				}
			}
			if !strings.Contains(desc, d.Path) {
				t.Errorf("error_description %q does not name the document %s", desc, d.Path)
			}
			if strings.ContainsRune(desc, '?') || strings.ContainsRune(desc, '§') {
				t.Errorf("error_description %q mangles the section sign (RFC 6749 §5.2 allows ASCII only; write \"section\")", desc)
			}
			if body["request_id"] != rec.Header().Get("X-Request-Id") {
				t.Errorf("request_id = %q, want the X-Request-Id %q", body["request_id"], rec.Header().Get("X-Request-Id"))
			}
			// Browser apps discover through fetch(): the error must be readable cross-origin.
			if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("the 404 carries no Access-Control-Allow-Origin; a browser app cannot read why discovery failed")
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		method, path string
		wantAllow    []string
		wantCT       string
	}{
		{http.MethodPost, "/oauth2/jwks", []string{"GET", "OPTIONS"}, "application/json"},
		{http.MethodDelete, "/oauth2/jwks", []string{"GET", "OPTIONS"}, "application/json"},
		{http.MethodPost, "/healthz", []string{"GET"}, "application/json"},
		{http.MethodPut, "/docs/errors", []string{"GET"}, "text/html"},
		{http.MethodPost, "/", []string{"GET"}, "text/html"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader("x=1"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := ts.do(r)
		desc := tc.method + " " + tc.path
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d, want 405", desc, rec.Code)
			continue
		}
		allow := headerList(rec.Header().Get("Allow"))
		for _, m := range tc.wantAllow {
			if !allow[strings.ToLower(m)] {
				t.Errorf("%s: Allow = %q lacks %s", desc, rec.Header().Get("Allow"), m)
			}
		}
		if allow[strings.ToLower(tc.method)] {
			t.Errorf("%s: Allow = %q lists the refused method", desc, rec.Header().Get("Allow"))
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.wantCT) {
			t.Errorf("%s: Content-Type %q, want %s", desc, ct, tc.wantCT)
		}
		if !strings.Contains(rec.Body.String(), "method_not_allowed") {
			t.Errorf("%s: body does not name method_not_allowed: %s", desc, rec.Body.String())
		}
		if tc.wantCT == "application/json" {
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Errorf("%s: body does not parse: %v", desc, err)
			} else if body["error"] != "invalid_request" || !strings.Contains(body["error_description"], tc.method) {
				t.Errorf("%s: body %v, want invalid_request naming the method", desc, body)
			}
		}
	}
}

func TestErrorsPageListsEveryID(t *testing.T) {
	ts := newTestServer(t)
	rec := ts.get(t, "/docs/errors")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	body := rec.Body.String()
	entries := problem.Entries()
	if len(entries) == 0 {
		t.Fatal("the catalogue is empty")
	}
	for _, e := range entries {
		if !strings.Contains(body, `id="`+string(e.ID)+`"`) {
			t.Errorf("/docs/errors has no anchor id=%q (error_uri fragments point at it)", e.ID)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct{ method, path, accept string }{
		{http.MethodGet, "/oauth2/jwks", ""},
		{http.MethodGet, "/docs/errors", "text/html"},
		{http.MethodGet, "/", "text/html"},
		{http.MethodGet, "/static/style.css", ""},
		{http.MethodGet, "/healthz", ""},
		{http.MethodGet, "/nope", "text/html"},
		{http.MethodGet, "/fhir/Patient/1", ""},
		{http.MethodPost, "/oauth2/jwks", ""},
		{http.MethodGet, "/.well-known/openid-configuration", ""},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		rec := ts.do(r)
		h := rec.Header()
		desc := tc.method + " " + tc.path
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", desc, got)
		}
		if got := h.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s: X-Frame-Options = %q, want DENY", desc, got)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy = %q lacks frame-ancestors 'none'", desc, csp)
		}
		if got := h.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("%s: Strict-Transport-Security = %q on an http:// issuer", desc, got)
		}
	}
}

func TestReadyz(t *testing.T) {
	ts := newTestServer(t)
	rec := ts.get(t, "/readyz")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var body struct {
		Status string `json:"status"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body does not parse: %v\n%s", err, rec.Body.String())
	}
	if body.Status != "ready" {
		t.Errorf("status = %q, want ready", body.Status)
	}
	names := map[string]bool{}
	for _, c := range body.Checks {
		names[c.Name] = true
		if !c.OK {
			t.Errorf("check %s is not ok on a fresh server", c.Name)
		}
	}
	for _, want := range []string{"database", "signing_keys", "changes"} {
		if !names[want] {
			t.Errorf("no %s check in %s", want, rec.Body.String())
		}
	}

	rec = ts.get(t, "/healthz")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"ok"`) {
		t.Errorf("GET /healthz: %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body.String())
	}
}

// TestMetricsRouteLabel: the route label is the ServeMux pattern that
// matched (r.Pattern, "METHOD /path" as registered), never the raw path,
// so unknown paths cannot blow up label cardinality.
func TestMetricsRouteLabel(t *testing.T) {
	ts := newTestServer(t)
	for _, target := range []string{"/oauth2/jwks", "/oauth2/jwks", "/nope-cardinality-1", "/nope/cardinality-2"} {
		ts.get(t, target)
	}
	ts.do(httptest.NewRequest(http.MethodPost, "/oauth2/jwks", nil))
	propfind := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	propfind.Method = "PROPFIND"
	ts.do(propfind)

	rec := ts.get(t, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^smartgate_http_requests_total\{code="200",method="GET",route="GET /oauth2/jwks"\} 2$`),
		regexp.MustCompile(`(?m)^smartgate_http_requests_total\{code="405",method="POST",route="/oauth2/jwks"\} 1$`),
		regexp.MustCompile(`(?m)^smartgate_http_requests_total\{code="404",method="GET",route="/"\} 2$`),
		regexp.MustCompile(`(?m)^smartgate_http_requests_total\{code="405",method="other",route="/healthz"\} 1$`),
		regexp.MustCompile(`(?m)^smartgate_http_request_duration_seconds_count\{route="GET /oauth2/jwks"\} 2$`),
	} {
		if !want.MatchString(body) {
			t.Errorf("/metrics has no line matching %s; smartgate lines:\n%s", want, grepLines(body, "smartgate_http_requests_total"))
		}
	}
	if strings.Contains(body, "cardinality-") {
		t.Errorf("/metrics carries a raw request path as a label:\n%s", grepLines(body, "cardinality-"))
	}
	if strings.Contains(body, "PROPFIND") {
		t.Errorf("/metrics carries an unbounded method label:\n%s", grepLines(body, "PROPFIND"))
	}
	for _, want := range []string{"smartgate_changes_staleness_seconds", "smartgate_audit_queue_length", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestStaticFiles(t *testing.T) {
	ts := newTestServer(t)
	rec := ts.get(t, "/static/style.css")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /static/style.css: status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("Content-Type %q, want text/css", ct)
	}
	if rec.Body.Len() == 0 {
		t.Errorf("empty style sheet")
	}
	// Nothing outside web/static is reachable, however the path is spelled.
	for _, target := range []string{
		"/static/", "/static/nope.css", "/static/../../etc/passwd", "/static/%2e%2e/", "/static/%2e%2e/%2e%2e/etc/passwd",
		"/static/..%2fweb.go", "/static/%2e%2e%2fweb.go", "/static/..%5cweb.go", "/static/style.css/", "/static/./style.css/..",
		"/static/templates/layout.html", "/static//etc/passwd", "/static/%00style.css",
	} {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Header.Set("Accept", "text/html")
		rec := ts.do(r)
		body := rec.Body.String()
		if rec.Code == http.StatusOK || strings.Contains(body, "root:") || strings.Contains(body, "package web") || strings.Contains(body, "{{define") {
			t.Errorf("GET %s: status %d serves something outside the static tree:\n%s", target, rec.Code, truncate(body))
		}
		checkResponse(t, "GET "+target, r, rec, expect{})
	}
}

// TestRequestLogsOmitQuery: codes and tokens travel in query strings; the
// request log (and the error log) carry the path only.
func TestRequestLogsOmitQuery(t *testing.T) {
	ts := newTestServer(t)
	for _, target := range []string{"/oauth2/jwks", "/nope", "/fhir/Patient", "/oauth2/authorize", "/docs/errors", "/readyz"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			r := httptest.NewRequest(m, target+"?code=SECRETCODE&access_token=SECRET2&state=x", nil)
			r.Header.Set("Authorization", "Bearer SECRET3")
			r.Header.Set("Cookie", "session=SECRET4")
			ts.do(r)
		}
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) || !strings.Contains(logs, `"path":"/oauth2/jwks"`) {
		t.Fatalf("no request log lines captured; the test proves nothing:\n%s", truncate(logs))
	}
	for _, secret := range []string{"SECRETCODE", "SECRET2", "SECRET3", "SECRET4"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %s:\n%s", secret, grepLines(logs, secret))
		}
	}
}

// TestRequestLogLine checks the fields of the one line per request.
func TestRequestLogLine(t *testing.T) {
	ts := newTestServer(t)
	r := httptest.NewRequest(http.MethodGet, "/oauth2/jwks", nil)
	r.Header.Set("X-Request-Id", "upstream-123")
	rec := ts.do(r)
	rid := rec.Header().Get("X-Request-Id")
	if rid == "upstream-123" {
		t.Errorf("an incoming X-Request-Id was adopted as ours")
	}
	var line map[string]any
	for _, l := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, rid) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line does not parse: %v: %s", err, l)
			}
		}
	}
	if line == nil {
		t.Fatalf("no request log line with request_id %s", rid)
	}
	for k, want := range map[string]any{
		"request_id": rid, "method": "GET", "route": "GET /oauth2/jwks", "path": "/oauth2/jwks",
		"status": float64(200), "upstream_request_id": "upstream-123", "remote": "192.0.2.1",
	} {
		if line[k] != want {
			t.Errorf("log field %s = %v, want %v (line %v)", k, line[k], want, line)
		}
	}
}

// TestCacheableCORSResponseVaries: /oauth2/jwks is "public, max-age=900",
// so shared caches keep it. A response whose CORS headers depend on Origin
// must say so with Vary: Origin on every answer (Fetch standard, "CORS
// protocol and HTTP caches"), or carry Access-Control-Allow-Origin: *
// unconditionally; otherwise a cache that stored the no-Origin answer serves
// it to browsers without the CORS header, and key discovery fails in the
// browser until the entry expires.
func TestCacheableCORSResponseVaries(t *testing.T) {
	ts := newTestServer(t)
	var fs []finding
	for _, path := range []string{"/oauth2/jwks"} {
		rec := ts.get(t, path)
		if !strings.HasPrefix(rec.Header().Get("Cache-Control"), "public") {
			continue
		}
		vary := strings.ToLower(strings.Join(rec.Header().Values("Vary"), ","))
		if rec.Header().Get("Access-Control-Allow-Origin") != "*" && !strings.Contains(vary, "origin") {
			fs = append(fs, finding{detail: "GET " + path + " without Origin: cacheable (" + rec.Header().Get("Cache-Control") + "), no Access-Control-Allow-Origin and no Vary: Origin"})
		}
	}
	regression(t, "CORS headers must not depend on Origin", fs)
}

// TestMethodNotAllowedNamesThePath: the 405 description names the path the
// way a client writes it, not the ServeMux pattern it was registered under
// ("/{$}" is router syntax, meaningless to a user).
func TestMethodNotAllowedNamesThePath(t *testing.T) {
	ts := newTestServer(t)
	var fs []finding
	for _, rt := range ts.s.Routes() {
		path := strings.ReplaceAll(rt.Path, "{$}", "")
		r := httptest.NewRequest(http.MethodPatch, path, nil)
		r.Header.Set("Accept", "application/json")
		rec := ts.do(r)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("PATCH %s: status %d, want 405", path, rec.Code)
			continue
		}
		body := rec.Body.String()
		if strings.Contains(body, "{$}") || strings.Contains(body, "{$") {
			fs = append(fs, finding{detail: "PATCH " + path + ": the description shows the ServeMux pattern: " + around(body, "{$}")})
		}
		if !strings.Contains(body, "PATCH") {
			t.Errorf("PATCH %s: the description does not name the refused method: %s", path, truncate(body))
		}
	}
	regression(t, "the 405 description must name the request path, not the route pattern", fs)
}

// around returns the text near the first sub in s.
func around(s, sub string) string {
	i := strings.Index(s, sub)
	if i < 0 {
		return ""
	}
	lo, hi := max(0, i-60), min(len(s), i+len(sub)+30)
	return "..." + s[lo:hi] + "..."
}

// TestErrorsLoggedOnce: DESIGN.md principle 2, every refusal is logged once,
// structured, under its request id, beside the one request line.
func TestErrorsLoggedOnce(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		method, path, errorID string
		status                int
	}{
		{http.MethodGet, "/nope", "not_found", 404},
		{http.MethodPost, "/oauth2/jwks", "method_not_allowed", 405},
		{http.MethodGet, "/oauth2/authorize", "authorize_request_invalid", 400},
		{http.MethodGet, "/fhir/Patient/1", "token_missing", 401},
		{http.MethodGet, "/fhir/Nope/1", "unsupported_resource_type", 404},
	} {
		rec := ts.do(httptest.NewRequest(tc.method, tc.path, nil))
		rid := rec.Header().Get("X-Request-Id")
		var refused, requests int
		for _, l := range strings.Split(ts.logs.String(), "\n") {
			if !strings.Contains(l, rid) {
				continue
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line does not parse: %v: %s", err, l)
			}
			switch line["msg"] {
			case "request refused":
				refused++
				if line["error_id"] != tc.errorID || line["status"] != float64(tc.status) || line["path"] != tc.path {
					t.Errorf("%s %s: refusal logged as %v, want error_id %s status %d", tc.method, tc.path, line, tc.errorID, tc.status)
				}
			case "request":
				requests++
			}
		}
		if refused != 1 || requests != 1 {
			t.Errorf("%s %s: %d refusal and %d request log lines for request %s, want 1 and 1", tc.method, tc.path, refused, requests, rid)
		}
	}
}

// TestFHIRReadSlots drives the node's admission of FHIR reads with one
// slot and an hour's longest wait: reads give their slot back (else the
// second would hang), many at once all finish, and while the slot is held
// a read waits but a write and a Bulk Data file download do not.
func TestFHIRReadSlots(t *testing.T) {
	ts := newTestServer(t, "fhir.read_slots", "1", "fhir.read_max_wait", "1h")
	for i := 0; i < 3; i++ {
		if rec := ts.get(t, "/fhir/metadata"); rec.Code != http.StatusOK {
			t.Fatalf("GET /fhir/metadata #%d: status %d", i, rec.Code)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rec := ts.get(t, "/fhir/metadata"); rec.Code != http.StatusOK {
				t.Errorf("concurrent GET /fhir/metadata: status %d", rec.Code)
			}
		}()
	}
	wg.Wait()

	// Take the only slot, as a long read would.
	if held, err := ts.s.reads.Enter(context.Background()); !held || err != nil {
		t.Fatalf("Enter = %v, %v; want the free slot", held, err)
	}
	read := make(chan int, 1)
	go func() { read <- ts.get(t, "/fhir/Patient?name=x").Code }()
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/fhir/Patient", strings.NewReader(`{"resourceType":"Patient"}`)),
		httptest.NewRequest(http.MethodGet, "/fhir/$export-file/job/file.ndjson", nil),
	} {
		done := make(chan int, 1)
		go func() { done <- ts.do(r).Code }()
		select {
		case code := <-done:
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: status %d; want 401", r.Method, r.URL.Path, code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %s waited for the read slot", r.Method, r.URL.Path)
		}
	}
	select {
	case code := <-read:
		t.Fatalf("a read ran (status %d) while the only slot was held", code)
	case <-time.After(100 * time.Millisecond):
	}
	ts.s.reads.Leave()
	select {
	case code := <-read:
		if code != http.StatusUnauthorized {
			t.Errorf("GET /fhir/Patient without a token: status %d; want 401", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting read did not run after the slot was given back")
	}

	body := ts.get(t, "/metrics").Body.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^smartgate_fhir_read_waiting 0$`),
		regexp.MustCompile(`(?m)^smartgate_fhir_read_overflow_total 0$`),
		regexp.MustCompile(`(?m)^smartgate_fhir_read_wait_seconds_count [1-9][0-9]*$`),
	} {
		if !want.MatchString(body) {
			t.Errorf("/metrics has no line matching %s:\n%s", want, grepLines(body, "smartgate_fhir_read"))
		}
	}
}
