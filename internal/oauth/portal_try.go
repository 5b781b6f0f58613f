package oauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// The walkthrough at /docs/try (docs/portal.md "The walkthrough") runs the
// authorization-code flow with PKCE step by step for the built-in public
// client smartgate-walkthrough, whose redirect URI is the walkthrough's
// own callback. smartgate plays the app: it makes the PKCE pair and state,
// sends the browser to /oauth2/authorize (the real sign-in and consent
// pages), and on the user's click sends the token request and a FHIR read
// through the node's own handler, showing each exact HTTP exchange. It
// runs on dev and sandbox servers only.

// WalkthroughClientID is the built-in client of the walkthrough.
const WalkthroughClientID = "smartgate-walkthrough"

// walkthroughScope is what the walkthrough asks for: who signed in and
// one patient's records.
const walkthroughScope = "openid fhirUser launch/patient patient/*.rs"

// WalkthroughRedirect is the walkthrough client's redirect URI on issuer.
func WalkthroughRedirect(issuer string) string {
	return strings.TrimRight(issuer, "/") + "/docs/try/callback"
}

// EnsureWalkthroughClient creates the walkthrough's built-in client, or
// points its redirect URI at issuer (a dev server's port may change).
func EnsureWalkthroughClient(ctx context.Context, reg *Registry, issuer string) error {
	md := store.ClientMetadata{
		ClientName: "smartgate walkthrough (/docs/try)", TokenEndpointAuthMethod: "none",
		RedirectURIs: []string{WalkthroughRedirect(issuer)}, GrantTypes: []string{"authorization_code"}, Scope: walkthroughScope,
	}
	c, err := reg.Get(ctx, WalkthroughClientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = reg.Create(ctx, md, Options{ByAdmin: true, ID: WalkthroughClientID})
		if errors.Is(err, store.ErrConflict) {
			return nil // another process made it first
		}
		return err
	case err != nil:
		return err
	}
	if len(c.Metadata.RedirectURIs) == 1 && c.Metadata.RedirectURIs[0] == md.RedirectURIs[0] && c.Metadata.Scope == md.Scope {
		return nil
	}
	_, _, err = reg.Update(ctx, WalkthroughClientID, md, true)
	return err
}

// tryState is what the walkthrough remembers between steps, sealed under
// the KEK: in a cookie until the browser comes back from /authorize (the
// app's "session"), then in the pages' hidden field "try".
type tryState struct {
	Verifier    string `json:"v"`
	State       string `json:"s"`
	Code        string `json:"c,omitempty"`
	AccessToken string `json:"a,omitempty"`
	Patient     string `json:"p,omitempty"`
	Expires     int64  `json:"e"`
}

const (
	tryCookie  = "smartgate-try"
	tryPurpose = "smartgate walkthrough v1"
	tryTTL     = 15 * time.Minute
)

func (p *Portal) sealTry(st tryState) (string, error) {
	if p.s.KEK == nil {
		return "", problem.Internal(errors.New("walkthrough: no KEK"))
	}
	st.Expires = p.s.Clock().Add(tryTTL).Unix()
	b, _ := json.Marshal(st)
	sealed, err := p.s.KEK.Seal(tryPurpose, b)
	if err != nil {
		return "", problem.Internal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (p *Portal) openTry(raw string) (tryState, bool) {
	var st tryState
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || p.s.KEK == nil || len(raw) > 32<<10 {
		return st, false
	}
	plain, err := p.s.KEK.Open(tryPurpose, b)
	if err != nil || json.Unmarshal(plain, &st) != nil || p.s.Clock().Unix() > st.Expires {
		return tryState{}, false
	}
	return st, true
}

// httpExchange is one HTTP request and its response as the page shows them.
type httpExchange struct {
	Request, Response string
	Status            int
	Pretty            string // the response body, indented, when it is JSON
	body              []byte
}

// roundTrip sends req through the node's own handler and records the
// exact request and response.
func (p *Portal) roundTrip(ctx context.Context, method, path string, header http.Header, body string) (*httpExchange, error) {
	if p.self == nil {
		return nil, problem.Internal(errors.New("walkthrough: no handler"))
	}
	u := p.s.Issuer + path
	out, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return nil, problem.Internal(err)
	}
	out.Header = header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	out.Header.Set("User-Agent", "smartgate-walkthrough")
	if body == "" {
		out.Body, out.ContentLength = http.NoBody, 0
	}
	dump, err := httputil.DumpRequestOut(out, true)
	if err != nil {
		return nil, problem.Internal(err)
	}
	in := httptest.NewRequest(method, u, strings.NewReader(body)).WithContext(ctx)
	in.Header = out.Header.Clone()
	in.RemoteAddr = "127.0.0.1:0"
	rec := httptest.NewRecorder()
	p.self.ServeHTTP(rec, in)
	resp := rec.Result()
	respBody := rec.Body.Bytes()
	// As net/http's server would send it: with its Content-Length (the
	// recorder leaves it unknown, which DumpResponse writes as
	// Connection: close).
	resp.ContentLength = int64(len(respBody))
	rdump, err := httputil.DumpResponse(resp, false)
	if err != nil {
		return nil, problem.Internal(err)
	}
	reqText := strings.ReplaceAll(string(dump), "\r\n", "\n")
	if header.Get("Accept-Encoding") == "" {
		// DumpRequestOut shows the Accept-Encoding a Transport would add;
		// the in-process request carries none.
		reqText = strings.Replace(reqText, "Accept-Encoding: gzip\n", "", 1)
	}
	return &httpExchange{
		Request:  reqText,
		Response: strings.ReplaceAll(string(rdump), "\r\n", "\n") + string(respBody),
		Status:   resp.StatusCode, Pretty: prettyJSON(respBody), body: respBody,
	}, nil
}

// tryData is the page data every walkthrough step shares.
func (p *Portal) tryData(w http.ResponseWriter, r *http.Request, step string) map[string]any {
	return map[string]any{"Step": step, "CSRF": p.s.csrfToken(w, r), "ClientID": WalkthroughClientID,
		"RedirectURI": WalkthroughRedirect(p.s.Issuer), "Scope": walkthroughScope}
}

// tryAvailable says why the walkthrough cannot run here ("" when it can).
func (p *Portal) tryAvailable(ctx context.Context) string {
	if !p.s.Config.Dev {
		return "The live walkthrough runs on dev and sandbox servers only (smartgate serve --dev): it signs you in and reads real records with a built-in app. docs/flows/ describe the same flow for each kind of app."
	}
	c, err := p.s.Clients.Get(ctx, WalkthroughClientID)
	if err != nil || c.Status != store.ClientEnabled || !MatchRedirectURI(c.Metadata.RedirectURIs, WalkthroughRedirect(p.s.Issuer)) {
		return "The walkthrough's built-in client " + WalkthroughClientID + " is missing or cannot return to " + WalkthroughRedirect(p.s.Issuer) + " (smartgate creates it at the start of a dev server on a loopback IP address); restart the server with smartgate serve --dev."
	}
	return ""
}

// Try is GET /docs/try: what the walkthrough does, and its start button.
func (p *Portal) Try(w http.ResponseWriter, r *http.Request) error {
	data := p.tryData(w, r, "intro")
	data["Unavailable"] = p.tryAvailable(r.Context())
	return p.render(w, r, http.StatusOK, "try.html", data)
}

// TryStart is POST /docs/try/start: steps 1 to 3 (discovery, PKCE and
// state, the authorization URL).
func (p *Portal) TryStart(w http.ResponseWriter, r *http.Request) error {
	if err := p.s.parsePageForm(r); err != nil {
		return err
	}
	data := p.tryData(w, r, "authorize")
	if why := p.tryAvailable(r.Context()); why != "" {
		data["Step"], data["Unavailable"] = "intro", why
		return p.render(w, r, http.StatusConflict, "try.html", data)
	}
	disc, err := p.roundTrip(r.Context(), http.MethodGet, "/fhir/.well-known/smart-configuration", http.Header{"Accept": {"application/json"}}, "")
	if err != nil {
		return err
	}
	st := tryState{State: randomB64(16)}
	var challenge string
	st.Verifier, challenge = pkcePair()
	sealed, err := p.sealTry(st)
	if err != nil {
		return err
	}
	p.s.setCookie(w, tryCookie, sealed, tryTTL)
	q := url.Values{}
	q.Set("response_type", "code")
	q.Set("client_id", WalkthroughClientID)
	q.Set("redirect_uri", WalkthroughRedirect(p.s.Issuer))
	q.Set("scope", walkthroughScope)
	q.Set("state", st.State)
	q.Set("code_challenge", challenge)
	q.Set("code_challenge_method", "S256")
	q.Set("aud", p.s.Tokens.Audience())
	data["Discovery"] = disc
	data["Verifier"], data["Challenge"], data["State"] = st.Verifier, challenge, st.State
	data["AuthorizeURL"] = p.s.Issuer + "/oauth2/authorize?" + q.Encode()
	data["Params"] = []portalRow{
		{"response_type", "code", "the authorization code flow"},
		{"client_id", WalkthroughClientID, "the app: the walkthrough's built-in public client"},
		{"redirect_uri", WalkthroughRedirect(p.s.Issuer), "where the browser brings the code back: a registered redirect URI, exactly"},
		{"scope", walkthroughScope, "who signed in (openid fhirUser), one patient in context (launch/patient) and read and search access to that patient's records (patient/*.rs)"},
		{"state", st.State, "a random value the app checks on return (against cross-site request forgery)"},
		{"code_challenge", challenge, "BASE64URL(SHA256(code_verifier)): PKCE ties the code to this app"},
		{"code_challenge_method", "S256", "the only method accepted"},
		{"aud", p.s.Tokens.Audience(), "the FHIR server the token is for (SMART App Launch requires it with FHIR scopes)"},
	}
	return p.render(w, r, http.StatusOK, "try.html", data)
}

// TryCallback is GET /docs/try/callback, the walkthrough app's redirect
// URI: step 4, the authorization response.
func (p *Portal) TryCallback(w http.ResponseWriter, r *http.Request) error {
	data := p.tryData(w, r, "callback")
	q := r.URL.Query()
	shown := url.Values{}
	for k, vs := range q {
		shown[k] = vs
	}
	data["CallbackRequest"] = "GET " + r.URL.Path + "?" + shown.Encode() + " HTTP/1.1\nHost: " + r.Host
	var checks []portalRow
	ck, err := r.Cookie(p.s.cookieName(tryCookie))
	var st tryState
	ok := err == nil
	if ok {
		st, ok = p.openTry(ck.Value)
	}
	if !ok {
		data["Problem"] = "This browser holds no walkthrough in progress (it expired after 15 minutes, or cookies are blocked). Start again."
		return p.render(w, r, http.StatusBadRequest, "try.html", data)
	}
	stateOK := q.Get("state") == st.State
	issOK := q.Get("iss") == p.s.Issuer
	checks = append(checks,
		portalRow{"state", q.Get("state"), map[bool]string{true: "matches the state the walkthrough sent: this answer belongs to its request", false: "does NOT match the state sent: an app must refuse this answer"}[stateOK]},
		portalRow{"iss", q.Get("iss"), map[bool]string{true: "is this server (RFC 9207): the answer comes from the server the app started with", false: "is not this server's issuer: an app must refuse this answer"}[issOK]},
	)
	data["Checks"] = checks
	if e := q.Get("error"); e != "" {
		data["Problem"] = "The authorization server answered with error=" + e + ": " + q.Get("error_description")
		data["ErrorURI"] = q.Get("error_uri")
		return p.render(w, r, http.StatusOK, "try.html", data)
	}
	if !stateOK || !issOK || q.Get("code") == "" {
		data["Problem"] = "An app stops here: the answer does not carry a code with the expected state and issuer."
		return p.render(w, r, http.StatusBadRequest, "try.html", data)
	}
	p.s.clearCookie(w, tryCookie)
	st.Code = q.Get("code")
	sealed, err := p.sealTry(st)
	if err != nil {
		return err
	}
	data["Try"] = sealed
	data["Code"] = st.Code
	data["Verifier"] = st.Verifier
	return p.render(w, r, http.StatusOK, "try.html", data)
}

// tryForm reads a step's POST: CSRF, then the sealed state.
func (p *Portal) tryForm(w http.ResponseWriter, r *http.Request, step string) (tryState, map[string]any, error) {
	if err := p.s.parsePageForm(r); err != nil {
		return tryState{}, nil, err
	}
	data := p.tryData(w, r, step)
	st, ok := p.openTry(r.PostForm.Get("try"))
	if !ok {
		data["Problem"] = "This step belongs to a walkthrough that expired (15 minutes) or was not made by this server. Start again."
		return st, data, p.render(w, r, http.StatusBadRequest, "try.html", data)
	}
	return st, data, nil
}

// TryToken is POST /docs/try/token: step 5, the code exchanged at the
// token endpoint.
func (p *Portal) TryToken(w http.ResponseWriter, r *http.Request) error {
	st, data, err := p.tryForm(w, r, "token")
	if err != nil || data["Problem"] != nil {
		return err
	}
	form := url.Values{}
	form.Set("grant_type", "authorization_code")
	form.Set("code", st.Code)
	form.Set("redirect_uri", WalkthroughRedirect(p.s.Issuer))
	form.Set("code_verifier", st.Verifier)
	form.Set("client_id", WalkthroughClientID)
	ex, err := p.roundTrip(r.Context(), http.MethodPost, "/oauth2/token", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}}, form.Encode())
	if err != nil {
		return err
	}
	data["Token"] = ex
	var tr struct {
		AccessToken string `json:"access_token"`
		Patient     string `json:"patient"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(ex.body, &tr)
	if ex.Status != http.StatusOK || tr.AccessToken == "" {
		data["Problem"] = fmt.Sprintf("The token endpoint refused the code (HTTP %d, %s: %s). A code works once and for 60 seconds: start again and exchange it at once.", ex.Status, tr.Error, tr.Description)
		return p.render(w, r, http.StatusOK, "try.html", data)
	}
	data["Claims"] = prettyJSON(jwtPayload(tr.AccessToken))
	st.Code, st.AccessToken, st.Patient = "", tr.AccessToken, tr.Patient
	sealed, err := p.sealTry(st)
	if err != nil {
		return err
	}
	data["Try"], data["Patient"] = sealed, tr.Patient
	return p.render(w, r, http.StatusOK, "try.html", data)
}

// TryFHIR is POST /docs/try/fhir: step 6, a FHIR read with the token.
func (p *Portal) TryFHIR(w http.ResponseWriter, r *http.Request) error {
	st, data, err := p.tryForm(w, r, "fhir")
	if err != nil || data["Problem"] != nil {
		return err
	}
	if st.AccessToken == "" || st.Patient == "" {
		data["Problem"] = "This walkthrough has no access token with a patient yet. Start again."
		return p.render(w, r, http.StatusBadRequest, "try.html", data)
	}
	ex, err := p.roundTrip(r.Context(), http.MethodGet, "/fhir/Patient/"+url.PathEscape(st.Patient), http.Header{"Authorization": {"Bearer " + st.AccessToken}, "Accept": {"application/fhir+json"}}, "")
	if err != nil {
		return err
	}
	data["FHIR"], data["Patient"] = ex, st.Patient
	var res struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	_ = json.Unmarshal(ex.body, &res)
	data["ResourceType"], data["ResourceID"] = res.ResourceType, res.ID
	if ex.Status != http.StatusOK {
		data["Problem"] = fmt.Sprintf("The FHIR API answered HTTP %d; the response above says why.", ex.Status)
	}
	return p.render(w, r, http.StatusOK, "try.html", data)
}

// jwtPayload returns the decoded payload of a JWT (no verification: for
// display only).
func jwtPayload(tok string) []byte {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	return bytes.TrimSpace(b)
}
