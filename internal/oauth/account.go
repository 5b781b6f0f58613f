package oauth

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// UserInfo is GET|POST /oauth2/userinfo (OpenID Connect Core §5.3): the
// claims about the signed-in user that the access token's scopes allow.
func (s *Server) UserInfo(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	raw, ok := bearer(r)
	if !ok || raw == "" {
		return problem.New(problem.TokenMissing, "send the access token in an Authorization: Bearer header").WithHeader("WWW-Authenticate", `Bearer realm="smartgate"`)
	}
	c, err := s.Tokens.Verify(ctx, raw)
	if err != nil {
		var te *token.Error
		if errors.As(err, &te) {
			return problem.New(problem.InvalidToken, "%s", te.Description).WithHeader("WWW-Authenticate", `Bearer realm="smartgate", error="invalid_token", error_description="`+oauthQuote(te.Description)+`"`)
		}
		return err
	}
	granted, _ := scope.ParseList(c.Scope)
	has := func(k scope.Kind) bool {
		return slices.ContainsFunc(granted, func(sc scope.Scope) bool { return sc.Kind == k })
	}
	if !has(scope.KindOpenID) {
		return problem.New(problem.InsufficientScope, "the access token was not granted the openid scope, which userinfo needs; ask for scope=openid ...").
			WithHeader("WWW-Authenticate", `Bearer realm="smartgate", error="insufficient_scope", scope="openid"`)
	}
	u, err := s.Store.GetUser(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Status != store.UserEnabled) {
		return problem.New(problem.InvalidToken, "the token's user no longer exists or is disabled").WithHeader("WWW-Authenticate", `Bearer realm="smartgate", error="invalid_token"`)
	}
	if err != nil {
		return err
	}
	out := map[string]any{"sub": u.ID}
	if has(scope.KindFHIRUser) && u.FHIRUser != "" {
		out["fhirUser"] = s.fhirUserURL(u.FHIRUser)
	}
	if has(scope.KindProfile) {
		out["preferred_username"] = u.Username
	}
	return writeJSON(w, http.StatusOK, out)
}

func oauthQuote(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

// appView is one authorized app on /account/apps.
type appView struct {
	GrantID    string
	Client     clientInfo
	Groups     []scopeGroup
	Created    time.Time
	LastUsed   time.Time
	Expires    time.Time
	OnlineOnly bool
}

// AccountApps is GET|POST /account/apps, the SMART management_endpoint:
// the signed-in user's authorized apps, each revocable.
func (s *Server) AccountApps(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	sess, u, _ := s.currentSession(r)
	if sess == nil {
		http.Redirect(w, r, "/login?next="+url.QueryEscape("/account/apps"), http.StatusSeeOther)
		return nil
	}
	data := map[string]any{"CSRF": s.csrfToken(w, r), "User": u.Username}
	if r.Method == http.MethodPost {
		if err := s.parsePageForm(r); err != nil {
			return err
		}
		id := r.PostForm.Get("grant")
		g, err := s.Store.GetGrant(ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && g.Subject != u.ID) {
			return problem.New(problem.NotFound, "you have no authorized app with this id; reload the page")
		}
		if err != nil {
			return err
		}
		now := s.Clock().UTC()
		if err := s.Store.RevokeGrant(ctx, g.ID, now); err != nil {
			return err
		}
		// The app must ask again: forget the consent too.
		if err := s.Store.DeleteConsent(ctx, g.ClientID, u.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		s.audit(ctx, audit.Event{Actor: "user:" + u.ID, ClientID: g.ClientID, Action: "grant.revoke", Outcome: audit.Success, Detail: detail("grant", g.ID, "reason", "revoked by the user at /account/apps")})
		name := g.ClientID
		if c, err := s.Clients.Get(ctx, g.ClientID); err == nil {
			name = clientName(c)
		}
		data["Notice"] = "Access for " + name + " was revoked. Its tokens stopped working."
	}
	grants, err := s.Store.ListGrantsBySubject(ctx, u.ID, s.Clock())
	if err != nil {
		return err
	}
	apps := make([]appView, 0, len(grants))
	for _, g := range grants {
		ss, _ := scope.ParseList(g.Scope)
		av := appView{GrantID: g.ID, Groups: describeScopes(ss), Created: g.CreatedAt, LastUsed: g.LastUsedAt, Expires: g.ExpiresAt, OnlineOnly: g.SessionID != ""}
		if c, err := s.Clients.Get(ctx, g.ClientID); err == nil {
			av.Client = clientView(c)
		} else {
			av.Client = clientInfo{ID: g.ClientID, Name: g.ClientID + " (deleted)"}
		}
		apps = append(apps, av)
	}
	data["Apps"] = apps
	return s.render(w, r, http.StatusOK, "apps.html", data)
}

// Logout is GET|POST /oauth2/logout, the OpenID Connect end_session_endpoint
// (RP-Initiated Logout 1.0). With an id_token_hint for the signed-in user
// it signs out at once; otherwise the user confirms on a page (so that no
// other site can sign them out). The browser then goes to a registered
// post_logout_redirect_uri (exact match) with state, or sees a page.
func (s *Server) Logout(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return problem.New(problem.InvalidRequest, "the logout request could not be read")
	}
	q := r.Form
	for _, k := range []string{"id_token_hint", "post_logout_redirect_uri", "state", "client_id"} {
		if len(q[k]) > 1 {
			return problem.New(problem.InvalidRequest, "parameter %q appears more than once", k)
		}
	}
	var hint *token.IDClaims
	if h := q.Get("id_token_hint"); h != "" {
		var err error
		if hint, err = s.Tokens.ParseIDTokenHint(h, 0); err != nil {
			return problem.New(problem.InvalidRequest, "id_token_hint is not an id_token this server issued; send the id_token the app received, unchanged")
		}
	}
	clientID := q.Get("client_id")
	if hint != nil {
		if clientID != "" && clientID != hint.Audience {
			return problem.New(problem.InvalidRequest, "client_id %q is not the audience of the id_token_hint", clientID)
		}
		clientID = hint.Audience
	}
	redirect := q.Get("post_logout_redirect_uri")
	if redirect != "" {
		if clientID == "" {
			return problem.New(problem.InvalidRequest, "post_logout_redirect_uri needs client_id or id_token_hint, so that it can be checked against the app's registration")
		}
		c, err := s.Clients.Get(ctx, clientID)
		if err != nil {
			return problem.New(problem.InvalidRequest, "client_id %q is not registered here", clientID)
		}
		if !slices.Contains(c.Metadata.PostLogoutRedirectURIs, redirect) {
			return problem.New(problem.InvalidRequest, "post_logout_redirect_uri %q is not registered for client %s (post_logout_redirect_uris must list it exactly)", redirect, c.ID)
		}
	}
	sess, u, sid := s.currentSession(r)
	confirmed := sess != nil && hint != nil && hint.Subject == u.ID
	if sess != nil && !confirmed {
		if r.Method != http.MethodPost || q.Get("confirm") != "yes" {
			data := map[string]any{"CSRF": s.csrfToken(w, r), "User": u.Username, "Redirect": redirect, "State": q.Get("state"), "ClientID": clientID}
			return s.render(w, r, http.StatusOK, "logout.html", data, origin(redirect))
		}
		if err := s.checkCSRF(r); err != nil {
			return err
		}
	}
	if sess != nil {
		ck, _ := r.Cookie(s.cookieName(sessionCookie))
		if err := s.Users.RevokeSession(ctx, ck.Value); err != nil {
			return err
		}
		n, err := s.Store.RevokeSessionGrants(ctx, sid, s.Clock().UTC())
		if err != nil {
			return err
		}
		s.audit(ctx, audit.Event{Actor: "user:" + u.ID, ClientID: clientID, Action: "logout", Outcome: audit.Success, Detail: detail("online_grants_revoked", strconv.Itoa(n))})
	}
	s.clearCookie(w, sessionCookie)
	if redirect != "" {
		v := url.Values{}
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		target := redirect
		if len(v) > 0 {
			target = withQuery(redirect, v)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil
	}
	return s.render(w, r, http.StatusOK, "logout.html", map[string]any{"Done": true})
}
