package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/identity"
	"smartgate/internal/problem"
	"smartgate/internal/requestid"
	"smartgate/internal/scope"
	"smartgate/internal/store"
)

// CodeTTL is how long an authorization code lives (DESIGN.md: 60 s).
const CodeTTL = 60 * time.Second

// PARTTL is how long a pushed request_uri lives (RFC 9126 §2.2 suggests
// a short time; 90 s leaves the browser time to follow it).
const PARTTL = 90 * time.Second

// requestURIPrefix starts every request_uri smartgate issues (RFC 9126 §2.2).
const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// authorizeParams are the parameters /oauth2/authorize and /oauth2/par
// read; any other is ignored (RFC 6749 §3.1).
var authorizeParams = []string{"response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method",
	"aud", "nonce", "launch", "prompt", "max_age", "login_hint", "request_uri", "response_mode", "request", "idp"}

// launchContext is the SMART launch context an EHR launch carries.
type launchContext struct {
	Patient     string            `json:"patient,omitempty"`
	Encounter   string            `json:"encounter,omitempty"`
	FHIRContext []json.RawMessage `json:"fhirContext,omitempty"`
	NeedBanner  *bool             `json:"need_patient_banner,omitempty"`
	Intent      string            `json:"intent,omitempty"`
}

// pending is an authorization request on its way through the pages
// (login, patient picker, consent). It travels sealed under the KEK in
// the pages' URLs and forms, so any node can continue it and nothing is
// stored until a code is issued.
type pending struct {
	ClientID    string         `json:"c"`
	RedirectURI string         `json:"r"`
	State       string         `json:"s,omitempty"`
	Challenge   string         `json:"pc,omitempty"`
	Nonce       string         `json:"n,omitempty"`
	Scope       string         `json:"sc"` // requested ∩ registered ∩ allowed
	Prompt      string         `json:"p,omitempty"`
	MaxAge      int64          `json:"ma"` // -1: none
	LoginHint   string         `json:"lh,omitempty"`
	IDP         string         `json:"idp,omitempty"` // sign in at this upstream provider (docs/federation.md)
	Launch      *launchContext `json:"l,omitempty"`
	Started     int64          `json:"t"`
	Expires     int64          `json:"e"`
	UserID      string         `json:"u,omitempty"`  // the user the choices below belong to
	LoginAt     int64          `json:"la,omitempty"` // a sign-in during this request (prompt=login)
	Patient     string         `json:"pt,omitempty"`
	Consented   *string        `json:"g,omitempty"` // scopes granted on the consent page
}

func (p *pending) scopes() []scope.Scope {
	ss, _ := scope.ParseList(p.Scope)
	return ss
}

func (p *pending) prompts(v string) bool {
	return slices.Contains(strings.Fields(p.Prompt), v)
}

const sealPurpose = "smartgate authorize request v1"

// seal encrypts p for a page URL or form field.
func (s *Server) seal(p *pending) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	if s.KEK == nil {
		return "", errors.New("oauth: no KEK to seal authorization requests")
	}
	sealed, err := s.KEK.Seal(sealPurpose, b)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// unseal opens a sealed request; anything altered, foreign or expired is
// authorize_request_expired.
func (s *Server) unseal(raw string) (*pending, error) {
	expired := problem.New(problem.AuthorizeRequestExpired, "this sign-in page belongs to an authorization request that expired or was not made by this server; go back to the app and start again")
	if raw == "" || len(raw) > 16<<10 || s.KEK == nil {
		return nil, expired
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, expired
	}
	plain, err := s.KEK.Open(sealPurpose, b)
	if err != nil {
		return nil, expired
	}
	var p pending
	if err := json.Unmarshal(plain, &p); err != nil || s.Clock().Unix() > p.Expires {
		return nil, expired
	}
	return &p, nil
}

// authzError is an error after client_id and redirect_uri were validated:
// it goes back to the app as a redirect (RFC 6749 §4.1.2.1).
type authzError struct {
	err         *problem.Error
	redirectURI string
	state       string
}

func (e *authzError) Error() string { return e.err.Error() }

// readAuthorizeParams reads the request's parameters: the query of a GET,
// the form body of a POST (SMART authorize-post).
func readAuthorizeParams(r *http.Request) (url.Values, error) {
	var q url.Values
	if r.Method == http.MethodPost {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "application/json" {
			return nil, browserStep("the request has a JSON body")
		}
		if mt != "application/x-www-form-urlencoded" {
			return nil, problem.New(problem.AuthorizeRequestInvalid, "a POST to /oauth2/authorize must be a form (Content-Type application/x-www-form-urlencoded), as an HTML form sends it")
		}
		if err := r.ParseForm(); err != nil {
			return nil, problem.New(problem.AuthorizeRequestInvalid, "the form body is not valid application/x-www-form-urlencoded")
		}
		q = r.PostForm
	} else {
		var err error
		if q, err = url.ParseQuery(r.URL.RawQuery); err != nil {
			return nil, problem.New(problem.AuthorizeRequestInvalid, "the query string is not valid (name=value pairs joined by &, percent-encoded)")
		}
	}
	for _, k := range authorizeParams {
		if len(q[k]) > 1 {
			return nil, problem.New(problem.AuthorizeRequestInvalid, "parameter %q appears %d times; send each parameter once (RFC 6749 section 3.1)", k, len(q[k]))
		}
	}
	return q, nil
}

func browserStep(why string) error {
	return problem.New(problem.AuthorizeBrowserStep, "%s, but /oauth2/authorize is a browser step: send the user's browser there and the app's redirect_uri receives the code. A script without a user uses SMART Backend Services (grant_type=client_credentials with a signed client_assertion); a command-line tool uses the loopback flow (`smartgate token`). See docs/flows/", why)
}

// wantsJSON reports a script calling the browser endpoint: a JSON body, or
// Accept naming JSON and not HTML.
func wantsJSON(r *http.Request) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		return true
	}
	acc := r.Header.Get("Accept")
	return strings.Contains(acc, "json") && !strings.Contains(acc, "text/html")
}

// Authorize is GET|POST /oauth2/authorize.
func (s *Server) Authorize(w http.ResponseWriter, r *http.Request) error {
	if wantsJSON(r) {
		why := "the request asks for JSON (Accept: " + r.Header.Get("Accept") + ")"
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
			why = "the request has a JSON body"
		}
		s.Errors.Write(w, r, problem.SurfaceOAuth, browserStep(why))
		return nil
	}
	q, err := readAuthorizeParams(r)
	if err != nil {
		return err
	}
	p, c, err := s.validateAuthorize(r.Context(), q, false)
	if err != nil {
		return s.authorizeFailed(w, r, c, err)
	}
	if err := s.sandboxAuthorizeError(r, c, p); err != nil {
		return s.authorizeFailed(w, r, c, err)
	}
	if err := s.takeLaunch(r.Context(), q.Get("launch"), c, p); err != nil {
		return s.authorizeFailed(w, r, c, err)
	}
	return s.proceed(w, r, c, p)
}

// authorizeFailed answers an error: a redirect to the app once its
// redirect_uri is known good, else the HTML page (the route's surface).
func (s *Server) authorizeFailed(w http.ResponseWriter, r *http.Request, c *Client, err error) error {
	var ae *authzError
	if !errors.As(err, &ae) {
		return err
	}
	id := ""
	if c != nil {
		id = c.ID
	}
	s.audit(r.Context(), audit.Event{Actor: "client:" + id, ClientID: id, Action: "authorize.refuse", Outcome: audit.Failure,
		Detail: detail("error", ae.err.Entry().Code, "description", ae.err.Description)})
	s.Errors.LogOnly(r, ae.err)
	v := url.Values{}
	v.Set("error", ae.err.Entry().Code)
	v.Set("error_description", ae.err.Description+" (request id "+requestid.From(r.Context())+")")
	v.Set("error_uri", s.Errors.DocURL(ae.err.ID))
	if ae.state != "" {
		v.Set("state", ae.state)
	}
	v.Set("iss", s.Issuer)
	http.Redirect(w, r, withQuery(ae.redirectURI, v), http.StatusSeeOther)
	return nil
}

func withQuery(base string, v url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + v.Encode()
}

// validateAuthorize checks an authorization request (also a pushed one,
// par true: then the client authenticated already and every error is
// JSON). It returns the client as soon as client_id and redirect_uri are
// known good; errors after that point are *authzError.
func (s *Server) validateAuthorize(ctx context.Context, q url.Values, par bool) (*pending, *Client, error) {
	clientID := q.Get("client_id")
	if clientID == "" {
		return nil, nil, problem.New(problem.AuthorizeRequestInvalid, "client_id is missing; send the client_id the app received at registration")
	}
	c, err := s.Clients.Get(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, problem.New(problem.AuthorizeRequestInvalid, "client_id %q is not registered here; register the app first (POST /oauth2/register or smartgate client create)", clientID)
	}
	if err != nil {
		return nil, nil, err
	}
	if !par {
		if ru := q.Get("request_uri"); ru != "" {
			pq, err := s.takePushed(ctx, ru, c)
			if err != nil {
				return nil, c, err
			}
			q = pq
		} else if c.RequirePAR {
			return nil, c, problem.New(problem.AuthorizeRequestInvalid, "client %s must push its authorization requests first (POST /oauth2/par, RFC 9126) and send only client_id and request_uri here", c.ID)
		}
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		return nil, c, problem.New(problem.AuthorizeRequestInvalid, "redirect_uri is missing; send one of the client's registered redirect_uris (smartgate requires it, so that the code goes only where the app said)")
	}
	if !MatchRedirectURI(c.Metadata.RedirectURIs, redirectURI) {
		return nil, c, problem.New(problem.AuthorizeRequestInvalid, "redirect_uri %q is not registered for client %s; it must match one of %s exactly (only the port of an http://127.0.0.1 or http://[::1] URI may differ)", redirectURI, c.ID, strings.Join(c.Metadata.RedirectURIs, ", "))
	}
	if err := statusError(c); err != nil {
		// Pending or disabled: the page names the fix, no redirect. Not 401
		// with WWW-Authenticate: Basic, which a browser would answer with
		// its own password dialog.
		pe := problem.From(err)
		out := problem.New(pe.ID, "%s", pe.Description).WithStatus(http.StatusForbidden)
		if par {
			return nil, c, err
		}
		return nil, c, out
	}
	state := q.Get("state")
	fail := func(id problem.ID, format string, args ...any) (*pending, *Client, error) {
		return nil, c, &authzError{err: problem.New(id, format, args...), redirectURI: redirectURI, state: state}
	}
	if q.Get("request") != "" {
		return fail(problem.InvalidRequest, "request objects (the request parameter) are not supported; send the parameters directly or push them with POST /oauth2/par")
	}
	switch rt := q.Get("response_type"); rt {
	case "code":
	case "":
		return fail(problem.InvalidRequest, "response_type is missing; send response_type=code")
	default:
		return fail(problem.UnsupportedResponseType, "response_type %q is not supported; only code (the authorization code flow with PKCE) is", rt)
	}
	if rm := q.Get("response_mode"); rm != "" && rm != "query" {
		return fail(problem.InvalidRequest, "response_mode %q is not supported; only query is", rm)
	}
	if !slices.Contains(c.Metadata.GrantTypes, "authorization_code") {
		return fail(problem.UnauthorizedClient, "client %s did not register the authorization_code grant; an administrator adds it with: smartgate client update %s --grant-type authorization_code", c.ID, c.ID)
	}
	if state == "" {
		return fail(problem.InvalidRequest, "state is missing; send a random, unguessable state and check it when the browser comes back (it protects the app against cross-site request forgery; SMART App Launch requires it)")
	}
	if len(state) > 2048 {
		return fail(problem.InvalidRequest, "state is longer than 2048 characters")
	}

	// Scopes: requested ∩ registered ∩ what a browser grant may carry.
	var requested []scope.Scope
	if strings.TrimSpace(q.Get("scope")) == "" {
		return fail(problem.InvalidScope, "scope is missing; ask for what the app needs, e.g. scope=openid fhirUser launch/patient patient/*.rs")
	}
	requested, bad := scope.ParseList(q.Get("scope"))
	if len(bad) > 0 {
		return fail(problem.InvalidScope, "%s", scope.Describe(bad))
	}
	if i := slices.IndexFunc(requested, func(sc scope.Scope) bool { return sc.IsResource() && sc.Context == scope.ContextSystem }); i >= 0 && len(requested) == 1 {
		return fail(problem.InvalidScope, "%s is a system/ scope: system/ scopes are for backend services without a user (grant_type=client_credentials with a signed client assertion, docs/flows/backend-service.md), not for a user's sign-in; ask for patient/ or user/ scopes here", requested[i].Raw)
	}
	launch := q.Get("launch")
	hasRefresh := slices.Contains(c.Metadata.GrantTypes, "refresh_token")
	granted, dropped := scope.Narrow(requested, c.Scopes, func(sc scope.Scope) (bool, string) {
		switch {
		case sc.IsResource() && sc.Context == scope.ContextSystem:
			return false, "system/ scopes are for backend services (client_credentials), not for a user's browser sign-in"
		case sc.Kind == scope.KindLaunch && launch == "":
			return false, "the launch scope is for EHR launches; it comes with a launch parameter from the EHR"
		case sc.Kind == scope.KindLaunchEncounter && launch == "":
			return false, "smartgate has no encounter picker; an encounter comes only from an EHR launch"
		case (sc.Kind == scope.KindOfflineAccess || sc.Kind == scope.KindOnlineAccess) && !hasRefresh:
			return false, "the client did not register the refresh_token grant"
		}
		return true, ""
	})
	if len(granted) == 0 {
		return fail(problem.InvalidScope, "no scope left to grant: %s", scope.Describe(dropped))
	}
	fhirScopes := slices.ContainsFunc(granted, func(sc scope.Scope) bool {
		return sc.IsResource() || sc.Kind == scope.KindLaunch || sc.Kind == scope.KindLaunchPatient || sc.Kind == scope.KindLaunchEncounter
	})

	// aud: the FHIR base this token is for (SMART App Launch: required).
	aud := strings.TrimRight(q.Get("aud"), "/")
	if fhirScopes {
		if q.Get("aud") == "" {
			return fail(problem.InvalidRequest, "aud is missing; FHIR scopes need aud=%s, the FHIR base URL the app will call (SMART App Launch)", s.Tokens.Audience())
		}
		if aud != s.Tokens.Audience() {
			return fail(problem.InvalidRequest, "aud %q is not this server's FHIR base; send aud=%s (a token is never issued for another server's FHIR API)", q.Get("aud"), s.Tokens.Audience())
		}
	} else if q.Get("aud") != "" && aud != s.Tokens.Audience() {
		return fail(problem.InvalidRequest, "aud %q is not this server's FHIR base; send aud=%s or leave it out", q.Get("aud"), s.Tokens.Audience())
	}

	// PKCE (RFC 7636), S256 only.
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method == "":
		if fhirScopes || !(c.PKCEExempt && c.Type != Public) {
			return fail(problem.InvalidRequest, "code_challenge is missing; PKCE is required: send code_challenge=BASE64URL(SHA256(code_verifier)) and code_challenge_method=S256 (RFC 7636)")
		}
	case method != "S256":
		if method == "" || method == "plain" {
			return fail(problem.InvalidRequest, "code_challenge_method must be S256; plain (or a missing method, which means plain) is refused because it does not protect the code")
		}
		return fail(problem.InvalidRequest, "code_challenge_method %q is not supported; use S256", method)
	case challenge == "":
		return fail(problem.InvalidRequest, "code_challenge is missing although code_challenge_method is given")
	case !validVerifierShape(challenge) || len(challenge) != 43:
		return fail(problem.InvalidRequest, "code_challenge is not a base64url SHA-256 (43 characters of A-Z a-z 0-9 - _)")
	}

	prompt := q.Get("prompt")
	for _, v := range strings.Fields(prompt) {
		if v != "none" && v != "login" && v != "consent" {
			if v == "select_account" {
				return fail(problem.InvalidRequest, "prompt=select_account is not supported; use prompt=login to let the user sign in with another account")
			}
			return fail(problem.InvalidRequest, "prompt %q is not supported; use none, login or consent", v)
		}
	}
	if slices.Contains(strings.Fields(prompt), "none") && len(strings.Fields(prompt)) > 1 {
		return fail(problem.InvalidRequest, "prompt=none cannot be combined with other prompt values (OpenID Connect Core section 3.1.2.1)")
	}
	maxAge := int64(-1)
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fail(problem.InvalidRequest, "max_age must be a whole number of seconds, 0 or more, not %q", v)
		}
		maxAge = n
	}
	nonce := q.Get("nonce")
	if len(nonce) > 512 {
		return fail(problem.InvalidRequest, "nonce is longer than 512 characters")
	}
	if launch != "" && !slices.ContainsFunc(granted, func(sc scope.Scope) bool { return sc.Kind == scope.KindLaunch }) {
		return fail(problem.InvalidScope, "the request has a launch parameter but not the launch scope; an EHR launch asks for scope=launch ... (SMART App Launch)")
	}
	idp := q.Get("idp")
	if idp != "" {
		if err := s.knownProvider(idp); err != nil {
			return fail(problem.InvalidRequest, "%v", err)
		}
	}
	now := s.Clock()
	return &pending{
		ClientID: c.ID, RedirectURI: redirectURI, State: state, Challenge: challenge, Nonce: nonce,
		Scope: scope.Join(granted), Prompt: prompt, MaxAge: maxAge, LoginHint: q.Get("login_hint"), IDP: idp,
		Started: now.Unix(), Expires: now.Add(s.Config.Authorize.RequestTTL.D()).Unix(),
	}, c, nil
}

// validVerifierShape reports whether v uses only the RFC 7636 §4.1
// unreserved characters.
func validVerifierShape(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// takeLaunch resolves an EHR launch id into the request (single use).
func (s *Server) takeLaunch(ctx context.Context, launch string, c *Client, p *pending) error {
	if launch == "" {
		return nil
	}
	fail := func(format string, args ...any) error {
		return &authzError{err: problem.New(problem.LaunchInvalid, format, args...), redirectURI: p.RedirectURI, state: p.State}
	}
	h := sha256.Sum256([]byte(launch))
	l, err := s.Store.TakeLaunch(ctx, h[:], c.ID, s.Clock())
	switch {
	case errors.Is(err, store.ErrAccessDenied):
		// Left for the app it was made for.
		return fail("the launch was made for another app, not for client %s", c.ID)
	case errors.Is(err, store.ErrNotFound):
		return fail("the launch %q is unknown or was used already; launch the app again from the EHR", launch)
	case errors.Is(err, store.ErrExpired):
		return fail("the launch expired (launches are valid for %s); launch the app again from the EHR", LaunchTTL)
	case err != nil:
		return err
	}
	if l.ClientID != c.ID {
		return fail("the launch was made for another app, not for client %s", c.ID)
	}
	var lc launchContext
	if err := json.Unmarshal(l.Context, &lc); err != nil {
		return problem.Internal(err)
	}
	p.Launch = &lc
	return nil
}

// needsPatient reports whether the grant needs a patient in context: it
// asks for launch/patient, or for patient/ scopes (useless without one).
func needsPatient(ss []scope.Scope) bool {
	return slices.ContainsFunc(ss, func(sc scope.Scope) bool {
		return sc.Kind == scope.KindLaunchPatient || sc.IsResource() && sc.Context == scope.ContextPatient
	})
}

// proceed takes a validated request one step further: to the sign-in
// page, the patient picker, the consent page, or back to the app with a
// code. Every page calls it again after its step.
func (s *Server) proceed(w http.ResponseWriter, r *http.Request, c *Client, p *pending) error {
	sess, user, sid := s.currentSession(r)
	return s.proceedAs(w, r, c, p, sess, user, sid)
}

// proceedAs is proceed for a known session (nil: nobody signed in).
func (s *Server) proceedAs(w http.ResponseWriter, r *http.Request, c *Client, p *pending, sess *store.LoginSession, user store.User, sid string) error {
	ctx := r.Context()
	fail := func(id problem.ID, format string, args ...any) error {
		return s.authorizeFailed(w, r, c, &authzError{err: problem.New(id, format, args...), redirectURI: p.RedirectURI, state: p.State})
	}
	now := s.Clock()
	needLogin := sess == nil ||
		(p.prompts("login") && p.LoginAt == 0) ||
		(p.MaxAge >= 0 && p.LoginAt == 0 && now.Sub(sess.AuthTime) > time.Duration(p.MaxAge)*time.Second)
	if needLogin {
		if p.prompts("none") {
			return fail(problem.LoginRequired, "nobody is signed in (or the sign-in is older than max_age), and prompt=none forbids showing the sign-in page")
		}
		return s.toPage(w, r, "/login", p)
	}
	if p.UserID != user.ID {
		// Another user signed in during the flow: their choices start over.
		p.UserID, p.Patient, p.Consented = user.ID, "", nil
	}
	requested := p.scopes()

	// Scopes that depend on who the user is.
	var forUser []scope.Scope
	var droppedForUser []string
	for _, sc := range requested {
		if sc.Kind == scope.KindAdmin && user.Role != store.RoleAdmin {
			droppedForUser = append(droppedForUser, sc.Raw)
			continue
		}
		forUser = append(forUser, sc)
	}
	if len(forUser) == 0 {
		return fail(problem.AccessDenied, "the signed-in user may not receive %s (only administrators may)", strings.Join(droppedForUser, " "))
	}

	// Launch context: the EHR's patient, or one the user picks.
	if p.Launch != nil && p.Launch.Patient != "" {
		ok, err := s.Patients.MayActFor(ctx, user.FHIRUser, p.Launch.Patient)
		if err != nil {
			return err
		}
		if !ok {
			return fail(problem.AccessDenied, "the signed-in user (%s) may not act for Patient/%s, the patient of this launch", user.Username, p.Launch.Patient)
		}
	} else if needsPatient(forUser) && p.Patient == "" {
		if user.FHIRUser == "" {
			return fail(problem.AccessDenied, "the signed-in account %s has no FHIR record (fhirUser), so it cannot open patient data; sign in as a practitioner or a patient", user.Username)
		}
		switch user.Role {
		case store.RolePatient, store.RoleRelatedPerson:
			own, err := s.Patients.OwnPatients(ctx, user.FHIRUser)
			if err != nil {
				return err
			}
			switch len(own) {
			case 0:
				return fail(problem.AccessDenied, "the signed-in user (%s) is linked to %s, which gives access to no patient record", user.Username, user.FHIRUser)
			case 1:
				p.Patient = own[0].ID
			default:
				if p.prompts("none") {
					return fail(problem.InteractionRequired, "the user must choose which patient's record to open, and prompt=none forbids showing the choice")
				}
				return s.toPage(w, r, "/select-patient", p)
			}
		default:
			if p.prompts("none") {
				return fail(problem.InteractionRequired, "the user must choose a patient, and prompt=none forbids showing the patient picker")
			}
			return s.toPage(w, r, "/select-patient", p)
		}
	}

	// Consent.
	var granted []scope.Scope
	if p.Consented != nil {
		granted, _ = scope.ParseList(*p.Consented)
	} else {
		remembered := false
		if !p.prompts("consent") {
			if s.Config.Authorize.ConsentFreeAdminClients && c.CreatedBy == "admin" {
				remembered = true
			} else if cs, err := s.Store.GetConsent(ctx, c.ID, user.ID); err == nil {
				have, _ := scope.ParseList(cs.Scope)
				remembered = allCovered(forUser, have)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if !remembered {
			if p.prompts("none") {
				return fail(problem.ConsentRequired, "the user has not yet agreed to give %s these scopes, and prompt=none forbids showing the consent page", clientName(c))
			}
			return s.toPage(w, r, "/consent", p)
		}
		granted = forUser
	}
	if len(granted) == 0 {
		return fail(problem.AccessDenied, "the user granted no scope")
	}
	return s.issueCode(w, r, c, p, sess, sid, user, granted)
}

func allCovered(want, have []scope.Scope) bool {
	for _, w := range want {
		if !coveredBy(w, have) {
			return false
		}
	}
	return true
}

func clientName(c *Client) string {
	if c.Metadata.ClientName != "" {
		return c.Metadata.ClientName
	}
	return c.ID
}

// codeContext is what a code carries besides its columns: the launch
// context and the facts the token response and id_token need.
type codeContext struct {
	Patient     string            `json:"patient,omitempty"`
	Encounter   string            `json:"encounter,omitempty"`
	FHIRContext []json.RawMessage `json:"fhirContext,omitempty"`
	NeedBanner  *bool             `json:"need_patient_banner,omitempty"`
	Intent      string            `json:"intent,omitempty"`
	FHIRUser    string            `json:"fhirUser,omitempty"`
	AMR         []string          `json:"amr,omitempty"`
	SessionEnds int64             `json:"session_ends,omitempty"`
}

// issueCode stores a code for the granted scopes and sends the browser
// back to the app.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, c *Client, p *pending, sess *store.LoginSession, sid string, user store.User, granted []scope.Scope) error {
	ctx := r.Context()
	cc := codeContext{FHIRUser: user.FHIRUser, AMR: sess.AMR, SessionEnds: sess.ExpiresAt.Unix()}
	if p.Launch != nil {
		cc.Patient, cc.Encounter, cc.FHIRContext, cc.NeedBanner, cc.Intent = p.Launch.Patient, p.Launch.Encounter, p.Launch.FHIRContext, p.Launch.NeedBanner, p.Launch.Intent
	}
	if cc.Patient == "" {
		cc.Patient = p.Patient
		if cc.Patient != "" {
			t := true
			cc.NeedBanner = &t // a standalone launch: the app shows the patient
		}
	}
	ctxJSON, err := json.Marshal(cc)
	if err != nil {
		return problem.Internal(err)
	}
	code, hash := NewSecret()
	now := s.Clock().UTC()
	if err := s.Store.CreateAuthCode(ctx, store.AuthCode{
		Hash: hash, ClientID: c.ID, RedirectURI: p.RedirectURI, CodeChallenge: p.Challenge, Nonce: p.Nonce,
		Scope: scope.Join(granted), Subject: user.ID, SessionID: sid, AuthTime: sess.AuthTime, Context: ctxJSON,
		CreatedAt: now, ExpiresAt: now.Add(CodeTTL),
	}); err != nil {
		return err
	}
	s.audit(ctx, audit.Event{Actor: "user:" + user.ID, ClientID: c.ID, Patient: cc.Patient, Action: "authorize.code", Outcome: audit.Success,
		Detail: detail("scope", scope.Join(granted), "username", user.Username)})
	v := url.Values{}
	v.Set("code", code)
	v.Set("state", p.State)
	v.Set("iss", s.Issuer)
	http.Redirect(w, r, withQuery(p.RedirectURI, v), http.StatusSeeOther)
	return nil
}

// currentSession returns the signed-in user of the request's session
// cookie, or nils; sid is the session's reference for grants and "sid".
func (s *Server) currentSession(r *http.Request) (*store.LoginSession, store.User, string) {
	ck, err := r.Cookie(s.cookieName(sessionCookie))
	if err != nil || ck.Value == "" || s.Users == nil {
		return nil, store.User{}, ""
	}
	sess, u, err := s.Users.LookupSession(r.Context(), ck.Value)
	if err != nil {
		return nil, store.User{}, ""
	}
	return &sess, u, identity.SessionRef(sess.IDHash)
}

// toPage sends the browser to one of the pages with the sealed request.
func (s *Server) toPage(w http.ResponseWriter, r *http.Request, path string, p *pending) error {
	sealed, err := s.seal(p)
	if err != nil {
		return problem.Internal(err)
	}
	http.Redirect(w, r, path+"?auth="+url.QueryEscape(sealed), http.StatusSeeOther)
	return nil
}
