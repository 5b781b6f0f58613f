package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"smartgate/internal/app"
	"smartgate/internal/audit"
	"smartgate/internal/changes"
	"smartgate/internal/config"
	"smartgate/internal/httpx"
	"smartgate/internal/problem"
)

// testIssuer is the issuer the test servers are built with; error_uri
// values start with it.
const testIssuer = "http://127.0.0.1:8080"

// syncBuffer is a log sink shared by request goroutines and the background
// feed and audit goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a real server in-process: SQLite in a temp dir, migrated,
// with signing keys, a running change feed and audit writer, and every log
// line captured as JSON.
type testServer struct {
	s    *Server
	a    *app.App
	logs *syncBuffer
}

// newTestServer starts a dev-mode node on a fresh data directory; flags
// are more configuration keys and values, in pairs.
func newTestServer(t *testing.T, flags ...string) *testServer {
	t.Helper()
	dir := t.TempDir()
	fl := map[string]string{"dev": "true", "data_dir": dir}
	for i := 0; i+1 < len(flags); i += 2 {
		fl[flags[i]] = flags[i+1]
	}
	cfg, err := config.Load(config.Options{Flags: fl})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, logger, app.Options{InitKeys: true})
	if err != nil {
		t.Fatalf("app.Open: %v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	feed := changes.New(a.Store, cfg.Changes.PollInterval.D(), logger)
	aw := audit.New(a.Store, audit.Options{BatchSize: cfg.Audit.BatchSize, FlushInterval: cfg.Audit.FlushInterval.D(), QueueSize: cfg.Audit.QueueSize, Log: logger})
	srv := New(a, testIssuer, feed, aw)
	if err := srv.Start(runCtx); err != nil {
		stop()
		a.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		stop()
		aw.Close()
		_ = a.Close() // may already be closed by the test; a second close is harmless
	})
	return &testServer{s: srv, a: a, logs: logs}
}

// do sends r through the whole handler.
func (ts *testServer) do(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	ts.s.Handler().ServeHTTP(rec, r)
	return rec
}

func (ts *testServer) get(t *testing.T, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return ts.do(r)
}

// leakMarkers are strings no response may carry: stack traces, SQL and
// driver text, file system paths and raw Go error strings.
var leakMarkers = []struct{ kind, s string }{
	{"stack trace", "goroutine "}, {"stack trace", "panic"}, {"stack trace", ".go:"},
	{"SQL", "SELECT"}, {"SQL", "INSERT"}, {"SQL", "UPDATE "}, {"SQL", "sqlite"}, {"SQL", "SQLSTATE"}, {"SQL", "pq:"}, {"SQL", "pgx"},
	{"file path", "/work/"}, {"file path", "/root/"}, {"file path", "/usr/"}, {"file path", "/home/"}, {"file path", "/tmp/"}, {"file path", "smartgate-data"},
	{"Go error", "invalid character"}, {"Go error", "unexpected EOF"}, {"Go error", "strconv."}, {"Go error", "runtime error"},
	{"Go error", "nil pointer"}, {"Go error", "http: "}, {"Go error", "json: "},
}

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// randomToken is a run of base64url or hex characters long enough to be a
// random value (a CSRF token, a request id, a nonce). Such values are
// blanked before the leak markers are looked for: one CSRF cookie,
// "...URqMpgxoiC...", once held "pgx" by chance and failed CI.
var randomToken = regexp.MustCompile(`[A-Za-z0-9_-]{20,}`)

// leaks reports whether s holds marker outside its random tokens (the
// scrub only runs when the marker is there at all: bodies reach 1 MiB).
func leaks(s, marker string) bool {
	return strings.Contains(s, marker) && strings.Contains(randomToken.ReplaceAllString(s, "~"), marker)
}

// expect says what a response to one request may look like.
type expect struct {
	allow5xx bool // a 5xx is the right answer (store closed, panic)
	// metricsBody: the Prometheus exposition names the SQLite pools
	// (db_name="sqlite_writer") by design; only that marker is excused.
	metricsBody bool
	surface     *problem.Surface // nil: derive from the path and Accept
	// statusDoc: the body is /readyz's status document (status and checks),
	// which load balancers read; it is not an error object.
	statusDoc bool
	tempDir   string // the data dir, which must not appear either
}

// finding is one broken rule: rule groups findings for the summary.
type finding struct{ rule, detail string }

// checkResponse applies every no-leak and error-shape rule to one response.
func checkResponse(t *testing.T, desc string, r *http.Request, rec *httptest.ResponseRecorder, ex expect) {
	t.Helper()
	for _, f := range responseFindings(r, rec, ex) {
		t.Errorf("%s: %s", desc, f.detail)
	}
}

// responseFindings lists the rules one response breaks.
func responseFindings(r *http.Request, rec *httptest.ResponseRecorder, ex expect) []finding {
	var out []finding
	add := func(rule, format string, args ...any) {
		out = append(out, finding{rule, fmt.Sprintf(format, args...)})
	}
	body := rec.Body.String()
	var headerText strings.Builder
	for k, vs := range rec.Header() {
		for _, v := range vs {
			fmt.Fprintf(&headerText, "%s: %s\n", k, v)
		}
	}
	for _, m := range leakMarkers {
		if ex.metricsBody && m.s == "sqlite" {
			continue
		}
		if leaks(body, m.s) {
			add("body leaks "+m.s, "status %d, body leaks %s (%q):\n%s", rec.Code, m.kind, m.s, truncate(body))
		}
		if leaks(headerText.String(), m.s) {
			add("header leaks "+m.s, "headers leak %s (%q):\n%s", m.kind, m.s, headerText.String())
		}
	}
	if ex.tempDir != "" && strings.Contains(body, ex.tempDir) {
		add("body leaks data dir", "body contains the data dir %s", ex.tempDir)
	}
	if rec.Code >= 500 && !ex.allow5xx {
		add("5xx", "status %d, want < 500; body:\n%s", rec.Code, truncate(body))
	}
	rid := rec.Header().Get("X-Request-Id")
	if !requestIDPattern.MatchString(rid) {
		add("X-Request-Id", "X-Request-Id = %q, want 32 hex digits", rid)
	}
	if rec.Code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
		add("405 Allow", "405 without an Allow header")
	}
	if rec.Code < 400 || ex.statusDoc {
		return out
	}
	if rid != "" && !strings.Contains(body, rid) {
		add(fmt.Sprintf("status %d body lacks request id", rec.Code), "status %d, the body does not carry the request id %s: %q", rec.Code, rid, truncate(body))
	}
	return append(out, errorShapeFindings(r, rec, ex)...)
}

// errorShapeFindings checks the error body against the surface the request
// deserves: OperationOutcome under /fhir, an HTML page for browsers on
// non-API paths, RFC 6749 §5.2 JSON otherwise.
func errorShapeFindings(r *http.Request, rec *httptest.ResponseRecorder, ex expect) []finding {
	var out []finding
	add := func(rule, format string, args ...any) {
		out = append(out, finding{rule, fmt.Sprintf(format, args...)})
	}
	ct := rec.Header().Get("Content-Type")
	want := wantSurface(r)
	if ex.surface != nil {
		want = *ex.surface
	}
	rid := rec.Header().Get("X-Request-Id")
	switch want {
	case problem.SurfaceFHIR:
		if !strings.HasPrefix(ct, "application/fhir+json") {
			add("FHIR error not OperationOutcome", "status %d, Content-Type %q, want an OperationOutcome (application/fhir+json)", rec.Code, ct)
			return out
		}
		var oo struct {
			ResourceType string `json:"resourceType"`
			Issue        []struct {
				Severity string `json:"severity"`
				Code     string `json:"code"`
				Details  struct {
					Coding []struct{ System, Code string }
					Text   string `json:"text"`
				} `json:"details"`
				Diagnostics string `json:"diagnostics"`
			} `json:"issue"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil {
			add("OperationOutcome parse", "OperationOutcome does not parse: %v\n%s", err, truncate(rec.Body.String()))
			return out
		}
		if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Severity != "error" || oo.Issue[0].Code == "" ||
			len(oo.Issue[0].Details.Coding) != 1 || oo.Issue[0].Details.Coding[0].Code == "" || !strings.Contains(oo.Issue[0].Diagnostics, rid) {
			add("OperationOutcome shape", "malformed OperationOutcome: %s", truncate(rec.Body.String()))
		}
	case problem.SurfaceHTML:
		if !strings.HasPrefix(ct, "text/html") {
			add("HTML error not text/html", "status %d, Content-Type %q, want text/html for a browser page", rec.Code, ct)
		}
	default:
		if !strings.HasPrefix(ct, "application/json") {
			add("JSON error not application/json", "status %d, Content-Type %q, want application/json", rec.Code, ct)
			return out
		}
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			add("JSON error parse", "JSON error body does not parse: %v\n%s", err, truncate(rec.Body.String()))
			return out
		}
		if body["error"] == "" || body["error_description"] == "" {
			add("JSON error fields", "JSON error lacks error or error_description: %v", body)
		}
		if !strings.HasPrefix(body["error_uri"], testIssuer+"/docs/errors#") {
			add("error_uri", "error_uri = %q, want %s/docs/errors#<id>", body["error_uri"], testIssuer)
		} else if _, ok := problem.Lookup(problem.ID(strings.TrimPrefix(body["error_uri"], testIssuer+"/docs/errors#"))); !ok {
			add("error_uri id", "error_uri %q names no catalogue entry", body["error_uri"])
		}
		if body["request_id"] != rid {
			add("request_id", "request_id = %q, want the X-Request-Id %q", body["request_id"], rid)
		}
	}
	return out
}

// wantSurface is the contract (DESIGN.md: FHIR errors are OperationOutcomes,
// no HTML in a JSON API): FHIR paths get OperationOutcome, except the SMART
// discovery document, which is OAuth metadata and registered as such; the
// OAuth, discovery and admin API paths get JSON; a browser elsewhere gets a
// page; the browser pages (/docs/, /static/, /, the sign-in pages, the admin
// console and the authorization endpoint) answer in HTML.
func wantSurface(r *http.Request) problem.Surface {
	p := r.URL.Path
	switch {
	case p == "/fhir/.well-known/smart-configuration":
		return problem.SurfaceOAuth
	case p == "/fhir" || strings.HasPrefix(p, "/fhir/"):
		return problem.SurfaceFHIR
	case p == "/oauth2/authorize":
		// A browser step: HTML, except that a script asking for JSON (or
		// sending it) is told in JSON which flow it should use instead.
		acc := r.Header.Get("Accept")
		getPost := r.Method == http.MethodGet || r.Method == http.MethodPost || r.Method == http.MethodHead
		if getPost && (strings.Contains(r.Header.Get("Content-Type"), "application/json") || strings.Contains(acc, "json") && !strings.Contains(acc, "text/html")) {
			return problem.SurfaceOAuth
		}
		return problem.SurfaceHTML
	case p == "/oauth2/logout", p == "/login", p == "/login/callback", upstreamPage(p), p == "/consent", p == "/select-patient", p == "/account/apps":
		return problem.SurfaceHTML
	case p == "/developers", strings.HasPrefix(p, "/developers/"), p == "/docs/try", strings.HasPrefix(p, "/docs/try/"):
		return problem.SurfaceHTML // the developer portal and the walkthrough
	case p == "/admin", strings.HasPrefix(p, "/admin/") && !strings.HasPrefix(p, "/admin/api/"):
		return problem.SurfaceHTML // the admin console
	case strings.HasPrefix(p, "/oauth2/"), strings.HasPrefix(p, "/.well-known/"), strings.HasPrefix(p, "/admin/api/"):
		return problem.SurfaceOAuth
	case p == "/", p == "/docs/errors", p == "/favicon.ico", strings.HasPrefix(p, "/static/"):
		return problem.SurfaceHTML
	case p == "/healthz", p == "/readyz", p == "/metrics":
		return problem.SurfaceOAuth
	case strings.Contains(r.Header.Get("Accept"), "text/html"):
		return problem.SurfaceHTML
	}
	return problem.SurfaceOAuth
}

// upstreamPage reports a path the /login/upstream/{id} route serves.
func upstreamPage(p string) bool {
	id, ok := strings.CutPrefix(p, "/login/upstream/")
	return ok && id != "" && !strings.Contains(id, "/")
}

func truncate(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

// targetsFor turns the registered routes into request paths, plus unknown
// paths under every prefix.
func targetsFor(routes []Route) []string {
	var out []string
	for _, rt := range routes {
		p := strings.ReplaceAll(rt.Path, "{$}", "")
		if strings.HasSuffix(p, "/") && p != "/" {
			out = append(out, p, p+"style.css", p+"nope.txt")
			continue
		}
		out = append(out, p)
	}
	return append(out,
		"/nope", "/docs/nope", "/fhir", "/fhir/", "/fhir/Patient", "/fhir/Patient/123", "/fhir/metadata", "/fhir/nope/x/y",
		"/oauth2/", "/oauth2/nope", "/oauth2/token", "/admin/api/", "/admin/api/clients", "/.well-known/", "/.well-known/nope",
	)
}

var (
	bigBody      = bytes.Repeat([]byte("a"), 1<<20+10)
	hugeHeader   = strings.Repeat("A", 100<<10)
	oddMethods   = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "PROPFIND", "XYZZY-GARBAGE-METHOD"}
	secretValues = []string{"SECRETCODE", "SECRET2"}
)

// variant is one way to make a request malformed.
type variant struct {
	name   string
	suffix string // appended to the path (raw, before parsing)
	query  string
	body   func() io.Reader
	hdr    map[string]string
}

var variants = []variant{
	{name: "plain"},
	{name: "accept html", hdr: map[string]string{"Accept": "text/html,application/xhtml+xml"}},
	{name: "accept json", hdr: map[string]string{"Accept": "application/json"}},
	{name: "accept fhir", hdr: map[string]string{"Accept": "application/fhir+json"}},
	{name: "origin", hdr: map[string]string{"Origin": "https://app.example.com"}},
	{name: "preflight", hdr: map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "authorization, x-evil"}},
	{name: "null origin", hdr: map[string]string{"Origin": "null"}},
	{name: "bearer garbage", hdr: map[string]string{"Authorization": "Bearer garbage.garbage.garbage"}},
	{name: "basic bad base64", hdr: map[string]string{"Authorization": "Basic %%%not-base64%%%"}},
	{name: "basic no colon", hdr: map[string]string{"Authorization": "Basic bm9jb2xvbg=="}},
	{name: "huge header", hdr: map[string]string{"Authorization": "Bearer " + hugeHeader, "X-Huge": hugeHeader, "Cookie": "a=" + hugeHeader}},
	{name: "malformed headers", hdr: map[string]string{"Content-Type": "a/b/c; ;;=", "Accept": "*/*;q=nan, text/html;q=", "X-Request-Id": "\x00\nforged", "Content-Length": "-1", "X-Forwarded-For": "1.2.3.4, garbage", "If-None-Match": "\xff\xfe"}},
	{name: "invalid json", body: func() io.Reader { return strings.NewReader(`{"grant_type": "client_credentials",,, "scope": `) }, hdr: map[string]string{"Content-Type": "application/json"}},
	{name: "invalid fhir json", body: func() io.Reader { return strings.NewReader(`{"resourceType": 12, "id": [}`) }, hdr: map[string]string{"Content-Type": "application/fhir+json"}},
	{name: "invalid form", body: func() io.Reader { return strings.NewReader("grant_type=%zz&scope=%&&=;;code=\xff") }, hdr: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
	{name: "body over 1 MiB", body: func() io.Reader { return bytes.NewReader(bigBody) }, hdr: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
	{name: "content-type nonsense", body: func() io.Reader { return strings.NewReader("\x00\x01\x02") }, hdr: map[string]string{"Content-Type": "multipart/form-data; boundary="}},
	{name: "query escapes", query: "a=%zz&b=%ff%fe&c=\xff&d=%&e=1'+OR+'1'%3D'1&code=SECRETCODE&access_token=SECRET2"},
	{name: "path invalid utf8", suffix: "%ff%fe%c0%af"},
	{name: "path encoded percent", suffix: "%25zz%25"},
	{name: "path nul", suffix: "%00"},
	{name: "path raw utf8", suffix: "\xff\xfe"},
	{name: "path traversal", suffix: "/../../etc/passwd"},
	{name: "path encoded traversal", suffix: "/%2e%2e/%2e%2e/etc/passwd"},
	{name: "trailing slash", suffix: "/"},
	{name: "double slash", suffix: "//x"},
}

func buildRequest(t *testing.T, method, path string, v variant) *http.Request {
	t.Helper()
	target := path + v.suffix
	if v.query != "" {
		target += "?" + v.query
	}
	var body io.Reader
	if v.body != nil {
		body = v.body()
	}
	// httptest.NewRequest refuses some of the odd methods; build with GET
	// and set the method after parsing, as a server would hand it over.
	r := httptest.NewRequest(http.MethodGet, target, body)
	r.Method = method
	for k, val := range v.hdr {
		r.Header[k] = []string{val}
	}
	return r
}

// TestNoLeaksOnMalformedRequests walks every route (and unknown paths under
// every prefix) with every method and a battery of malformed requests, and
// checks each response against the no-leak and error-shape rules.
func TestNoLeaksOnMalformedRequests(t *testing.T) {
	ts := newTestServer(t)
	routes := ts.s.Routes()
	if len(routes) == 0 {
		t.Fatal("Routes() is empty")
	}
	dataDir := ts.a.Cfg.DataDir
	n := 0
	// One bug repeats across thousands of requests: report each broken rule
	// once with a count and its first examples.
	type group struct {
		count    int
		examples []string
	}
	groups := map[string]*group{}
	var order []string
	for _, path := range targetsFor(routes) {
		for _, m := range oddMethods {
			for _, v := range variants {
				r := buildRequest(t, m, path, v)
				rec := ts.do(r)
				n++
				desc := fmt.Sprintf("%s %q [%s]", m, path+v.suffix, v.name)
				for _, f := range responseFindings(r, rec, expect{metricsBody: path == "/metrics" && rec.Code == 200, tempDir: dataDir}) {
					g := groups[f.rule]
					if g == nil {
						g = &group{}
						groups[f.rule] = g
						order = append(order, f.rule)
					}
					g.count++
					if len(g.examples) < 3 {
						g.examples = append(g.examples, desc+": "+f.detail)
					}
				}
			}
		}
	}
	for _, rule := range order {
		g := groups[rule]
		t.Errorf("%s: %d responses, e.g.:\n  %s", rule, g.count, strings.Join(g.examples, "\n  "))
	}
	// A method that no server would accept, straight into the handler.
	for _, path := range []string{"/oauth2/jwks", "/fhir/Patient", "/docs/errors", "/nope"} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Method = "G\x00T<script>alert(1)</script>\xff"
		rec := ts.do(r)
		checkResponse(t, fmt.Sprintf("garbage method on %s", path), r, rec, expect{tempDir: dataDir})
		if strings.Contains(rec.Body.String(), "<script>") {
			t.Errorf("garbage method on %s: the method is echoed unescaped: %s", path, truncate(rec.Body.String()))
		}
	}
	t.Logf("%d requests checked", n)

	logs := ts.logs.String()
	// Garbage methods, paths and headers must not break the log stream
	// (log injection): every line is one JSON object.
	for i, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("log line %d is not JSON: %q", i+1, truncate(l))
			break
		}
	}
	for _, s := range secretValues {
		if strings.Contains(logs, s) {
			t.Errorf("the log stream contains the query value %s; request logs must not carry query strings", s)
		}
	}
}

// regression fails the test with every finding of a check that guards a
// bug found and fixed before (named by bug).
func regression(t *testing.T, bug string, fs []finding) {
	t.Helper()
	if len(fs) == 0 {
		return
	}
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\n  " + f.detail)
	}
	t.Errorf("regression (%s):%s", bug, b.String())
}

// TestServerAsteriskTarget sends the request-target that ServeMux answers
// itself, before any route: the asterisk-form (RFC 9112 §3.2.4) with a
// method other than OPTIONS (net/http answers OPTIONS * on its own). It
// reaches smartgate's handler over the wire too (see TestNoLeaksOnTheWire).
func TestServerAsteriskTarget(t *testing.T) {
	ts := newTestServer(t)
	for _, m := range []string{http.MethodGet, http.MethodPost, "PROPFIND"} {
		r := httptest.NewRequest(http.MethodGet, "*", nil)
		r.Method = m
		rec := ts.do(r)
		fs := responseFindings(r, rec, expect{})
		var leaks []finding
		for _, f := range fs {
			if strings.Contains(f.rule, "leak") || f.rule == "5xx" || f.rule == "X-Request-Id" {
				leaks = append(leaks, f)
			}
		}
		for _, f := range leaks {
			t.Errorf("%s *: %s", m, f.detail)
		}
		regression(t, "ServeMux answers `"+m+" *` with a bare 400 and an empty body: no error object, no request id", fs)
	}
}

// TestNoLeaksWhenStoreClosed makes the database fail under a running server:
// responses stay generic, and the private cause reaches the log.
func TestNoLeaksWhenStoreClosed(t *testing.T) {
	ts := newTestServer(t)
	if err := ts.a.Store.Close(); err != nil {
		t.Fatalf("closing the store: %v", err)
	}
	dataDir := ts.a.Cfg.DataDir

	rec := ts.get(t, "/readyz", "Accept", "application/json")
	checkResponse(t, "GET /readyz (store closed)", httptest.NewRequest("GET", "/readyz", nil), rec, expect{allow5xx: true, statusDoc: true, tempDir: dataDir})
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the store closed: status %d, want 503", rec.Code)
	}
	var ready struct {
		Status string `json:"status"`
		Checks []struct {
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ready); err != nil {
		t.Fatalf("/readyz body does not parse: %v\n%s", err, rec.Body.String())
	}
	if ready.Status != "not ready" {
		t.Errorf("/readyz status = %q, want \"not ready\"", ready.Status)
	}
	for _, c := range ready.Checks {
		if c.Name == "database" {
			if c.OK || c.Detail != "the database does not answer" {
				t.Errorf("/readyz database check = %+v, want not ok with the generic detail", c)
			}
		}
		if strings.Contains(c.Detail, "closed") || strings.Contains(c.Detail, "sql") {
			t.Errorf("/readyz check %s detail %q carries the private cause", c.Name, c.Detail)
		}
	}

	for _, target := range []string{"/oauth2/jwks", "/nope", "/fhir/Patient/1", "/oauth2/nope", "/.well-known/openid-configuration", "/healthz", "/metrics", "/docs/errors", "/"} {
		for _, accept := range []string{"application/json", "text/html", "application/fhir+json"} {
			r := httptest.NewRequest(http.MethodGet, target, nil)
			r.Header.Set("Accept", accept)
			rec := ts.do(r)
			checkResponse(t, fmt.Sprintf("GET %s Accept %s (store closed)", target, accept), r, rec,
				expect{allow5xx: true, metricsBody: target == "/metrics" && rec.Code == 200, tempDir: dataDir})
			if rec.Code >= 500 {
				t.Errorf("GET %s with the store closed: status %d; nothing on this path needs the database", target, rec.Code)
			}
		}
	}

	logs := ts.logs.String()
	if !strings.Contains(logs, "readyz: database ping failed") || !strings.Contains(logs, "database is closed") {
		t.Errorf("the log does not carry the private cause of the failed readiness check; log:\n%s", truncate(logs))
	}
}

// TestPanicIsGeneric500 builds the same recovery chain server.New does around
// a panicking handler: the client gets a generic 500 with its request id on
// every surface; the panic value and stack go to the log only.
func TestPanicIsGeneric500(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	wr := &problem.Writer{BaseURL: testIssuer, Log: logger}
	panicky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		panic(errors.New(`SELECT secret FROM signing_keys at /work/main/internal/keys/manager.go:42`))
	})
	h := httpx.Chain(panicky,
		httpx.RequestID,
		httpx.Logger(logger),
		httpx.SecurityHeaders(false),
		httpx.Recover(logger, func(w http.ResponseWriter, r *http.Request, err error) {
			wr.Write(w, r, surfaceFor(r), problem.Internal(err))
		}),
	)
	fhir, html, oauth := problem.SurfaceFHIR, problem.SurfaceHTML, problem.SurfaceOAuth
	for _, tc := range []struct {
		target, accept string
		want           problem.Surface
	}{
		{"/oauth2/token", "application/json", oauth},
		{"/fhir/Patient/1", "application/fhir+json", fhir},
		{"/fhir/Patient/1", "text/html", fhir},
		{"/account/apps", "text/html", html},
		{"/account/apps", "", oauth},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.target, nil)
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		desc := fmt.Sprintf("panic on GET %s Accept %q", tc.target, tc.accept)
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("%s: status %d, want 500", desc, rec.Code)
		}
		checkResponse(t, desc, r, rec, expect{allow5xx: true, surface: &tc.want})
		if strings.Contains(rec.Body.String(), "signing_keys") || strings.Contains(rec.Body.String(), "manager.go") {
			t.Errorf("%s: body carries the panic value: %s", desc, rec.Body.String())
		}
		if !strings.Contains(rec.Body.String(), "internal_error") {
			t.Errorf("%s: body does not name internal_error: %s", desc, truncate(rec.Body.String()))
		}
	}
	logs2 := logs.String()
	for _, want := range []string{`"msg":"panic"`, "goroutine ", "signing_keys", "leak_test.go"} {
		if !strings.Contains(logs2, want) {
			t.Errorf("the log lacks %q (the panic and its stack belong there):\n%s", want, truncate(logs2))
		}
	}
}

// TestPanicInRealRoute makes a registered route panic (the key manager is
// gone) and checks the real chain answers with a generic 500 and logs the
// stack.
func TestPanicInRealRoute(t *testing.T) {
	ts := newTestServer(t)
	keys := ts.a.Keys
	ts.a.Keys = nil // s.jwks dereferences it: a nil pointer panic
	t.Cleanup(func() { ts.a.Keys = keys })
	for _, accept := range []string{"application/json", "text/html"} {
		r := httptest.NewRequest(http.MethodGet, "/oauth2/jwks", nil)
		r.Header.Set("Accept", accept)
		r.Header.Set("Origin", "https://app.example.com")
		rec := ts.do(r)
		desc := "panicking GET /oauth2/jwks Accept " + accept
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("%s: status %d, want 500", desc, rec.Code)
		}
		checkResponse(t, desc, r, rec, expect{allow5xx: true})
		if ct := rec.Header().Get("Content-Type"); strings.Contains(ct, "jwk-set") {
			t.Errorf("%s: the error carries the handler's Content-Type %q", desc, ct)
		}
	}
	logs := ts.logs.String()
	for _, want := range []string{`"msg":"panic"`, "nil pointer", "goroutine ", "handlers.go"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, truncate(logs))
		}
	}
	if !strings.Contains(logs, `"status":500`) {
		t.Errorf("no request log line with status 500:\n%s", truncate(logs))
	}
}

// TestNoLeaksOnTheWire sends what httptest.NewRequest cannot build (invalid
// %-escapes, control bytes, oversized header blocks, broken framing) over a
// real connection, to a listener configured like Run's. Some of these are
// refused by net/http before smartgate's handler runs: those answers carry
// no request id, but must still leak nothing and never be a 5xx.
func TestNoLeaksOnTheWire(t *testing.T) {
	ts := newTestServer(t)
	srv := httptest.NewUnstartedServer(ts.s.Handler())
	srv.Config.MaxHeaderBytes = 64 << 10 // as in Run
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	huge := strings.Repeat("A", 70<<10)
	for _, tc := range []struct {
		name, raw         string
		want501, asterisk bool // asterisk: the known ServeMux bug (TestServerAsteriskTarget)
	}{
		{name: "invalid escape in path", raw: "GET /fhir/Patient/%zz HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "truncated escape in path", raw: "GET /oauth2/jwks% HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "invalid escape in query", raw: "GET /oauth2/jwks?code=%zz&x=%ff HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "raw invalid UTF-8 in path", raw: "GET /fhir/\xff\xfe HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n"},
		{name: "control byte in path", raw: "GET /fhir/\x01 HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "asterisk GET", raw: "GET * HTTP/1.1\r\nHost: x\r\n\r\n", asterisk: true},
		{name: "asterisk OPTIONS", raw: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "absolute form", raw: "GET http://evil.example/oauth2/jwks HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "garbage method", raw: "G\x01T /oauth2/jwks HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "20-char method", raw: "XYZZYXYZZYXYZZYXYZZY /oauth2/jwks HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "no Host", raw: "GET /oauth2/jwks HTTP/1.1\r\n\r\n"},
		{name: "bad Host", raw: "GET /oauth2/jwks HTTP/1.1\r\nHost: a b/c\r\n\r\n"},
		{name: "bad header name", raw: "GET /oauth2/jwks HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"},
		{name: "header block over MaxHeaderBytes", raw: "GET /oauth2/jwks HTTP/1.1\r\nHost: x\r\nX-Huge: " + huge + "\r\n\r\n"},
		{name: "unsupported transfer-encoding", raw: "POST /oauth2/jwks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", want501: true},
		{name: "broken chunked body", raw: "POST /oauth2/jwks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n"},
		{name: "two Content-Lengths", raw: "POST /oauth2/jwks HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{name: "HTTP/0.9-ish", raw: "GET /\r\n\r\n"},
		{name: "HTTP/2 preface on HTTP/1", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", asterisk: true},
		{name: "bad Basic auth", raw: "GET /oauth2/jwks HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %%%\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, tc.raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return // the connection was dropped: nothing leaked
				}
				t.Fatalf("unreadable response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range leakMarkers {
				if leaks(string(body), m.s) {
					t.Errorf("status %d, body leaks %s (%q): %s", resp.StatusCode, m.kind, m.s, truncate(string(body)))
				}
			}
			// RFC 9112 §6.1: 501 is the answer to a transfer coding the
			// server does not implement; net/http gives it before any handler.
			if resp.StatusCode >= 500 && !(tc.want501 && resp.StatusCode == http.StatusNotImplemented) {
				t.Errorf("status %d, want < 500: %s", resp.StatusCode, truncate(string(body)))
			}
			rid := resp.Header.Get("X-Request-Id")
			if rid == "" {
				t.Logf("answered by net/http before smartgate's handler: %d %q", resp.StatusCode, truncate(string(body)))
				return
			}
			if resp.StatusCode >= 400 && !strings.Contains(string(body), rid) && !tc.asterisk {
				t.Errorf("status %d from smartgate's handler without the request id in the body: %q", resp.StatusCode, truncate(string(body)))
			}
		})
	}
}

// TestLeakCheckerCatches proves the checker itself: each broken response
// below must produce a finding, or the battery above proves nothing.
func TestLeakCheckerCatches(t *testing.T) {
	const rid = "0123456789abcdef0123456789abcdef"
	good := `{"error":"not_found","error_description":"x","error_uri":"` + testIssuer + `/docs/errors#not_found","request_id":"` + rid + `"}`
	for _, tc := range []struct {
		name, path, accept, ct, body, rid string
		code                              int
	}{
		{name: "stack trace", path: "/oauth2/x", ct: "application/json", code: 404, rid: rid,
			body: `{"error":"x","error_description":"goroutine 1 [running]: main.go:12","error_uri":"` + testIssuer + `/docs/errors#not_found","request_id":"` + rid + `"}`},
		{name: "SQL", path: "/oauth2/x", ct: "application/json", code: 400, rid: rid, body: strings.Replace(good, `"x"`, `"SELECT * FROM keys"`, 1)},
		{name: "file path", path: "/oauth2/x", ct: "application/json", code: 400, rid: rid, body: strings.Replace(good, `"x"`, `"open /tmp/k: denied"`, 1)},
		{name: "Go error", path: "/oauth2/x", ct: "application/json", code: 400, rid: rid, body: strings.Replace(good, `"x"`, `"invalid character 'x'"`, 1)},
		{name: "5xx", path: "/oauth2/x", ct: "application/json", code: 500, rid: rid, body: strings.Replace(good, "not_found", "internal_error", 2)},
		{name: "no request id header", path: "/oauth2/x", ct: "application/json", code: 404, body: good},
		{name: "request id not in body", path: "/oauth2/x", ct: "application/json", code: 404, rid: rid, body: strings.Replace(good, rid, "other", 1)},
		{name: "error_uri without fragment", path: "/oauth2/x", ct: "application/json", code: 404, rid: rid, body: strings.Replace(good, "/docs/errors#not_found", "/docs/errors", 1) + " " + rid},
		{name: "error_uri unknown id", path: "/oauth2/x", ct: "application/json", code: 404, rid: rid, body: strings.Replace(good, "#not_found", "#nope", 1)},
		{name: "JSON does not parse", path: "/oauth2/x", ct: "application/json", code: 404, rid: rid, body: "{" + rid},
		{name: "HTML on an API path", path: "/oauth2/x", accept: "text/html", ct: "text/html", code: 404, rid: rid, body: "<p>" + rid},
		{name: "JSON on a FHIR path", path: "/fhir/Patient", ct: "application/json", code: 404, rid: rid, body: good},
		{name: "JSON for a browser page", path: "/somewhere", accept: "text/html", ct: "application/json", code: 404, rid: rid, body: good},
		{name: "405 without Allow", path: "/oauth2/x", ct: "application/json", code: 405, rid: rid, body: good},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", tc.ct)
		if tc.rid != "" {
			rec.Header().Set("X-Request-Id", tc.rid)
		}
		rec.WriteHeader(tc.code)
		rec.WriteString(tc.body)
		if fs := responseFindings(r, rec, expect{}); len(fs) == 0 {
			t.Errorf("%s: the checker found nothing wrong with %d %s %s", tc.name, tc.code, tc.ct, tc.body)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/oauth2/x", nil)
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json; charset=utf-8")
	rec.Header().Set("X-Request-Id", rid)
	rec.WriteHeader(404)
	rec.WriteString(good)
	if fs := responseFindings(r, rec, expect{}); len(fs) != 0 {
		t.Errorf("the checker rejects a well-formed error: %v", fs)
	}
}

// TestLeaksIgnoresRandomTokens: a marker inside a random token is chance,
// not a leak; the same marker in text is one.
func TestLeaksIgnoresRandomTokens(t *testing.T) {
	for _, c := range []struct {
		s, marker string
		want      bool
	}{
		{"Set-Cookie: smartgate-csrf=CTeqHyUgvj30vIfyugGwOSFkWKlURqMpgxoiCeaH_sA; Path=/", "pgx", false},
		{`{"error":"server_error","error_description":"pgx: conn closed"}`, "pgx", true},
		{"failed to connect (pgx)", "pgx", true},
		{"no marker here", "pgx", false},
	} {
		if got := leaks(c.s, c.marker); got != c.want {
			t.Errorf("leaks(%q, %q) = %v, want %v", c.s, c.marker, got, c.want)
		}
	}
}
