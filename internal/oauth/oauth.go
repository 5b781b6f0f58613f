// Package oauth is smartgate's authorization server: the client registry
// (RFC 7591/7592), the token endpoint (RFC 6749 §3.2, one pipeline with a
// hook per grant), client authentication including private_key_jwt
// (RFC 7523, SMART Backend Services), introspection (RFC 7662) and
// revocation (RFC 7009). Handlers return errors; the server writes them.
package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/clientkeys"
	"smartgate/internal/config"
	"smartgate/internal/httpx"
	"smartgate/internal/identity"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// Deps are what the authorization server needs.
type Deps struct {
	Config *config.Config
	// Live is Config with the runtime settings applied (registration
	// policy, password grant roles, token lifetimes), replaced whole
	// when an administrator changes one; nil: Config as loaded.
	Live   *config.Live
	Issuer string // public base URL (in dev mode, from the bound address)
	Store  store.Store
	Tokens *token.Service
	Keys   *clientkeys.Fetcher
	Audit  *audit.Writer
	Log    *slog.Logger
	Clock  func() time.Time

	// The browser flow (authorize, pages, userinfo, logout, launch).
	Errors   *problem.Writer   // writes errors on another surface than the route's
	KEK      *keys.KEK         // seals requests in flight between the pages
	Users    *identity.Service // sign-in, sessions
	Patients Patients          // who may act for which patient
	Exists   ResourceExists    // launch context ids are checked

	// Sandbox injects chosen errors (serve --sandbox); nil otherwise, and
	// then every sandbox hook does nothing.
	Sandbox *Sandbox
}

// Server is the authorization server of one node.
type Server struct {
	Deps
	Clients *Registry

	tokenLimiter    *httpx.Limiter
	registerLimiter *httpx.Limiter
	grants          map[string]grantHandler
	fed             federation // upstream OpenID Connect providers (upstream.go)
}

// New builds the server. Call Clients.Invalidate from the change feed.
func New(d Deps) *Server {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.Issuer = strings.TrimRight(d.Issuer, "/")
	s := &Server{Deps: d}
	s.Clients = NewRegistry(d.Store, d.Keys, d.Config, d.Clock)
	if rl := d.Config.RateLimits; rl.Enabled {
		s.tokenLimiter = httpx.NewLimiter(float64(rl.TokenPerClient), rl.TokenBurst, d.Clock)
		s.registerLimiter = httpx.NewLimiter(float64(rl.RegisterPerAddress)/60, rl.RegisterBurst, d.Clock)
	}
	s.grants = map[string]grantHandler{
		"client_credentials": s.clientCredentials,
		"refresh_token":      s.refreshToken,
		"authorization_code": s.authorizationCode,
		"password":           s.password,
	}
	if len(d.Config.Authorize.PasswordGrantRoles) > 0 && d.Log != nil {
		d.Log.Warn("the password grant is on (authorize.password_grant_roles): apps see users' passwords, and no consent or two-factor step happens; use it for development only", "roles", strings.Join(d.Config.Authorize.PasswordGrantRoles, ","))
	}
	return s
}

// TokenEndpoint is the token endpoint URL: the aud of client assertions.
func (s *Server) TokenEndpoint() string { return s.Issuer + "/oauth2/token" }

// GrantTypes lists the grant types the token endpoint supports.
func (s *Server) GrantTypes() []string {
	out := make([]string, 0, len(s.grants))
	for g := range s.grants {
		if g == "password" && len(s.live().Authorize.PasswordGrantRoles) == 0 {
			continue // off: not advertised
		}
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// AssertionAlgs are the client-assertion algorithms accepted (SMART
// Backend Services: RS384 and ES384 required; the others allowed).
var AssertionAlgs = []string{"RS384", "ES384", "RS256", "ES256", "PS256", "PS384", "EdDSA"}

// AuthMethods are the token endpoint authentication methods supported.
var AuthMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}

// parseForm reads an application/x-www-form-urlencoded body (RFC 6749
// §3.2) and refuses repeated parameters (§3.1). A JSON body, the mistake
// USERS.md item 2 describes, gets an explanation.
func parseForm(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, problem.New(problem.InvalidRequest, "use POST with an application/x-www-form-urlencoded body")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		got := mt
		if got == "" {
			got = "none"
		}
		return nil, problem.New(problem.InvalidRequest, "the Content-Type is %s, but OAuth endpoints take form fields: send Content-Type: application/x-www-form-urlencoded with a body like grant_type=client_credentials&scope=system/Patient.rs (RFC 6749 section 3.2), not JSON", got)
	}
	if err := r.ParseForm(); err != nil {
		return nil, problem.Wrap(problem.InvalidRequest, err, "the body is not valid application/x-www-form-urlencoded (name=value pairs joined by &, percent-encoded)")
	}
	form := r.PostForm
	for k, v := range form {
		if len(v) > 1 {
			return nil, problem.New(problem.InvalidRequest, "parameter %q appears %d times; send each parameter once (RFC 6749 section 3.1)", k, len(v))
		}
	}
	if r.URL.RawQuery == "" {
		return form, nil
	}
	for k := range r.URL.Query() {
		if k == "client_secret" || k == "refresh_token" || k == "client_assertion" || k == "code" || k == "token" {
			return nil, problem.New(problem.InvalidRequest, "parameter %q is in the URL query; credentials belong in the POST body, where they are not logged", k)
		}
	}
	return form, nil
}

// writeJSON writes a successful OAuth response: never cached (RFC 6749
// §5.1 requires Cache-Control: no-store and Pragma: no-cache).
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // URLs keep their & (launch_url, request_uri)
	if err := enc.Encode(v); err != nil {
		return problem.Internal(err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

func (s *Server) audit(ctx context.Context, e audit.Event) {
	if s.Audit != nil {
		s.Audit.Record(ctx, e)
	}
}

// detail builds an audit detail object from key/value pairs, skipping
// empty values. It runs on every token request, so it writes the JSON by
// hand instead of marshalling a map.
func detail(kv ...string) string {
	var b strings.Builder
	b.Grow(64)
	b.WriteByte('{')
	first := true
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		jsonString(&b, kv[i])
		b.WriteByte(':')
		jsonString(&b, kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// jsonString writes s as a JSON string (RFC 8259 §7).
func jsonString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[r>>4])
			b.WriteByte(hex[r&0xf])
		default:
			b.WriteRune(r) // invalid UTF-8 arrives as U+FFFD
		}
	}
	b.WriteByte('"')
}
