package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"smartgate/internal/fhir"
	"smartgate/internal/httpx"
	"smartgate/internal/identity"
	"smartgate/internal/problem"
	"smartgate/internal/requestid"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/web"
)

// Patients is what the pages need from the FHIR data: the patients a user
// may act for (the picker, the EHR launch check).
type Patients interface {
	FindPatients(ctx context.Context, fhirUser string, criteria url.Values, limit int) ([]fhir.PatientChoice, bool, error)
	MayActFor(ctx context.Context, fhirUser, patientID string) (bool, error)
	OwnPatients(ctx context.Context, fhirUser string) ([]fhir.PatientChoice, error)
}

// Cookie names; under HTTPS they carry the __Host- prefix (Secure, no
// Domain, Path=/: a sibling host cannot set or read them).
const (
	sessionCookie = "smartgate-session"
	csrfCookie    = "smartgate-csrf"
)

func (s *Server) secure() bool { return strings.HasPrefix(s.Issuer, "https://") }

func (s *Server) cookieName(base string) string {
	if s.secure() {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(name), Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: s.secure(), SameSite: http.SameSiteLaxMode})
}

func (s *Server) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(name), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure(), SameSite: http.SameSiteLaxMode})
}

// csrfToken returns the request's CSRF token (double submit: the same
// random value in a cookie and in every form), making one when needed.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(s.cookieName(csrfCookie)); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	s.setCookie(w, csrfCookie, v, 24*time.Hour)
	return v
}

// checkCSRF verifies a form's csrf_token against the cookie, in constant
// time.
func (s *Server) checkCSRF(r *http.Request) error {
	ck, err := r.Cookie(s.cookieName(csrfCookie))
	got := r.PostForm.Get("csrf_token")
	if err != nil || ck.Value == "" || got == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(got)) != 1 {
		return problem.New(problem.FormExpired, "the form's security token is missing or does not match this browser's cookie; reload the page and submit it again (cookies must be allowed for this site)")
	}
	return nil
}

// parsePageForm reads a page's POST form and checks its CSRF token.
func (s *Server) parsePageForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return problem.New(problem.InvalidRequest, "the form could not be read; reload the page and try again")
	}
	return s.checkCSRF(r)
}

var pageTemplates = map[string]*template.Template{}

func init() {
	for _, p := range []string{"login.html", "select-patient.html", "consent.html", "apps.html", "logout.html"} {
		pageTemplates[p] = web.Templates(p)
	}
}

// render writes a page. formTo lists the origins a form on the page may
// end up redirecting to (CSP form-action covers redirects after a submit).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any, formTo ...string) error {
	fa := "'self'"
	for _, o := range formTo {
		if o != "" {
			fa += " " + o
		}
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action "+fa+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	data["RequestID"] = requestid.From(r.Context())
	var b strings.Builder
	if err := pageTemplates[page].ExecuteTemplate(&b, "layout", data); err != nil {
		return problem.Internal(err)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
	return nil
}

// origin is the scheme://host[:port] (or "scheme:" for a private-use
// scheme) a form may redirect to.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Scheme + "://" + u.Host
}

// resume reads the sealed request of a page and its client.
func (s *Server) resume(ctx context.Context, sealed string) (*pending, *Client, error) {
	p, err := s.unseal(sealed)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.pendingClient(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	return p, c, nil
}

// pendingClient returns the client of a request in flight, refusing one
// deleted or disabled since.
func (s *Server) pendingClient(ctx context.Context, p *pending) (*Client, error) {
	c, err := s.Clients.Get(ctx, p.ClientID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, problem.New(problem.AuthorizeRequestInvalid, "the app of this sign-in (client %s) was deleted", p.ClientID)
		}
		return nil, err
	}
	if err := statusError(c); err != nil {
		pe := problem.From(err)
		return nil, problem.New(pe.ID, "%s", pe.Description).WithStatus(http.StatusForbidden)
	}
	return c, nil
}

// safeNext is a local path to return to after signing in without an
// authorization request (e.g. /account/apps).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/account/apps"
	}
	return next
}

// Login is GET|POST /login.
func (s *Server) Login(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	data := map[string]any{}
	var p *pending
	var c *Client
	sealed := r.FormValue("auth")
	if sealed != "" {
		var err error
		if p, c, err = s.resume(ctx, sealed); err != nil {
			return err
		}
		data["Auth"] = sealed
		data["Client"] = clientView(c)
		data["Username"] = p.LoginHint
	} else {
		data["Next"] = safeNext(r.FormValue("next"))
	}
	formTo := ""
	if p != nil {
		formTo = origin(p.RedirectURI)
	}
	data["CSRF"] = s.csrfToken(w, r)
	if r.Method != http.MethodPost {
		// An idp hint (docs/federation.md) goes straight to that provider.
		idp := r.URL.Query().Get("idp")
		if p != nil {
			idp = p.IDP
		}
		if u, ok := s.upstreams().byID[idp]; ok && idp != "" {
			return s.startUpstream(w, r, u, p, safeNext(r.URL.Query().Get("next")))
		}
		return s.renderLogin(w, r, http.StatusOK, data, formTo)
	}
	if err := s.parsePageForm(r); err != nil {
		return err
	}
	addr := httpx.ClientIP(r)
	var l identity.Login
	var err error
	if pend := r.PostForm.Get("pending"); pend != "" {
		// Second step: the TOTP code.
		l, err = s.openTOTPPending(ctx, pend)
		if err == nil {
			l, err = s.Users.CompleteTOTP(ctx, l, strings.TrimSpace(r.PostForm.Get("totp")), addr)
		}
		if err != nil {
			if problem.IsID(err, problem.TOTPInvalid) {
				data["TOTP"], data["Pending"] = true, pend
			}
			return s.loginRefused(w, r, data, err, formTo)
		}
	} else {
		username := strings.TrimSpace(r.PostForm.Get("username"))
		data["Username"] = username
		l, err = s.Users.Authenticate(ctx, username, r.PostForm.Get("password"), addr)
		if err != nil {
			return s.loginRefused(w, r, data, err, formTo)
		}
		if l.NeedTOTP {
			pend, err := s.sealTOTPPending(l)
			if err != nil {
				return problem.Internal(err)
			}
			data["TOTP"], data["Pending"] = true, pend
			return s.renderLogin(w, r, http.StatusOK, data, formTo)
		}
	}
	// Start the session and continue the request (or go to next).
	return s.signedIn(w, r, l, c, p, r.PostForm.Get("next"))
}

func (s *Server) loginRefused(w http.ResponseWriter, r *http.Request, data map[string]any, err error, formTo string) error {
	pe := problem.From(err)
	status := http.StatusUnauthorized
	switch pe.ID {
	case problem.LoginFailed:
		data["Error"] = "The username or password is wrong."
	case problem.TOTPInvalid:
		data["Error"] = "The two-factor code is wrong or was used already. Enter the code your authenticator app shows now."
	case problem.LoginThrottled, problem.TOTPEnrollmentRequired:
		data["Error"] = pe.Description
		status = pe.HTTPStatus()
		for k, vs := range pe.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
	default:
		return err
	}
	s.Errors.LogOnly(r, err)
	return s.renderLogin(w, r, status, data, formTo)
}

// renderLogin writes the login page: with a button per upstream provider
// (each form posts to /login/upstream/{id}, which redirects to the
// provider, so CSP form-action allows the providers' origins), or the TOTP
// step.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, data map[string]any, formTo string) error {
	if data["TOTP"] == true {
		return s.render(w, r, status, "login.html", data, formTo)
	}
	data["Providers"] = s.loginProviders()
	return s.render(w, r, status, "login.html", data, append([]string{formTo}, s.providerOrigins()...)...)
}

// totpPending is a first factor that still owes its TOTP code, sealed
// into the second form for five minutes.
type totpPending struct {
	UserID   string `json:"u"`
	AuthTime int64  `json:"t"`
	Expires  int64  `json:"e"`
	// Upstream: the first factor was a sign-in at an upstream provider,
	// whose methods (RFC 8176) AMR lists; otherwise it was a password.
	Upstream bool     `json:"up,omitempty"`
	AMR      []string `json:"a,omitempty"`
}

const totpPurpose = "smartgate totp pending v1"

func (s *Server) sealTOTPPending(l identity.Login) (string, error) {
	tp := totpPending{UserID: l.User.ID, AuthTime: l.AuthTime.Unix(), Expires: s.Clock().Add(5 * time.Minute).Unix()}
	if !slices.Equal(l.AMR, []string{identity.AMRPassword}) {
		tp.Upstream, tp.AMR = true, l.AMR
	}
	b, _ := json.Marshal(tp)
	sealed, err := s.KEK.Seal(totpPurpose, b)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (s *Server) openTOTPPending(ctx context.Context, raw string) (identity.Login, error) {
	expired := problem.New(problem.LoginFailed, "the sign-in expired; enter the username and password again")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return identity.Login{}, expired
	}
	plain, err := s.KEK.Open(totpPurpose, b)
	if err != nil {
		return identity.Login{}, expired
	}
	var tp totpPending
	if json.Unmarshal(plain, &tp) != nil || s.Clock().Unix() > tp.Expires {
		return identity.Login{}, expired
	}
	u, err := s.Store.GetUser(ctx, tp.UserID)
	if err != nil {
		return identity.Login{}, expired
	}
	amr := []string{identity.AMRPassword}
	if tp.Upstream {
		amr = tp.AMR
	}
	return identity.Login{User: u, AuthTime: time.Unix(tp.AuthTime, 0), AMR: amr, NeedTOTP: true}, nil
}

type clientInfo struct {
	ID, Name, LogoURI, ClientURI, PolicyURI, TOSURI string
	Unverified                                      bool
}

func clientView(c *Client) clientInfo {
	return clientInfo{ID: c.ID, Name: clientName(c), LogoURI: c.Metadata.LogoURI, ClientURI: c.Metadata.ClientURI,
		PolicyURI: c.Metadata.PolicyURI, TOSURI: c.Metadata.TOSURI, Unverified: !c.Verified}
}

// pageSession returns the signed-in user of a page request within an
// authorization request, or sends the browser back to sign in.
func (s *Server) pageSession(w http.ResponseWriter, r *http.Request, c *Client, p *pending) (*store.LoginSession, store.User, bool, error) {
	sess, u, _ := s.currentSession(r)
	if sess == nil || (p.UserID != "" && p.UserID != u.ID) {
		p.UserID, p.Patient, p.Consented = "", "", nil
		return nil, u, false, s.toPage(w, r, "/login", p)
	}
	return sess, u, true, nil
}

// SelectPatient is GET|POST /select-patient: a practitioner (or a user
// acting for several patients) picks the patient of the launch context.
func (s *Server) SelectPatient(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, c, err := s.resume(ctx, r.FormValue("auth"))
	if err != nil {
		return err
	}
	_, u, ok, err := s.pageSession(w, r, c, p)
	if !ok {
		return err
	}
	csrf := s.csrfToken(w, r)
	if r.Method == http.MethodPost {
		if err := s.parsePageForm(r); err != nil {
			return err
		}
		id := r.PostForm.Get("patient")
		may, err := s.Patients.MayActFor(ctx, u.FHIRUser, id)
		if err != nil {
			return err
		}
		if !may {
			return problem.New(problem.AccessDenied, "you may not open the record of Patient/%s; choose a patient from the list", id)
		}
		p.UserID, p.Patient = u.ID, id
		return s.proceed(w, r, c, p)
	}
	criteria := url.Values{}
	for _, k := range []string{"name", "birthdate", "identifier"} {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			criteria.Set(k, v)
		}
	}
	data := map[string]any{"Auth": r.FormValue("auth"), "CSRF": csrf, "Client": clientView(c), "User": u.Username,
		"Name": criteria.Get("name"), "BirthDate": criteria.Get("birthdate"), "Identifier": criteria.Get("identifier")}
	found, more, err := s.Patients.FindPatients(ctx, u.FHIRUser, criteria, 50)
	if err != nil {
		if pe := problem.From(err); pe.ID == problem.SearchParameterInvalid {
			data["Error"] = pe.Description
			return s.render(w, r, http.StatusBadRequest, "select-patient.html", data, origin(p.RedirectURI))
		}
		return err
	}
	data["Patients"], data["More"], data["Searched"] = found, more, len(criteria) > 0
	return s.render(w, r, http.StatusOK, "select-patient.html", data, origin(p.RedirectURI))
}

// scopeLine is one scope on the consent page, in plain language.
type scopeLine struct {
	Scope, Text string
}

type scopeGroup struct {
	Title string
	Lines []scopeLine
}

// describeScopes groups scopes for the consent page: by what they let the
// app do, each in plain language.
func describeScopes(ss []scope.Scope) []scopeGroup {
	groups := map[string]*scopeGroup{}
	var order []string
	add := func(title string, l scopeLine) {
		g, ok := groups[title]
		if !ok {
			g = &scopeGroup{Title: title}
			groups[title] = g
			order = append(order, title)
		}
		g.Lines = append(g.Lines, l)
	}
	for _, sc := range ss {
		switch sc.Kind {
		case scope.KindResource:
			what := "all kinds of records"
			if sc.Resource != "*" {
				what = resourceNoun(sc.Resource)
			}
			whose := map[string]string{scope.ContextPatient: "of the selected patient", scope.ContextUser: "you can see", scope.ContextSystem: "of every patient"}[sc.Context]
			var verbs []string
			for _, pv := range []struct {
				p scope.Perms
				v string
			}{{scope.PermR, "read"}, {scope.PermS, "search"}, {scope.PermC, "create"}, {scope.PermU, "change"}, {scope.PermD, "delete"}} {
				if sc.Perms.Has(pv.p) {
					verbs = append(verbs, pv.v)
				}
			}
			text := capitalize(joinWords(verbs)) + " " + what + " " + whose
			if sc.Constrained() {
				text += " (only those matching " + sc.Query.Encode() + ")"
			}
			title := "Health records"
			if sc.Perms.Has(scope.PermC) || sc.Perms.Has(scope.PermU) || sc.Perms.Has(scope.PermD) {
				title = "Change health records"
			}
			add(title, scopeLine{sc.Raw, text})
		case scope.KindOpenID:
			add("Who you are", scopeLine{sc.Raw, "Know that it is you who signed in"})
		case scope.KindFHIRUser:
			add("Who you are", scopeLine{sc.Raw, "See your own record (as a patient, related person or practitioner)"})
		case scope.KindProfile:
			add("Who you are", scopeLine{sc.Raw, "See your username"})
		case scope.KindLaunch:
			add("Context", scopeLine{sc.Raw, "Receive the patient and encounter open in the EHR"})
		case scope.KindLaunchPatient:
			add("Context", scopeLine{sc.Raw, "Know which patient's record is open"})
		case scope.KindLaunchEncounter:
			add("Context", scopeLine{sc.Raw, "Know which encounter is open"})
		case scope.KindOfflineAccess:
			add("How long", scopeLine{sc.Raw, "Keep access after you sign out, until you revoke it (up to a year)"})
		case scope.KindOnlineAccess:
			add("How long", scopeLine{sc.Raw, "Keep access while you stay signed in"})
		case scope.KindAdmin:
			add("Administration", scopeLine{sc.Raw, "Administer smartgate on your behalf"})
		}
	}
	out := make([]scopeGroup, 0, len(order))
	for _, t := range order {
		out = append(out, *groups[t])
	}
	return out
}

func resourceNoun(typ string) string {
	var b strings.Builder
	for i, r := range typ {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String() + " records"
}

func joinWords(ws []string) string {
	switch len(ws) {
	case 0:
		return ""
	case 1:
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " and " + ws[len(ws)-1]
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Consent is GET|POST /consent.
func (s *Server) Consent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, c, err := s.resume(ctx, r.FormValue("auth"))
	if err != nil {
		return err
	}
	_, u, ok, err := s.pageSession(w, r, c, p)
	if !ok {
		return err
	}
	requested := p.scopes()
	if r.Method == http.MethodPost {
		if err := s.parsePageForm(r); err != nil {
			return err
		}
		if r.PostForm.Get("decision") != "approve" {
			return s.authorizeFailed(w, r, c, &authzError{err: problem.New(problem.AccessDenied, "the user declined to authorize %s", clientName(c)), redirectURI: p.RedirectURI, state: p.State})
		}
		ticked := r.PostForm["scope"]
		var granted []scope.Scope
		for _, sc := range requested {
			if slices.Contains(ticked, sc.Raw) {
				granted = append(granted, sc)
			}
		}
		if len(granted) == 0 {
			return s.authorizeFailed(w, r, c, &authzError{err: problem.New(problem.AccessDenied, "the user unticked every scope, so nothing was granted"), redirectURI: p.RedirectURI, state: p.State})
		}
		joined := scope.Join(granted)
		if err := s.Store.PutConsent(ctx, store.Consent{ClientID: c.ID, Subject: u.ID, Scope: joined, CreatedAt: s.Clock().UTC()}); err != nil {
			return err
		}
		p.UserID, p.Consented = u.ID, &joined
		return s.proceed(w, r, c, p)
	}
	var shown []scope.Scope
	for _, sc := range requested {
		if sc.Kind != scope.KindAdmin || u.Role == store.RoleAdmin {
			shown = append(shown, sc)
		}
	}
	data := map[string]any{"Auth": r.FormValue("auth"), "CSRF": s.csrfToken(w, r), "Client": clientView(c), "User": u.Username,
		"Groups": describeScopes(shown), "Patient": p.Patient}
	if p.Launch != nil && p.Launch.Patient != "" {
		data["Patient"] = p.Launch.Patient
	}
	return s.render(w, r, http.StatusOK, "consent.html", data, origin(p.RedirectURI))
}
