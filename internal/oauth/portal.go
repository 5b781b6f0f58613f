package oauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/httpx"
	"smartgate/internal/problem"
	"smartgate/internal/requestid"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/web"
)

// Portal serves the pages for app developers (docs/portal.md): the
// developer portal at /developers (register an app, then its page with
// the exact requests for this server), the walkthrough at /docs/try and,
// in sandbox mode, the sandbox at /sandbox. The pages are server-rendered
// with the same strict Content-Security-Policy, CSRF double-submit cookies
// and sessions as the sign-in pages; none needs JavaScript.
type Portal struct {
	s *Server
	// self answers the walkthrough's requests in-process: the whole HTTP
	// handler of the node, so each request goes through the same
	// middleware and endpoints a client's would.
	self http.Handler
}

// NewPortal returns the developer pages of s. Call SetHandler with the
// node's handler before serving the walkthrough.
func NewPortal(s *Server) *Portal { return &Portal{s: s} }

// SetHandler sets the handler the walkthrough sends its requests to.
func (p *Portal) SetHandler(h http.Handler) { p.self = h }

var portalTemplates = map[string]*template.Template{}

func init() {
	for _, name := range []string{"developers.html", "developers-app.html", "try.html", "sandbox.html"} {
		portalTemplates[name] = web.Templates(name)
	}
}

// render writes a portal page under the sign-in pages' policy: no script
// at all, styles and images from this origin, forms only to this origin.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) error {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	data["RequestID"] = requestid.From(r.Context())
	data["Issuer"] = p.s.Issuer
	data["FHIRBase"] = p.s.Tokens.Audience()
	data["Dev"] = p.s.Config.Dev
	data["Sandbox"] = p.s.Config.Sandbox
	var b strings.Builder
	if err := portalTemplates[page].ExecuteTemplate(&b, "layout", data); err != nil {
		return problem.Internal(err)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
	return nil
}

// --- /developers ---

// registrationOpen reports whether the portal's form may register without
// a signed-in user: only under registration.policy open (as configured, or
// as an administrator set it at runtime), as for POST /oauth2/register.
// Under policy token (the production default) a signed-in user registers,
// and is named in the audit event; scripts use an initial access token at
// /oauth2/register instead.
func (p *Portal) registrationOpen() bool { return p.s.live().Registration.Policy != "token" }

// registerForm is what the registration form holds, kept to fill the form
// again after a refusal.
type registerForm struct {
	Name, Type, RedirectURIs, LaunchURI, ScopeExtra, JWKS, JWKSURI, Contact string
	Scopes                                                                  []string
}

func (f registerForm) Has(sc string) bool { return slices.Contains(f.Scopes, sc) }

func readRegisterForm(v url.Values) registerForm {
	return registerForm{
		Name: strings.TrimSpace(v.Get("client_name")), Type: v.Get("client_type"),
		RedirectURIs: v.Get("redirect_uris"), LaunchURI: strings.TrimSpace(v.Get("initiate_login_uri")),
		ScopeExtra: strings.TrimSpace(v.Get("scope_extra")), JWKS: strings.TrimSpace(v.Get("jwks")),
		JWKSURI: strings.TrimSpace(v.Get("jwks_uri")), Contact: strings.TrimSpace(v.Get("contact")),
		Scopes: v["scope"],
	}
}

// Developers is GET /developers: the approval policy, the client types,
// every supported scope, and the registration form.
func (p *Portal) Developers(w http.ResponseWriter, r *http.Request) error {
	return p.developersPage(w, r, http.StatusOK, registerForm{Type: Public, RedirectURIs: "http://127.0.0.1/callback", Scopes: []string{"openid", "fhirUser", "launch/patient", "patient/*.rs"}}, "")
}

func (p *Portal) developersPage(w http.ResponseWriter, r *http.Request, status int, f registerForm, errText string) error {
	_, u, _ := p.s.currentSession(r)
	data := map[string]any{
		"CSRF": p.s.csrfToken(w, r), "Form": f, "Error": errText, "User": u.Username,
		"Open": p.registrationOpen(), "CanRegister": p.registrationOpen() || u.ID != "",
		"Catalogue": scopeCatalogue, "KindsV2": permLetters,
	}
	return p.render(w, r, status, "developers.html", data)
}

// metadataFromForm turns the form into RFC 7591 metadata. The grant types
// follow from the scopes: user-facing scopes need authorization_code,
// offline_access or online_access refresh_token, system/ scopes
// client_credentials (docs/portal.md explains the rule).
func metadataFromForm(f registerForm) (store.ClientMetadata, error) {
	md := store.ClientMetadata{ClientName: f.Name, InitiateLoginURI: f.LaunchURI, JWKSURI: f.JWKSURI}
	if f.Name == "" {
		return md, problem.New(problem.InvalidClientMetadata, "the app needs a name: users see it on the consent page")
	}
	switch f.Type {
	case Public:
		md.TokenEndpointAuthMethod = "none"
	case ConfidentialSymmetric:
		md.TokenEndpointAuthMethod = "client_secret_basic"
	case ConfidentialAsymmetric:
		md.TokenEndpointAuthMethod = "private_key_jwt"
	default:
		return md, problem.New(problem.InvalidClientMetadata, "choose a client type: public, confidential-symmetric or confidential-asymmetric")
	}
	for _, line := range strings.Split(f.RedirectURIs, "\n") {
		if u := strings.TrimSpace(line); u != "" {
			md.RedirectURIs = append(md.RedirectURIs, u)
		}
	}
	if f.Contact != "" {
		md.Contacts = []string{f.Contact}
	}
	if f.JWKS != "" {
		if !json.Valid([]byte(f.JWKS)) {
			return md, problem.New(problem.InvalidClientMetadata, "jwks: the key set is not JSON; paste a JWK Set such as {\"keys\":[{\"kty\":\"EC\",...}]} holding only public keys")
		}
		md.JWKS = json.RawMessage(f.JWKS)
	}
	all := append(slices.Clone(f.Scopes), strings.Fields(f.ScopeExtra)...)
	md.Scope = strings.Join(dedupe(all), " ")
	scopes, _ := scope.ParseList(md.Scope)
	var code, refresh, backend bool
	for _, sc := range scopes {
		switch {
		case sc.IsResource() && sc.Context == scope.ContextSystem:
			backend = true
		case sc.Kind == scope.KindOfflineAccess || sc.Kind == scope.KindOnlineAccess:
			refresh, code = true, true
		case sc.Kind == scope.KindAdmin:
		default:
			code = true
		}
	}
	if code {
		md.GrantTypes = append(md.GrantTypes, "authorization_code")
	}
	if refresh {
		md.GrantTypes = append(md.GrantTypes, "refresh_token")
	}
	if backend {
		md.GrantTypes = append(md.GrantTypes, "client_credentials")
	}
	return md, nil
}

// Register is POST /developers/register: it registers the app with the
// approval policy of dynamic registration and sends the browser to the
// app's page, which shows the secrets once.
func (p *Portal) Register(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := p.s.parsePageForm(r); err != nil {
		return err
	}
	f := readRegisterForm(r.PostForm)
	_, u, _ := p.s.currentSession(r)
	if !p.registrationOpen() && u.ID == "" {
		return p.developersPage(w, r, http.StatusForbidden, f, "This server takes registrations only from signed-in users (registration.policy: token). Sign in first, then register; scripts register at /oauth2/register with an initial access token from an administrator.")
	}
	if ok, wait := p.s.registerLimiter.Allow(httpx.ClientIP(r)); !ok {
		w.Header().Set("Retry-After", httpx.RetryAfter(wait))
		return p.developersPage(w, r, http.StatusTooManyRequests, f, "Too many registrations from this address; try again in "+httpx.RetryAfter(wait)+" seconds.")
	}
	actor := "address:" + httpx.ClientIP(r)
	if u.ID != "" {
		actor = "user:" + u.ID
	}
	md, err := metadataFromForm(f)
	var created *Created
	if err == nil {
		created, err = p.s.Clients.Create(ctx, md, Options{})
	}
	if err != nil {
		pe := problem.From(err)
		if pe.ID != problem.InvalidClientMetadata && pe.ID != problem.InvalidRedirectURI {
			return err
		}
		p.s.audit(ctx, audit.Event{Actor: actor, Action: "client.register", Outcome: audit.Failure, Detail: detail("error", string(pe.ID), "via", "portal")})
		p.s.Errors.LogOnly(r, err)
		return p.developersPage(w, r, http.StatusBadRequest, f, pe.Description)
	}
	c := created.Client
	p.s.audit(ctx, audit.Event{Actor: actor, ClientID: c.ID, Action: "client.register", Outcome: audit.Success,
		Detail: detail("status", c.Status, "type", c.Type, "scope", c.Metadata.Scope, "via", "portal")})
	if err := p.setFlash(w, portalFlash{ClientID: c.ID, Secret: created.Secret, RegToken: created.RegistrationToken}); err != nil {
		return err
	}
	http.Redirect(w, r, "/developers/apps/"+url.PathEscape(c.ID), http.StatusSeeOther)
	return nil
}

// portalFlash carries the one-time secrets of a registration (or of a new
// client secret) from the POST to the app page, sealed under the KEK in a
// short-lived cookie that the page clears: they are shown once, and never
// put in a URL.
type portalFlash struct {
	ClientID string `json:"c"`
	Secret   string `json:"s,omitempty"`
	RegToken string `json:"r,omitempty"`
	Expires  int64  `json:"e"`
}

const (
	flashCookie  = "smartgate-portal-flash"
	flashPurpose = "smartgate portal flash v1"
	flashTTL     = 10 * time.Minute
)

func (p *Portal) setFlash(w http.ResponseWriter, f portalFlash) error {
	if p.s.KEK == nil {
		return problem.Internal(errors.New("portal: no KEK to seal the one-time secrets"))
	}
	f.Expires = p.s.Clock().Add(flashTTL).Unix()
	b, _ := json.Marshal(f)
	sealed, err := p.s.KEK.Seal(flashPurpose, b)
	if err != nil {
		return problem.Internal(err)
	}
	p.s.setCookie(w, flashCookie, base64.RawURLEncoding.EncodeToString(sealed), flashTTL)
	return nil
}

// takeFlash returns the flash for clientID and clears the cookie.
func (p *Portal) takeFlash(w http.ResponseWriter, r *http.Request, clientID string) (portalFlash, bool) {
	ck, err := r.Cookie(p.s.cookieName(flashCookie))
	if err != nil || ck.Value == "" || p.s.KEK == nil {
		return portalFlash{}, false
	}
	p.s.clearCookie(w, flashCookie)
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return portalFlash{}, false
	}
	plain, err := p.s.KEK.Open(flashPurpose, raw)
	if err != nil {
		return portalFlash{}, false
	}
	var f portalFlash
	if json.Unmarshal(plain, &f) != nil || f.ClientID != clientID || p.s.Clock().Unix() > f.Expires {
		return portalFlash{}, false
	}
	return f, true
}

// App is GET|POST /developers/apps/{client_id} (and POST /developers/apps
// with client_id in the form), the app's page. Who may
// see it (docs/portal.md "Who can open an app's page"): the browser that
// just registered the app, once, through the sealed flash cookie; after
// that whoever holds the app's registration access token (RFC 7592), typed
// into the page's form (POST, never in the URL). smartgate records no
// owner account for self-registered apps, so the registration access token
// is the credential. Secrets are never shown again: a lost client secret is
// replaced with the form's "new secret" button.
func (p *Portal) App(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("client_id")
	if id == "" && r.Method == http.MethodPost {
		// POST /developers/apps: the portal's "open an app" form.
		_ = r.ParseForm()
		id = strings.TrimSpace(r.PostForm.Get("client_id"))
	}
	csrf := p.s.csrfToken(w, r)
	locked := func(status int, errText string) error {
		return p.render(w, r, status, "developers-app.html", map[string]any{"Locked": true, "ClientID": id, "CSRF": csrf, "Error": errText})
	}
	if r.Method == http.MethodGet {
		f, ok := p.takeFlash(w, r, id)
		if !ok {
			return locked(http.StatusOK, "")
		}
		c, err := p.s.Clients.Get(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return locked(http.StatusNotFound, "No app has this client id (it may have been deleted).")
			}
			return err
		}
		return p.appPage(w, r, c, f, csrf)
	}
	if err := p.s.parsePageForm(r); err != nil {
		return err
	}
	c, err := p.s.Clients.CheckRegistrationToken(ctx, id, strings.TrimSpace(r.PostForm.Get("registration_access_token")))
	if err != nil {
		if problem.IsID(err, problem.RegistrationTokenInvalid) {
			p.s.Errors.LogOnly(r, err)
			return locked(http.StatusUnauthorized, "The registration access token is wrong for this app, or the app does not exist. Paste the registration_access_token shown when you registered it.")
		}
		return err
	}
	if r.PostForm.Get("action") == "rotate-secret" {
		secret, err := p.s.Clients.RotateSecret(ctx, c.ID)
		if err != nil {
			if problem.IsID(err, problem.InvalidClientMetadata) {
				return locked(http.StatusBadRequest, problem.From(err).Description)
			}
			return err
		}
		p.s.audit(ctx, audit.Event{Actor: "client:" + c.ID, ClientID: c.ID, Action: "client.rotate_secret", Outcome: audit.Success, Detail: detail("via", "portal")})
		if err := p.setFlash(w, portalFlash{ClientID: c.ID, Secret: secret}); err != nil {
			return err
		}
		http.Redirect(w, r, "/developers/apps/"+url.PathEscape(c.ID), http.StatusSeeOther)
		return nil
	}
	return p.appPage(w, r, c, portalFlash{}, csrf)
}

func (p *Portal) appPage(w http.ResponseWriter, r *http.Request, c *Client, f portalFlash, csrf string) error {
	view := newAppPageView(p.s.Issuer, p.s.Tokens.Audience(), c, p.s.Config.Dev)
	return p.render(w, r, http.StatusOK, "developers-app.html", map[string]any{
		"App": view, "Secret": f.Secret, "RegToken": f.RegToken, "CSRF": csrf, "ClientID": c.ID,
	})
}
