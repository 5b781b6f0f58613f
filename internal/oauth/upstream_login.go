package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"smartgate/internal/httpx"
	"smartgate/internal/identity"
	"smartgate/internal/problem"
	"smartgate/web"
)

// The upstream leg of a sign-in (docs/federation.md): the login page's
// button (or an idp hint) sends the browser to the provider with an
// authorization code request (PKCE S256, state, nonce; OpenID Connect Core
// §3.1.2), and the provider sends it back to /login/callback.
//
// The state is the sealed upstreamState: the provider, the nonce, the PKCE
// verifier and the pending SMART request (launch, patient choice, the
// app's state and PKCE challenge), so any node can finish the sign-in and
// the request goes on where it stopped. It is bound to the browser that
// began it: it carries the hash of a random value in a short-lived cookie
// (__Host- under HTTPS), so that a callback URL carried to another browser
// is refused (RFC 6749 §10.12, OAuth 2.0 Security BCP §4.7).

const (
	upstreamCookie       = "smartgate-upstream"
	upstreamStatePurpose = "smartgate upstream state v1"
)

// upstreamState travels sealed in the provider's state parameter.
type upstreamState struct {
	Provider string   `json:"i"`
	Binding  []byte   `json:"b"` // SHA-256 of the browser's upstream cookie
	Nonce    string   `json:"n"`
	Verifier string   `json:"v"`
	Pending  *pending `json:"p,omitempty"`
	Next     string   `json:"x,omitempty"`
	Expires  int64    `json:"e"`
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) callbackURL() string { return s.Issuer + "/login/callback" }

// loginProviders are the login page's buttons.
func (s *Server) loginProviders() []map[string]string {
	var out []map[string]string
	for _, u := range s.upstreams().list {
		out = append(out, map[string]string{"ID": u.cfg.ID, "Name": u.cfg.DisplayName()})
	}
	return out
}

// providerOrigins are the origins the login page's provider buttons may
// redirect to (its CSP form-action).
func (s *Server) providerOrigins() []string {
	var out []string
	for _, u := range s.upstreams().list {
		out = append(out, u.authOrigins()...)
	}
	return out
}

// knownProvider checks an idp hint.
func (s *Server) knownProvider(id string) error {
	f := s.upstreams()
	if _, ok := f.byID[id]; ok {
		return nil
	}
	var ids []string
	for _, u := range f.list {
		ids = append(ids, u.cfg.ID)
	}
	if len(ids) == 0 {
		return fmt.Errorf("idp %q names no identity provider: none is configured here; leave idp out", id)
	}
	return fmt.Errorf("idp %q names no configured identity provider; use one of %s, or leave idp out", id, strings.Join(ids, ", "))
}

// LoginUpstream is POST /login/upstream/{id}: a provider button of the
// login page.
func (s *Server) LoginUpstream(w http.ResponseWriter, r *http.Request) error {
	if err := s.parsePageForm(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	u, ok := s.upstreams().byID[id]
	if !ok {
		return problem.New(problem.NotFound, "no identity provider has the id %q here; go back to the sign-in page and use one of its buttons", id)
	}
	var p *pending
	if sealed := r.PostForm.Get("auth"); sealed != "" {
		var err error
		if p, _, err = s.resume(r.Context(), sealed); err != nil {
			return err
		}
	}
	return s.startUpstream(w, r, u, p, safeNext(r.PostForm.Get("next")))
}

// startUpstream sends the browser to the provider's authorization
// endpoint.
func (s *Server) startUpstream(w http.ResponseWriter, r *http.Request, u *upstream, p *pending, next string) error {
	ctx := r.Context()
	now := s.Clock()
	prov, meta, err := u.discover(ctx, now)
	if err != nil {
		return s.upstreamFailed(w, r, u, p, next, "", "unavailable", problem.Wrap(problem.UpstreamUnavailable, err,
			"%s cannot be reached right now (its discovery document at %s/.well-known/openid-configuration could not be read); sign in another way or try again later", u.cfg.DisplayName(), u.cfg.Issuer))
	}
	conf, _, err := u.oauth2Config(prov, meta, s.callbackURL(), now)
	if err != nil {
		return problem.Internal(fmt.Errorf("provider %s: %w", u.cfg.ID, err))
	}
	binding := ""
	if ck, err := r.Cookie(s.cookieName(upstreamCookie)); err == nil && len(ck.Value) == 43 {
		binding = ck.Value // one value per browser: sign-ins in several tabs work
	} else {
		binding = randomString()
	}
	ttl := s.Config.Authorize.RequestTTL.D()
	st := upstreamState{Provider: u.cfg.ID, Nonce: randomString(), Verifier: oauth2.GenerateVerifier(), Pending: p, Next: next, Expires: now.Add(ttl).Unix()}
	h := sha256.Sum256([]byte(binding))
	st.Binding = h[:]
	if p != nil {
		p.IDP = "" // a way back to the sign-in page shows it, not the provider again
		if p.Expires < st.Expires {
			st.Expires = p.Expires
		}
	}
	b, _ := json.Marshal(st)
	sealed, err := s.KEK.Seal(upstreamStatePurpose, b)
	if err != nil {
		return problem.Internal(err)
	}
	s.setCookie(w, upstreamCookie, binding, ttl)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce)}
	if p != nil {
		if p.LoginHint != "" {
			opts = append(opts, oauth2.SetAuthURLParam("login_hint", p.LoginHint))
		}
		if p.prompts("login") {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
		}
	}
	http.Redirect(w, r, conf.AuthCodeURL(base64.RawURLEncoding.EncodeToString(sealed), opts...), http.StatusSeeOther)
	return nil
}

// openUpstreamState reads the callback's state and checks it belongs to
// this browser and has not expired.
func (s *Server) openUpstreamState(r *http.Request) (*upstreamState, error) {
	bad := func(why string) error {
		return problem.New(problem.UpstreamStateInvalid, "%s; start signing in again from the app or the sign-in page, in this browser", why)
	}
	raw := r.URL.Query().Get("state")
	if raw == "" {
		return nil, bad("the identity provider's answer has no state")
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(raw) > 32<<10 {
		return nil, bad("the identity provider's answer carries a state this server did not make")
	}
	plain, err := s.KEK.Open(upstreamStatePurpose, b)
	var st upstreamState
	if err != nil || json.Unmarshal(plain, &st) != nil {
		return nil, bad("the identity provider's answer carries a state this server did not make (or made under another key)")
	}
	if s.Clock().Unix() > st.Expires {
		return &st, bad("the sign-in took too long (more than authorize.request_ttl)")
	}
	ck, err := r.Cookie(s.cookieName(upstreamCookie))
	if err != nil || ck.Value == "" {
		return &st, bad("this browser has no cookie of the sign-in the answer belongs to: it was started in another browser, or cookies are blocked for this site")
	}
	h := sha256.Sum256([]byte(ck.Value))
	if subtle.ConstantTimeCompare(h[:], st.Binding) != 1 {
		return &st, bad("the sign-in the answer belongs to was started in another browser")
	}
	return &st, nil
}

// LoginCallback is GET /login/callback: the provider's authorization
// response (OpenID Connect Core §3.1.2.5-6).
func (s *Server) LoginCallback(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	st, err := s.openUpstreamState(r)
	if err != nil {
		provider := ""
		if st != nil {
			provider = st.Provider
		}
		s.upstreamAudit(r, provider, "", "state_invalid")
		s.Errors.LogOnly(r, err)
		return s.renderUpstreamError(w, r, problem.From(err), "")
	}
	u, ok := s.upstreams().byID[st.Provider]
	if !ok {
		return problem.New(problem.UpstreamStateInvalid, "the identity provider %q of this sign-in is no longer configured here; start signing in again", st.Provider)
	}
	p, next := st.Pending, st.Next
	fail := func(reason string, pe *problem.Error) error {
		return s.upstreamFailed(w, r, u, p, next, "", reason, pe)
	}
	var c *Client
	if p != nil {
		// The app may have been deleted or disabled meanwhile.
		if c, err = s.pendingClient(ctx, p); err != nil {
			return err
		}
	}

	// RFC 9207: an iss in the response must be the provider's (mix-up).
	if iss := q.Get("iss"); q.Has("iss") && iss != u.cfg.Issuer {
		return fail("issuer_mismatch", problem.New(problem.UpstreamError, "the answer names the issuer %q, not %s's %s (RFC 9207); it did not come from that provider", clip(iss, 200), u.cfg.DisplayName(), u.cfg.Issuer))
	}
	if e := q.Get("error"); e != "" {
		desc := clip(q.Get("error_description"), 300)
		if e == "access_denied" {
			return fail("denied", problem.New(problem.UpstreamDenied, "the sign-in at %s was cancelled or refused there (%s); nothing was signed in", u.cfg.DisplayName(), orText(desc, "access_denied")))
		}
		return fail("provider_error", problem.New(problem.UpstreamError, "%s answered with the error %s: %s", u.cfg.DisplayName(), clip(e, 64), orText(desc, "no description")))
	}
	code := q.Get("code")
	if code == "" {
		return fail("no_code", problem.New(problem.UpstreamError, "%s sent the browser back without a code or an error", u.cfg.DisplayName()))
	}

	now := s.Clock()
	prov, meta, err := u.discover(ctx, now)
	if err != nil {
		return fail("unavailable", problem.Wrap(problem.UpstreamUnavailable, err, "%s cannot be reached right now; sign in another way or try again later", u.cfg.DisplayName()))
	}
	if !q.Has("iss") && meta.IssParameter {
		return fail("issuer_missing", problem.New(problem.UpstreamError, "%s says it sends iss with every answer (RFC 9207), and this one has none", u.cfg.DisplayName()))
	}
	conf, authOpts, err := u.oauth2Config(prov, meta, s.callbackURL(), now)
	if err != nil {
		return problem.Internal(fmt.Errorf("provider %s: %w", u.cfg.ID, err))
	}
	octx := context.WithValue(ctx, oauth2.HTTPClient, u.client)
	tok, err := conf.Exchange(octx, code, append(authOpts, oauth2.VerifierOption(st.Verifier))...)
	if err != nil {
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && (re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client" || re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized):
			return fail("client_rejected", problem.Wrap(problem.UpstreamClientRejected, err, "%s refused smartgate's client credentials (%s) when smartgate exchanged the code; an administrator must check client_id and client_secret (or the private key) of provider %s", u.cfg.DisplayName(), retrieveCode(re), u.cfg.ID))
		case errors.As(err, &re):
			return fail("token_error", problem.Wrap(problem.UpstreamError, err, "%s refused to exchange the code (%s: %s)", u.cfg.DisplayName(), retrieveCode(re), orText(clip(re.ErrorDescription, 300), "no description")))
		}
		return fail("unavailable", problem.Wrap(problem.UpstreamUnavailable, err, "%s's token endpoint cannot be reached; try again later", u.cfg.DisplayName()))
	}

	claims, sub, err := s.verifyUpstream(octx, u, prov, tok, st.Nonce, now)
	if err != nil {
		return fail("id_token_invalid", problem.From(err))
	}
	id := identity.ClaimsIdentity(u.cfg, sub, claims)
	id.FHIRUser = strings.TrimPrefix(id.FHIRUser, s.Tokens.Audience()+"/")
	l, err := s.Users.UpstreamLogin(ctx, u.cfg, id, httpx.ClientIP(r))
	if err != nil {
		var nl *identity.NotLinkedError
		if errors.As(err, &nl) {
			return s.renderNotLinked(w, r, nl, p, next)
		}
		pe := problem.From(err)
		if pe.ID == problem.InternalError {
			return err
		}
		s.Errors.LogOnly(r, pe)
		return s.renderUpstreamError(w, r, pe, s.backToLogin(p, next))
	}
	if l.NeedTOTP {
		// A local second factor, on the login page's TOTP form.
		pend, err := s.sealTOTPPending(l)
		if err != nil {
			return problem.Internal(err)
		}
		data := map[string]any{"TOTP": true, "Pending": pend, "CSRF": s.csrfToken(w, r)}
		formTo := ""
		if p != nil {
			data["Auth"], data["Client"] = mustSeal(s, p), clientView(c)
			formTo = origin(p.RedirectURI)
		} else {
			data["Next"] = next
		}
		return s.render(w, r, http.StatusOK, "login.html", data, formTo)
	}
	return s.signedIn(w, r, l, c, p, next)
}

// signedIn starts the session of a completed login and goes on: with the
// authorization request, or to next.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, l identity.Login, c *Client, p *pending, next string) error {
	ctx := r.Context()
	id, sess, err := s.Users.CreateSession(ctx, l)
	if err != nil {
		return err
	}
	s.setCookie(w, sessionCookie, id, sess.ExpiresAt.Sub(s.Clock()))
	if p == nil {
		http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
		return nil
	}
	p.UserID, p.Patient, p.Consented = l.User.ID, "", nil
	p.LoginAt = s.Clock().Unix()
	return s.proceedAs(w, r, c, p, &sess, l.User, identity.SessionRef(sess.IDHash))
}

// verifyUpstream checks the id_token of a token response in full and
// returns its claims, completed from the UserInfo endpoint when a mapped
// claim is missing (providers such as oidc-provider put profile claims
// only there for the code flow, OpenID Connect Core §5.4).
func (s *Server) verifyUpstream(ctx context.Context, u *upstream, prov *oidc.Provider, tok *oauth2.Token, nonce string, now time.Time) (map[string]any, string, error) {
	invalid := func(err error, format string, args ...any) (map[string]any, string, error) {
		return nil, "", problem.Wrap(problem.UpstreamIDTokenInvalid, err, format, args...)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return invalid(nil, "%s answered without an id_token; its client must be an OpenID Connect client and scopes must include openid", u.cfg.DisplayName())
	}
	// Signature (keys from the provider's jwks_uri, with the algorithms its
	// discovery lists), iss, aud and exp (OpenID Connect Core §3.1.3.7).
	idt, err := prov.Verifier(&oidc.Config{ClientID: u.cfg.ClientID, Now: s.Clock}).Verify(ctx, raw)
	if err != nil {
		return invalid(err, "the id_token from %s failed verification (%s)", u.cfg.DisplayName(), verifyReason(err))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return invalid(nil, "the id_token from %s does not carry the nonce of this sign-in (a replayed or foreign answer)", u.cfg.DisplayName())
	}
	if idt.IssuedAt.After(now.Add(5 * time.Minute)) {
		return invalid(nil, "the id_token from %s was issued in the future (iat %s); a clock is wrong", u.cfg.DisplayName(), idt.IssuedAt.UTC().Format(time.RFC3339))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return invalid(err, "the id_token from %s has unreadable claims", u.cfg.DisplayName())
	}
	// azp (OpenID Connect Core §3.1.3.7 steps 4-5).
	azp, hasAzp := claims["azp"].(string)
	if (len(idt.Audience) > 1 || hasAzp) && azp != u.cfg.ClientID {
		return invalid(nil, "the id_token from %s was issued to %q (azp), not to smartgate's client %s", u.cfg.DisplayName(), clip(azp, 100), u.cfg.ClientID)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return invalid(err, "the id_token from %s does not match its access token (at_hash)", u.cfg.DisplayName())
		}
	}
	want := []string{u.cfg.EmailClaim(), u.cfg.EmailVerifiedClaim(), u.cfg.FHIRUserClaim(), u.cfg.Claims.Role, u.cfg.Claims.Groups}
	missing := slices.ContainsFunc(want, func(c string) bool {
		if c == "" {
			return false
		}
		_, ok := claims[strings.SplitN(c, ".", 2)[0]]
		_, whole := claims[c]
		return !ok && !whole
	})
	if missing && prov.UserInfoEndpoint() != "" && tok.AccessToken != "" {
		ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, "", problem.Wrap(problem.UpstreamError, err, "%s's UserInfo endpoint did not answer with the user's claims", u.cfg.DisplayName())
		}
		if ui.Subject != idt.Subject {
			return invalid(nil, "%s's UserInfo response is about another user (sub %q, the id_token's is %q; OpenID Connect Core §5.3.2)", u.cfg.DisplayName(), clip(ui.Subject, 100), clip(idt.Subject, 100))
		}
		var more map[string]any
		if err := ui.Claims(&more); err == nil {
			for k, v := range more {
				if _, have := claims[k]; !have {
					claims[k] = v
				}
			}
		}
	}
	return claims, idt.Subject, nil
}

// verifyReason names a go-oidc verification failure without its details.
func verifyReason(err error) string {
	var exp *oidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &exp):
		return "it expired at " + exp.Expiry.UTC().Format(time.RFC3339)
	case strings.Contains(msg, "issued by a different provider"):
		return "wrong issuer"
	case strings.Contains(msg, "expected audience"):
		return "it was issued to another client (aud)"
	case strings.Contains(msg, "signature"), strings.Contains(msg, "signing"), strings.Contains(msg, "keys"):
		return "bad signature or unknown key"
	case strings.Contains(msg, "nbf"):
		return "not valid yet (nbf)"
	}
	return "malformed"
}

// retrieveCode is the OAuth error code of a token response, or its
// HTTP status.
func retrieveCode(re *oauth2.RetrieveError) string {
	if re.ErrorCode != "" || re.Response == nil {
		return orText(re.ErrorCode, "no error code")
	}
	return "HTTP " + re.Response.Status
}

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func mustSeal(s *Server, p *pending) string {
	sealed, err := s.seal(p)
	if err != nil {
		return ""
	}
	return sealed
}

// backToLogin is the sign-in page of the request (without its idp hint),
// or of next.
func (s *Server) backToLogin(p *pending, next string) string {
	if p != nil {
		p.IDP = ""
		return "/login?auth=" + url.QueryEscape(mustSeal(s, p))
	}
	return "/login?next=" + url.QueryEscape(safeNext(next))
}

func (s *Server) upstreamAudit(r *http.Request, provider, subject, reason string) {
	if s.Users != nil {
		s.Users.UpstreamFailure(r.Context(), provider, subject, httpx.ClientIP(r), reason)
	}
}

// upstreamFailed answers a failed upstream leg: audited, logged once, and
// a page that says what happened with a way back to the sign-in page.
func (s *Server) upstreamFailed(w http.ResponseWriter, r *http.Request, u *upstream, p *pending, next, subject, reason string, pe *problem.Error) error {
	s.upstreamAudit(r, u.cfg.ID, subject, reason)
	s.Errors.LogOnly(r, pe)
	return s.renderUpstreamError(w, r, pe, s.backToLogin(p, next))
}

var upstreamTemplates = map[string]bool{"upstream-error.html": true, "upstream-unlinked.html": true}

func init() {
	for p := range upstreamTemplates {
		pageTemplates[p] = web.Templates(p)
	}
}

func (s *Server) renderUpstreamError(w http.ResponseWriter, r *http.Request, pe *problem.Error, back string) error {
	e := pe.Entry()
	return s.render(w, r, pe.HTTPStatus(), "upstream-error.html", map[string]any{
		"Title": e.Title, "Description": pe.Description, "Hint": pe.Hint, "Code": string(pe.ID),
		"DocURL": s.Errors.DocURL(pe.ID), "Back": back,
	})
}

// renderNotLinked is the page of an upstream identity linked to no user:
// what to ask the administrator, with the real provider and subject.
func (s *Server) renderNotLinked(w http.ResponseWriter, r *http.Request, nl *identity.NotLinkedError, p *pending, next string) error {
	pe := nl.Problem()
	s.Errors.LogOnly(r, pe)
	return s.render(w, r, pe.HTTPStatus(), "upstream-unlinked.html", map[string]any{
		"Provider": nl.ProviderName, "ProviderID": nl.Provider, "Subject": nl.Subject, "Email": nl.Email, "Reasons": nl.Reasons,
		"Command": fmt.Sprintf("smartgate user link --username USERNAME --provider %s --subject %s", nl.Provider, shellQuote(nl.Subject)),
		"Code":    string(pe.ID), "DocURL": s.Errors.DocURL(pe.ID), "Back": s.backToLogin(p, next),
	})
}

// shellQuote quotes a subject for the command line when it needs it.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
