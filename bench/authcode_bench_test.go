package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"smartgate/internal/app"
	"smartgate/internal/identity"
	"smartgate/internal/oauth"
	"smartgate/internal/store"
)

// BenchmarkAuthCode runs the browser flow's server side in process, through
// the whole handler chain of a dev-mode server on SQLite (no network; the
// logger discards; rate limits off), as bench/peers.sh's authcode and
// refresh modes drive the real binary. A public client asks for
// "openid offline_access user/Patient.rs" with aud; a practitioner signed
// in once through /login and consented once through /consent before the
// timer starts, so every measured flow finds the session and the
// remembered consent (docs/dev/authorize-contract.md).
//
//   - flow: GET /oauth2/authorize with the session cookie (PKCE S256,
//     state, nonce) answers 303 with a code, then POST /oauth2/token
//     exchanges it with the verifier: one op is one whole flow.
//   - authorize: the GET alone (the code is issued and never exchanged).
//   - refresh: one refresh_token grant; each goroutine keeps its own chain
//     and sends the rotated refresh token of each answer.
//   - refresh-no-openid: the same for a grant without openid, so no
//     id_token (RS256) is signed: the difference is the id_token's cost.
//
// serial runs one goroutine, so ns/op is the server's CPU per op;
// clients=16 runs 16 goroutines on every core, so ns/op is the inverse of
// this machine's throughput. To profile:
//
//	go test -run='^$' -bench='AuthCode/refresh/serial' -benchmem -cpuprofile=cpu.out ./bench
//	go tool pprof -top -cum bench.test cpu.out
func BenchmarkAuthCode(b *testing.B) {
	ab := newAuthCodeBench(b)
	for _, mode := range []string{"flow", "authorize", "refresh", "refresh-no-openid"} {
		b.Run(mode, func(b *testing.B) {
			b.Run("serial", func(b *testing.B) {
				st := ab.start(b, mode)
				for b.Loop() {
					if !ab.op(b, mode, st) {
						return
					}
				}
			})
			b.Run("clients=16", func(b *testing.B) {
				setClients(b, 16)
				b.RunParallel(func(pb *testing.PB) {
					st := ab.start(b, mode)
					for pb.Next() {
						if !ab.op(b, mode, st) {
							return
						}
					}
				})
			})
		})
	}
}

const (
	benchRedirectURI = "http://127.0.0.1/callback"
	benchAppScope    = "openid offline_access user/Patient.rs"
)

type authCodeBench struct {
	h        http.Handler
	clientID string
	cookies  map[string]string // the browser's: session and CSRF
}

func newAuthCodeBench(b *testing.B) *authCodeBench {
	b.Helper()
	h, a := newServer(b, map[string]string{"rate_limits.enabled": "false"})
	ab := &authCodeBench{h: h, cookies: map[string]string{}}
	ab.clientID = createAppClient(b, a)
	const user, password = "bench.practitioner", "bench-password-0123456789"
	ids := identity.FromConfig(a.Store, &a.Cfg.Config, nil, nil)
	if _, err := ids.CreateUser(context.Background(), identity.NewUser{Username: user, Role: store.RolePractitioner,
		FHIRUser: "Practitioner/bench", Password: password, WeakPasswordOK: true}, "system"); err != nil {
		b.Fatalf("creating the user: %v", err)
	}
	// The one interactive flow: sign in and consent (for both scope sets).
	for _, sc := range []string{benchAppScope, "offline_access user/Patient.rs"} {
		loc, _ := ab.authorizeURL(sc)
		for range 8 {
			u, _ := url.Parse(loc)
			if u.Host == "127.0.0.1" { // the redirect_uri: done
				break
			}
			switch u.Path {
			case "/login":
				ab.get(b, loc, http.StatusOK)
				loc = ab.postPage(b, "/login", url.Values{"auth": {u.Query().Get("auth")}, "username": {user}, "password": {password}, "action": {"login"}})
			case "/consent":
				ab.get(b, loc, http.StatusOK)
				loc = ab.postPage(b, "/consent", url.Values{"auth": {u.Query().Get("auth")}, "scope": strings.Fields(sc), "decision": {"approve"}})
			default:
				loc = ab.get(b, loc, http.StatusSeeOther).Header().Get("Location")
			}
		}
		if !strings.HasPrefix(loc, benchRedirectURI+"?code=") {
			b.Fatalf("the interactive flow for %q ended at %s, not at the redirect_uri with a code", sc, loc)
		}
	}
	return ab
}

// createAppClient registers the public app as `smartgate client create
// --type public` does.
func createAppClient(b *testing.B, a *app.App) string {
	b.Helper()
	md := store.ClientMetadata{ClientName: "bench-app", Scope: benchAppScope, RedirectURIs: []string{benchRedirectURI},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none"}
	reg := oauth.NewRegistry(a.Store, nil, &a.Cfg.Config, nil)
	c, err := reg.Create(context.Background(), md, oauth.Options{ByAdmin: true})
	if err != nil {
		b.Fatalf("creating the app client: %v", err)
	}
	return c.Client.ID
}

// authURL is an authorization request for scope with a fresh verifier,
// state and nonce; it returns the URL and the verifier.
func (ab *authCodeBench) authorizeURL(scope string) (string, string) {
	verifier := randomB64(32)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {ab.clientID}, "redirect_uri": {benchRedirectURI}, "scope": {scope},
		"aud": {"http://127.0.0.1:8080/fhir"}, "state": {randomB64(16)}, "nonce": {randomB64(16)},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	return "/oauth2/authorize?" + q.Encode(), verifier
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ab *authCodeBench) serve(req *http.Request) *httptest.ResponseRecorder {
	for k, v := range ab.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	req.Header.Set("Accept", "text/html")
	rec := httptest.NewRecorder()
	ab.h.ServeHTTP(rec, req)
	return rec
}

// get is a browser GET during the setup; it keeps the cookies set.
func (ab *authCodeBench) get(b *testing.B, target string, want int) *httptest.ResponseRecorder {
	b.Helper()
	rec := ab.serve(httptest.NewRequest(http.MethodGet, target, nil))
	if rec.Code != want {
		b.Fatalf("GET %s: status %d, want %d: %.300s", target, rec.Code, want, rec.Body.String())
	}
	ab.keepCookies(rec)
	return rec
}

// postPage submits a page's form with the CSRF cookie's token and returns
// where it redirects.
func (ab *authCodeBench) postPage(b *testing.B, path string, f url.Values) string {
	b.Helper()
	f.Set("csrf_token", ab.cookies["smartgate-csrf"])
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := ab.serve(req)
	if rec.Code != http.StatusSeeOther {
		b.Fatalf("POST %s: status %d, want 303: %.300s", path, rec.Code, rec.Body.String())
	}
	ab.keepCookies(rec)
	return rec.Header().Get("Location")
}

func (ab *authCodeBench) keepCookies(rec *httptest.ResponseRecorder) {
	for _, c := range rec.Result().Cookies() {
		ab.cookies[c.Name] = c.Value
	}
}

// chain is one goroutine's state: its refresh token.
type chain struct{ refresh string }

func (ab *authCodeBench) start(b *testing.B, mode string) *chain {
	st := &chain{}
	switch mode {
	case "refresh":
		st.refresh = ab.flow(b, benchAppScope)
	case "refresh-no-openid":
		st.refresh = ab.flow(b, "offline_access user/Patient.rs")
	}
	return st
}

func (ab *authCodeBench) op(b *testing.B, mode string, st *chain) bool {
	switch mode {
	case "flow":
		return ab.flow(b, benchAppScope) != ""
	case "authorize":
		code, _ := ab.authorize(b, benchAppScope)
		return code != ""
	default:
		st.refresh = ab.token(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {st.refresh}, "client_id": {ab.clientID}})
		return st.refresh != ""
	}
}

// authorize sends the authorization request with the session cookie and
// returns the code of its 303 (and the verifier), or "" after b.Error.
func (ab *authCodeBench) authorize(b *testing.B, scope string) (string, string) {
	target, verifier := ab.authorizeURL(scope)
	rec := ab.serve(httptest.NewRequest(http.MethodGet, target, nil))
	loc := rec.Header().Get("Location")
	u, err := url.Parse(loc)
	if rec.Code != http.StatusSeeOther || err != nil || u.Query().Get("code") == "" {
		b.Errorf("GET /oauth2/authorize: status %d, Location %q, want 303 to the redirect_uri with a code (the session or the consent was not remembered?)", rec.Code, loc)
		return "", ""
	}
	return u.Query().Get("code"), verifier
}

// flow is authorize and the code exchange; it returns the refresh token.
func (ab *authCodeBench) flow(b *testing.B, scope string) string {
	code, verifier := ab.authorize(b, scope)
	if code == "" {
		return ""
	}
	return ab.token(b, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {benchRedirectURI},
		"code_verifier": {verifier}, "client_id": {ab.clientID}})
}

// token posts to the token endpoint and returns the refresh token of a
// 200 answer, or "" after b.Error.
func (ab *authCodeBench) token(b *testing.B, f url.Values) string {
	req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	ab.h.ServeHTTP(rec, req)
	var r struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &r) != nil || r.AccessToken == "" || r.RefreshToken == "" {
		b.Errorf("%s: status %d: %.300s", f.Get("grant_type"), rec.Code, rec.Body.String())
		return ""
	}
	return r.RefreshToken
}
