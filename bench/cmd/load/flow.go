package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The browser-flow modes:
//
//	authcode  one operation is a whole authorization-code flow with an
//	          existing login session and remembered consent: GET the
//	          authorization endpoint (PKCE S256, state, nonce), follow the
//	          server's redirects up to the 303 to the redirect_uri (not
//	          followed), then POST the code and the verifier to the token
//	          endpoint. A flow counts once its code exchange answers 200.
//	refresh   one operation is one refresh_token grant; each client holds
//	          its own chain, and the refresh token of each answer replaces
//	          the one it sent (rotation).
//
// Every client is a browser with its own cookie jar and keep-alive
// connections. Before the warm-up each one signs in and consents once
// (-login says how, per server), so that the flows measured afterwards find
// a login session and remembered consent. A measured flow that meets a
// sign-in or consent page counts as an error, except Hydra's, whose login
// and consent provider is always visited (see hydraLogin).

const maxHops = 12 // redirects followed in one authorization request

// browser is one client of the browser-flow modes.
type browser struct {
	o     *options
	jar   *cookiejar.Jar
	conns map[string]*rawSender // by host:port
	buf   []byte
	// requests counts the HTTP requests sent, for http_per_op.
	requests int64
	// refresh is the client's current refresh token (refresh mode); empty
	// when its chain must start again with a new flow.
	refresh string
}

func (o *options) newBrowsers() []*browser {
	out := make([]*browser, o.c)
	for i := range out {
		jar, _ := cookiejar.New(nil) // never fails without options
		out[i] = &browser{o: o, jar: jar, conns: map[string]*rawSender{}}
	}
	return out
}

func (b *browser) close() {
	for _, s := range b.conns {
		s.close()
	}
}

var (
	getRequest = &http.Request{Method: http.MethodGet}
	putRequest = &http.Request{Method: http.MethodPut}
)

// do sends one request on the browser's connection to u's host and
// returns the answer; the body is valid until the next request. Cookies
// go with it and come back into the jar when withJar is set (not for
// Hydra's admin API, which is the login provider's, not the browser's).
func (b *browser) do(method string, u *url.URL, contentType, body string, withJar bool) (*http.Response, []byte, error) {
	s := b.conns[u.Host]
	if s == nil {
		s = &rawSender{addr: u.Host, timeout: b.o.timeout}
		b.conns[u.Host] = s
	}
	w := b.buf[:0]
	w = append(w, method...)
	w = append(w, ' ')
	w = append(w, u.RequestURI()...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, u.Host...)
	w = append(w, "\r\nUser-Agent: smartgate-bench-load\r\n"...)
	if method == http.MethodGet {
		w = append(w, "Accept: text/html,*/*\r\n"...) // a browser: smartgate answers JSON-only clients with an error
	} else {
		w = append(w, "Accept: application/json\r\n"...)
	}
	if withJar {
		if cs := b.jar.Cookies(u); len(cs) > 0 {
			w = append(w, "Cookie: "...)
			for i, c := range cs {
				if i > 0 {
					w = append(w, "; "...)
				}
				w = append(w, c.Name...)
				w = append(w, '=')
				w = append(w, c.Value...)
			}
			w = append(w, "\r\n"...)
		}
	}
	if contentType != "" {
		w = append(w, "Content-Type: "...)
		w = append(w, contentType...)
		w = append(w, "\r\n"...)
	}
	if method != http.MethodGet {
		w = append(w, "Content-Length: "...)
		w = strconv.AppendInt(w, int64(len(body)), 10)
		w = append(w, "\r\n"...)
	}
	w = append(w, "\r\n"...)
	w = append(w, body...)
	b.buf = w
	req := post
	switch method {
	case http.MethodGet:
		req = getRequest
	case http.MethodPut:
		req = putRequest
	}
	b.requests++
	resp, respBody, err := s.roundTrip(w, req)
	if resp != nil && withJar {
		if cs := resp.Cookies(); len(cs) > 0 {
			b.jar.SetCookies(u, cs)
		}
	}
	if err != nil {
		return resp, nil, fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	return resp, respBody, nil
}

// errInteraction is a sign-in or consent step met in a measured flow: the
// session or the consent was not remembered.
var errInteraction = errors.New("the server asked for a sign-in or consent step, so the flow did not use the existing session and remembered consent")

// randomString is n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// s256 is the PKCE S256 code_challenge of verifier (RFC 7636 §4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeQuery is the fixed part of every authorization request.
func (o *options) authorizeQuery() string {
	q := url.Values{}
	q.Set("response_type", "code")
	q.Set("client_id", o.clientID)
	q.Set("redirect_uri", o.redirectURI)
	q.Set("scope", o.scope)
	s := q.Encode()
	if o.authParams != "" {
		s += "&" + o.authParams
	}
	return s
}

// isRedirectURI reports whether u is the client's redirect_uri (with any
// query), where the flow ends.
func isRedirectURI(u *url.URL, redirectURI string) bool {
	r, err := url.Parse(redirectURI)
	return err == nil && u.Scheme == r.Scheme && u.Host == r.Host && u.Path == r.Path
}

// authorize runs one authorization request to the code: it follows the
// server's redirects and, when interactive, signs in and consents where the
// server asks. It returns the code and the PKCE verifier.
func (b *browser) authorize(interactive bool) (code, verifier string, err error) {
	o := b.o
	verifier = randomString(32) // 43 characters (RFC 7636 §4.1)
	state := randomString(16)
	u, err := url.Parse(o.authorizeURL + "?" + o.authQuery + "&state=" + state + "&nonce=" + randomString(16) +
		"&code_challenge=" + s256(verifier) + "&code_challenge_method=S256")
	if err != nil {
		return "", "", err
	}
	// u is where the browser goes next: a GET that must redirect, or a
	// step this browser takes itself (a page, Hydra's provider), or the
	// redirect_uri, where the flow ends.
	for range maxHops {
		if isRedirectURI(u, o.redirectURI) {
			q := u.Query()
			if e := q.Get("error"); e != "" {
				return "", "", fmt.Errorf("the authorization answered error=%s: %s", e, q.Get("error_description"))
			}
			if q.Get("state") != state {
				return "", "", fmt.Errorf("the redirect's state %q is not the request's", q.Get("state"))
			}
			if code = q.Get("code"); code == "" {
				return "", "", fmt.Errorf("the redirect to the app carries no code: %s", u)
			}
			return code, verifier, nil
		}
		var next *url.URL
		switch q := u.Query(); {
		case o.login == "hydra" && q.Has("login_challenge"):
			next, err = b.hydraAccept("login", q.Get("login_challenge"), interactive)
		case o.login == "hydra" && q.Has("consent_challenge"):
			next, err = b.hydraAccept("consent", q.Get("consent_challenge"), interactive)
		case o.login == "smartgate" && (u.Path == "/login" || u.Path == "/consent"):
			if !interactive {
				return "", "", fmt.Errorf("%w (redirected to %s)", errInteraction, u.Path)
			}
			next, err = b.smartgatePage(u)
		case o.login == "smartgate" && u.Path == "/select-patient":
			return "", "", errors.New("smartgate shows the patient picker: ask for scopes that need no patient (user/ scopes) for a practitioner")
		case o.login == "oidc-provider" && strings.HasPrefix(u.Path, "/interaction/") && !interactive:
			// The peer's /interaction/:uid accepts at once
			// (bench/peers/oidc-provider/server.mjs); interactive flows
			// just follow it.
			return "", "", fmt.Errorf("%w (redirected to %s)", errInteraction, u.Path)
		default:
			var resp *http.Response
			var body []byte
			resp, body, err = b.do(http.MethodGet, u, "", "", true)
			if err != nil {
				return "", "", err
			}
			loc := resp.Header.Get("Location")
			if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
				return "", "", fmt.Errorf("GET %s: status %d, want a redirect: %.300s", u.Path, resp.StatusCode, body)
			}
			if next, err = u.Parse(loc); err != nil {
				return "", "", fmt.Errorf("GET %s: bad Location %q: %w", u.Path, loc, err)
			}
		}
		if err != nil {
			return "", "", err
		}
		u = next
	}
	return "", "", fmt.Errorf("more than %d redirects without reaching the redirect_uri", maxHops)
}

// smartgatePage signs in on smartgate's /login or approves on its
// /consent (docs/dev/authorize-contract.md): GET the page (which sets the
// CSRF cookie), then POST its form with the cookie's value as csrf_token.
// It returns where the answer redirects.
func (b *browser) smartgatePage(page *url.URL) (*url.URL, error) {
	o := b.o
	resp, body, err := b.do(http.MethodGet, page, "", "", true)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %.300s", page.Path, resp.StatusCode, body)
	}
	csrf := ""
	for _, c := range b.jar.Cookies(page) {
		if c.Name == "smartgate-csrf" || c.Name == "__Host-smartgate-csrf" {
			csrf = c.Value
		}
	}
	f := url.Values{"auth": {page.Query().Get("auth")}, "csrf_token": {csrf}}
	if page.Path == "/login" {
		f.Set("username", o.username)
		f.Set("password", o.password)
		f.Set("action", "login")
	} else {
		f["scope"] = strings.Fields(o.scope)
		f.Set("decision", "approve")
	}
	target := &url.URL{Scheme: page.Scheme, Host: page.Host, Path: page.Path}
	resp, body, err = b.do(http.MethodPost, target, "application/x-www-form-urlencoded", f.Encode(), true)
	if err != nil {
		return nil, err
	}
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc == "" {
		return nil, fmt.Errorf("POST %s: status %d, want 303: %.300s", page.Path, resp.StatusCode, body)
	}
	return page.Parse(loc)
}

// hydraAccept is the login and consent provider that Hydra delegates to,
// built into the load generator: the browser's redirect to the provider's
// URL (URLS_LOGIN or URLS_CONSENT, never dialled) lands here, and the
// provider does what a minimal real one does over Hydra's admin API: GET
// the login (consent) request, then PUT its acceptance with remember=true
// (for consent: the requested scopes and audience), and send the browser
// on to the redirect_to of the answer. Hydra asks for this on every flow,
// also with a remembered session (the login request says skip=true) and
// remembered consent (skip=true); a request with skip=false in a measured
// flow is an error.
func (b *browser) hydraAccept(kind, challenge string, interactive bool) (*url.URL, error) {
	o := b.o
	q := kind + "_challenge=" + url.QueryEscape(challenge)
	get, err := url.Parse(o.hydraAdmin + "/admin/oauth2/auth/requests/" + kind + "?" + q)
	if err != nil {
		return nil, err
	}
	resp, body, err := b.do(http.MethodGet, get, "", "", false)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("hydra: GET the %s request: status %d: %.300s", kind, resp.StatusCode, body)
	}
	var r struct {
		Skip     bool            `json:"skip"`
		Subject  string          `json:"subject"`
		Scope    json.RawMessage `json:"requested_scope"`
		Audience json.RawMessage `json:"requested_access_token_audience"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("hydra: the %s request: %w", kind, err)
	}
	if !r.Skip && !interactive {
		return nil, fmt.Errorf("%w (hydra's %s request says skip=false)", errInteraction, kind)
	}
	var accept []byte
	if kind == "login" {
		subject := o.username
		if r.Skip {
			subject = r.Subject // Hydra requires the remembered subject
		}
		accept, _ = json.Marshal(map[string]any{"subject": subject, "remember": true, "remember_for": 0})
	} else {
		if len(r.Scope) == 0 || string(r.Scope) == "null" {
			r.Scope = json.RawMessage("[]")
		}
		if len(r.Audience) == 0 || string(r.Audience) == "null" {
			r.Audience = json.RawMessage("[]")
		}
		accept, _ = json.Marshal(map[string]any{"grant_scope": r.Scope, "grant_access_token_audience": r.Audience, "remember": true, "remember_for": 0})
	}
	put, _ := url.Parse(o.hydraAdmin + "/admin/oauth2/auth/requests/" + kind + "/accept?" + q)
	resp, body, err = b.do(http.MethodPut, put, "application/json", string(accept), false)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("hydra: accept the %s request: status %d: %.300s", kind, resp.StatusCode, body)
	}
	var to struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := json.Unmarshal(body, &to); err != nil || to.RedirectTo == "" {
		return nil, fmt.Errorf("hydra: accepting the %s request gave no redirect_to: %.300s", kind, body)
	}
	return url.Parse(to.RedirectTo)
}

// token POSTs a form to the token endpoint and checks the answer: 200
// with an access_token, a refresh_token, and, when idToken is set (a code
// exchange whose scope has openid), an id_token. A refresh may or may not
// return a new id_token (OpenID Connect Core 12.2): smartgate returns one
// only when the refresh asks for openid, oidc-provider and Hydra always do.
// It returns the new refresh token.
func (b *browser) token(form string, idToken bool) (string, error) {
	o := b.o
	resp, body, err := b.do(http.MethodPost, o.tokenURL, "application/x-www-form-urlencoded", form, false)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: status %d: %.400s", resp.StatusCode, body)
	}
	if err := checkBody(o.mode, body); err != nil {
		return "", fmt.Errorf("token endpoint: %w: %.400s", err, body)
	}
	if idToken && jsonStringValue(body, "id_token") == "" {
		return "", fmt.Errorf("token endpoint: no id_token although the scope has openid: %.400s", body)
	}
	rt := jsonStringValue(body, "refresh_token")
	if rt == "" {
		return "", fmt.Errorf("token endpoint: no refresh_token: %.400s", body)
	}
	return rt, nil
}

// exchange redeems a code (RFC 6749 §4.1.3, RFC 7636 §4.5) as the public
// client and returns the refresh token.
func (b *browser) exchange(code, verifier string) (string, error) {
	o := b.o
	f := "grant_type=authorization_code&code=" + url.QueryEscape(code) + "&redirect_uri=" + url.QueryEscape(o.redirectURI) +
		"&code_verifier=" + verifier + "&client_id=" + url.QueryEscape(o.clientID)
	return b.token(f, o.openid)
}

// flow is one whole authorization-code flow: authorize, then exchange.
func (b *browser) flow(interactive bool) (string, error) {
	code, verifier, err := b.authorize(interactive)
	if err != nil {
		return "", err
	}
	return b.exchange(code, verifier)
}

// refreshOnce sends the client's refresh token and keeps the one that
// replaces it; a failed refresh ends the chain (the next operation starts
// a new one with a flow, which is not counted).
func (b *browser) refreshOnce() error {
	o := b.o
	rt, err := b.token("grant_type=refresh_token&refresh_token="+url.QueryEscape(b.refresh)+"&client_id="+url.QueryEscape(o.clientID), false)
	if err != nil {
		b.refresh = ""
		return err
	}
	b.refresh = rt
	return nil
}

// setupBrowsers signs every client in and has it consent (one interactive
// flow each, one after another, so that the first one's consent is there
// for the rest), and for refresh keeps each client's first refresh token.
func (o *options) setupBrowsers(bs []*browser) (time.Duration, error) {
	start := time.Now()
	for i, b := range bs {
		rt, err := b.flow(true)
		if err != nil {
			return 0, fmt.Errorf("client %d: the first flow (sign-in and consent): %w", i, err)
		}
		b.refresh = rt
	}
	return time.Since(start), nil
}

// oneFlow runs one operation of a browser-flow mode.
func (p *phase) oneFlow(b *browser) {
	var err error
	switch p.o.mode {
	case "authcode":
		_, err = b.flow(false)
	case "refresh":
		if b.refresh == "" {
			if b.refresh, err = b.flow(false); err != nil {
				p.fail(0, "starting a new refresh chain: "+err.Error())
				return
			}
		}
		err = b.refreshOnce()
	}
	if err != nil {
		p.fail(0, err.Error())
	}
}

// jsonStringValue is the value of a string member of a JSON object when
// it holds no escapes (tokens never do), else "" (see jsonMember).
func jsonStringValue(body []byte, name string) string {
	v := jsonMember(body, name)
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	end := bytes.IndexByte(v[1:], '"')
	if end < 0 || bytes.IndexByte(v[1:end+1], '\\') >= 0 {
		return ""
	}
	return string(v[1 : end+1])
}
