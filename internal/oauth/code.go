package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/httpx"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
	"smartgate/internal/token"
)

// authorizationCode is the authorization_code grant (RFC 6749 §4.1.3)
// with PKCE (RFC 7636 §4.6): codes are single use, bound to the client,
// the redirect_uri and the verifier; a replayed code revokes the grant
// issued from it (RFC 6749 §4.1.2, OAuth 2.0 Security BCP §4.5).
func (s *Server) authorizationCode(ctx context.Context, t *tokenRequest) (*issued, error) {
	code := t.get("code")
	if code == "" {
		return nil, problem.New(problem.InvalidRequest, "code is missing; send the code the redirect_uri received")
	}
	h := sha256.Sum256([]byte(code))
	ac, err := s.Store.UseAuthCode(ctx, h[:], s.Clock())
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		if ac.GrantID != "" {
			if rerr := s.Store.RevokeGrant(ctx, ac.GrantID, s.Clock().UTC()); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
				return nil, rerr
			}
			s.audit(ctx, audit.Event{Actor: "client:" + t.client.ID, ClientID: t.client.ID, Action: "grant.revoke", Outcome: audit.Success, Detail: detail("grant", ac.GrantID, "reason", "authorization code reuse")})
			s.forgetConsent(ctx, ac.ClientID, ac.Subject)
		}
		return nil, problem.New(problem.InvalidGrant, "the code was already used; codes are single use, so the tokens issued from it were revoked to protect the user. Start the authorization again")
	case errors.Is(err, store.ErrExpired):
		return nil, problem.New(problem.InvalidGrant, "the code expired (codes live %d seconds); exchange it as soon as the redirect_uri receives it", int(CodeTTL/time.Second))
	case errors.Is(err, store.ErrNotFound):
		return nil, problem.New(problem.InvalidGrant, "the code is not known here: it is mistyped, truncated, or was issued by another server")
	case err != nil:
		return nil, err
	}
	if ac.ClientID != t.client.ID {
		return nil, problem.New(problem.InvalidGrant, "the code was issued to another client")
	}
	if ru := t.get("redirect_uri"); ru != ac.RedirectURI {
		if ru == "" {
			return nil, problem.New(problem.InvalidGrant, "redirect_uri is missing; send the same redirect_uri as in the authorization request (%s)", ac.RedirectURI)
		}
		return nil, problem.New(problem.InvalidGrant, "redirect_uri %q differs from the authorization request's; send exactly %s", ru, ac.RedirectURI)
	}
	if err := checkVerifier(ac.CodeChallenge, t.get("code_verifier")); err != nil {
		return nil, err
	}
	var cc codeContext
	_ = json.Unmarshal(ac.Context, &cc)
	granted, _ := scope.ParseList(ac.Scope)
	g := grantContext{Patient: cc.Patient, Encounter: cc.Encounter, FHIRUser: cc.FHIRUser, AuthTime: ac.AuthTime.Unix(), AMR: cc.AMR, SessionRef: ac.SessionID}
	g.Extra = launchExtras(cc, s.Issuer)
	return s.userGrant(ctx, t, granted, ac.Subject, g, ac.Nonce, time.Unix(cc.SessionEnds, 0), func(grantID string) error {
		return s.Store.SetAuthCodeGrant(ctx, h[:], grantID)
	})
}

// launchExtras are the token-response fields of a launch context besides
// patient and encounter (SMART App Launch "Launch context arrives with
// your access_token").
func launchExtras(cc codeContext, issuer string) map[string]any {
	m := map[string]any{}
	if len(cc.FHIRContext) > 0 {
		m["fhirContext"] = cc.FHIRContext
	}
	if cc.NeedBanner != nil {
		m["need_patient_banner"] = *cc.NeedBanner
	}
	if cc.Intent != "" {
		m["intent"] = cc.Intent
	}
	if cc.Patient != "" || cc.Encounter != "" {
		m["smart_style_url"] = issuer + "/static/smart-style.json"
	}
	return m
}

// checkVerifier applies RFC 7636 §4.6: the verifier's S256 must equal the
// challenge. A code issued without a challenge accepts no verifier (a
// downgrade would otherwise pass unnoticed).
func checkVerifier(challenge, verifier string) error {
	if challenge == "" {
		if verifier != "" {
			return problem.New(problem.InvalidGrant, "code_verifier was sent, but the authorization request had no code_challenge")
		}
		return nil
	}
	switch {
	case verifier == "":
		return problem.New(problem.InvalidGrant, "code_verifier is missing; send the PKCE verifier whose S256 hash was the code_challenge")
	case len(verifier) < 43 || len(verifier) > 128 || !validVerifierShape(verifier):
		return problem.New(problem.InvalidGrant, "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 section 4.1)")
	case verifier == challenge:
		return problem.New(problem.InvalidGrant, "code_verifier is the code_challenge itself; send the random verifier, whose SHA-256 is the challenge")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) != 1 {
		return problem.New(problem.InvalidGrant, "code_verifier does not match the code_challenge: BASE64URL(SHA256(code_verifier)) must equal it (RFC 7636 section 4.6)")
	}
	return nil
}

// userGrant stores the grant of a user's authorization (with a refresh
// token for offline_access or online_access) and builds what the token
// response carries, including the id_token for openid.
func (s *Server) userGrant(ctx context.Context, t *tokenRequest, granted []scope.Scope, subject string, gc grantContext, nonce string, sessionEnds time.Time, after func(grantID string) error) (*issued, error) {
	has := func(k scope.Kind) bool {
		return slices.ContainsFunc(granted, func(sc scope.Scope) bool { return sc.Kind == k })
	}
	offline, online := has(scope.KindOfflineAccess), has(scope.KindOnlineAccess)
	refresh := (offline || online) && slices.Contains(t.client.Metadata.GrantTypes, "refresh_token")
	g := store.Grant{ClientID: t.client.ID, Subject: subject, Scope: scope.Join(granted)}
	if online && !offline {
		// online_access ends with the login session (DESIGN.md).
		g.SessionID = gc.SessionRef
		if !sessionEnds.IsZero() && sessionEnds.Unix() > 0 {
			g.ExpiresAt = sessionEnds.UTC()
		}
	}
	if !refresh {
		// Without a refresh token the grant lives as long as its access token.
		g.ExpiresAt = s.Clock().Add(s.live().Tokens.AccessTokenTTL.D()).UTC()
	}
	ctxJSON, err := json.Marshal(gc)
	if err != nil {
		return nil, problem.Internal(err)
	}
	g.Context = ctxJSON
	grantID, rt, err := s.NewGrant(ctx, g, refresh)
	if err != nil {
		return nil, err
	}
	if after != nil {
		if err := after(grantID); err != nil {
			return nil, err
		}
	}
	out := &issued{Scopes: granted, Subject: subject, Grant: grantID, Patient: gc.Patient, Encounter: gc.Encounter, FHIRUser: gc.FHIRUser,
		TTL: s.live().Tokens.AccessTokenTTL.D(), RefreshToken: rt, Extra: map[string]any{}}
	for k, v := range gc.Extra {
		out.Extra[k] = v
	}
	if has(scope.KindOpenID) {
		idt, err := s.idToken(ctx, t.client.ID, subject, gc, nonce, granted)
		if err != nil {
			return nil, err
		}
		out.Extra["id_token"] = idt
	}
	return out, nil
}

// idToken signs the id_token of a user grant (OpenID Connect Core §2).
func (s *Server) idToken(ctx context.Context, clientID, subject string, gc grantContext, nonce string, granted []scope.Scope) (string, error) {
	now := s.Clock()
	c := token.IDClaims{Subject: subject, Audience: clientID, AuthorizedParty: clientID, IssuedAt: now.Unix(),
		Expiry: now.Add(s.Config.Tokens.IDTokenTTL.D()).Unix(), AuthTime: gc.AuthTime, Nonce: nonce, AMR: gc.AMR, SessionID: gc.SessionRef}
	for _, sc := range granted {
		switch sc.Kind {
		case scope.KindFHIRUser:
			c.FHIRUser = s.fhirUserURL(gc.FHIRUser)
		case scope.KindProfile:
			if u, err := s.Store.GetUser(ctx, subject); err == nil {
				c.PreferredUsername = u.Username
			}
		}
	}
	return s.Tokens.IssueIDToken(c)
}

// fhirUserURL makes a fhirUser reference absolute (SMART App Launch: the
// claim is the URL of the user's FHIR resource).
func (s *Server) fhirUserURL(ref string) string {
	if ref == "" || len(ref) > 8 && (ref[:7] == "http://" || ref[:8] == "https://") {
		return ref
	}
	return s.Tokens.Audience() + "/" + ref
}

// password is the resource owner password credentials grant (RFC 6749
// §4.3): off unless authorize.password_grant_roles lists the user's role,
// never for admins or users with two-factor login.
func (s *Server) password(ctx context.Context, t *tokenRequest) (*issued, error) {
	roles := s.live().Authorize.PasswordGrantRoles
	if len(roles) == 0 {
		return nil, problem.New(problem.PasswordGrantDisabled, "the password grant is off on this server; use the authorization code flow with PKCE (docs/flows/). For development an operator may turn it on with authorize.password_grant_roles")
	}
	username, pw := t.get("username"), t.get("password")
	if username == "" || pw == "" {
		return nil, problem.New(problem.InvalidRequest, "username and password are required for grant_type=password")
	}
	l, err := s.Users.Authenticate(ctx, username, pw, httpx.ClientIP(t.r))
	if err != nil {
		return nil, err // login_failed is invalid_grant (RFC 6749 section 5.2)
	}
	u := l.User
	switch {
	case l.NeedTOTP || u.TOTPEnabled:
		return nil, problem.New(problem.PasswordGrantDisabled, "user %s signs in with two-factor login, which the password grant cannot do; use the authorization code flow", u.Username)
	case u.Role == store.RoleAdmin:
		return nil, problem.New(problem.PasswordGrantDisabled, "administrators may never use the password grant; use the authorization code flow")
	case !slices.Contains(roles, u.Role):
		return nil, problem.New(problem.PasswordGrantDisabled, "the password grant is on only for %s users, and %s is a %s user", strings.Join(roles, " and "), u.Username, u.Role)
	}
	var patient string
	granted, err := narrow(t.get("scope"), t.client.Scopes, func(sc scope.Scope) (bool, string) {
		switch {
		case sc.IsResource() && sc.Context == scope.ContextSystem:
			return false, "system/ scopes are for backend services"
		case sc.Kind == scope.KindLaunch || sc.Kind == scope.KindLaunchEncounter:
			return false, "there is no EHR launch in the password grant"
		case sc.Kind == scope.KindAdmin:
			return false, "administrators may never use the password grant"
		case sc.Kind == scope.KindOnlineAccess:
			return false, "online_access ends with a browser session, and the password grant has none; ask for offline_access"
		}
		return true, ""
	})
	if err != nil {
		return nil, err
	}
	if needsPatient(granted) {
		own, err := s.Patients.OwnPatients(ctx, u.FHIRUser)
		if err != nil {
			return nil, err
		}
		if len(own) != 1 {
			return nil, problem.New(problem.InvalidScope, "launch/patient and patient/ scopes need one patient, and the password grant has no patient picker: only a patient user linked to one record gets one; a practitioner uses user/ scopes")
		}
		patient = own[0].ID
	}
	gc := grantContext{Patient: patient, FHIRUser: u.FHIRUser, AuthTime: l.AuthTime.Unix(), AMR: l.AMR}
	if patient != "" {
		gc.Extra = map[string]any{"need_patient_banner": true, "smart_style_url": s.Issuer + "/static/smart-style.json"}
	}
	return s.userGrant(ctx, t, granted, u.ID, gc, "", time.Time{}, nil)
}
