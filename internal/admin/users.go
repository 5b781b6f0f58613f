package admin

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"smartgate/internal/identity"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// User is a user as administrators see it: never the password hash or
// the TOTP secret. Its JSON is the shape `smartgate user show --output
// json` prints.
type User struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	Role        string     `json:"role"`
	FHIRUser    string     `json:"fhir_user,omitempty"`
	Status      string     `json:"status"`
	HasPassword bool       `json:"has_password"`
	TOTPEnabled bool       `json:"totp_enabled"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
	Links       []Link     `json:"links,omitempty"`
}

// Link is a user's identity at an upstream OpenID Connect provider.
type Link struct {
	Provider  string    `json:"provider"`
	Subject   string    `json:"subject"`
	CreatedAt time.Time `json:"created_at"`
}

// UserOf is how administrators (console, API, CLI) see a user.
func UserOf(u store.User, links []store.UserLink) User {
	v := User{ID: u.ID, Username: u.Username, Role: u.Role, FHIRUser: u.FHIRUser, Status: u.Status, HasPassword: u.PasswordHash != "",
		TOTPEnabled: u.TOTPEnabled, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
	if !u.LastLoginAt.IsZero() {
		t := u.LastLoginAt
		v.LastLoginAt = &t
	}
	for _, l := range links {
		v.Links = append(v.Links, Link{Provider: l.Provider, Subject: l.Subject, CreatedAt: l.CreatedAt})
	}
	return v
}

// ListUsers returns every user by username.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	us, err := s.d.Store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(us))
	for _, u := range us {
		out = append(out, UserOf(u, nil))
	}
	return out, nil
}

func (s *Service) user(ctx context.Context, username string) (store.User, error) {
	return s.d.Users.UserByName(ctx, username)
}

// User returns a user and their upstream links.
func (s *Service) User(ctx context.Context, username string) (User, error) {
	u, err := s.user(ctx, username)
	if err != nil {
		return User{}, err
	}
	links, err := s.d.Users.Links(ctx, u.ID)
	if err != nil {
		return User{}, err
	}
	return UserOf(u, links), nil
}

// NewUser is a user an administrator creates. Password may be empty for
// a user who signs in only through a linked provider.
type NewUser struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	FHIRUser string `json:"fhir_user,omitempty"`
	Password string `json:"password,omitempty"`
}

// CreateUser creates an enabled user.
func (s *Service) CreateUser(ctx context.Context, a Actor, n NewUser) (User, error) {
	u, err := s.d.Users.CreateUser(ctx, identity.NewUser{Username: strings.TrimSpace(n.Username), Role: n.Role, FHIRUser: strings.TrimSpace(n.FHIRUser), Password: n.Password}, a.ID)
	if err != nil {
		return User{}, err
	}
	return UserOf(u, nil), nil
}

// SetUserStatus enables or disables a user. Disabling refuses their
// sign-in, ends their login sessions and revokes every token issued to
// them so far.
func (s *Service) SetUserStatus(ctx context.Context, a Actor, username, status string) (User, error) {
	u, err := s.user(ctx, username)
	if err != nil {
		return User{}, err
	}
	if status == store.UserDisabled && a.ID == "user:"+u.ID {
		return User{}, problem.New(problem.InvalidRequest, "you cannot disable your own account (%s); ask another administrator", u.Username)
	}
	out, err := s.d.Users.SetStatus(ctx, u, status, a.ID)
	if err != nil {
		return User{}, err
	}
	return s.User(ctx, out.Username)
}

// SetPassword sets a user's password (checked by the password rules) and
// ends their login sessions.
func (s *Service) SetPassword(ctx context.Context, a Actor, username, password string) error {
	u, err := s.user(ctx, username)
	if err != nil {
		return err
	}
	return s.d.Users.SetPassword(ctx, u, password, a.ID)
}

// LinkUser ties a user to their identity (the "sub") at an upstream
// provider.
func (s *Service) LinkUser(ctx context.Context, a Actor, username, provider, subject string) (User, error) {
	u, err := s.user(ctx, username)
	if err != nil {
		return User{}, err
	}
	if _, err := s.d.Users.Link(ctx, u, strings.TrimSpace(provider), strings.TrimSpace(subject), a.ID); err != nil {
		return User{}, err
	}
	return s.User(ctx, u.Username)
}

// TOTPEnrollment is a new TOTP secret, shown once.
type TOTPEnrollment struct {
	Username   string `json:"username"`
	OTPAuthURL string `json:"otpauth_url"`
	Secret     string `json:"secret"`
}

// EnrollTOTP turns two-factor login on for a user with a new secret.
func (s *Service) EnrollTOTP(ctx context.Context, a Actor, username string) (TOTPEnrollment, error) {
	u, err := s.user(ctx, username)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	e, err := s.d.Users.EnrollTOTP(ctx, u, a.ID)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	return TOTPEnrollment{Username: u.Username, OTPAuthURL: e.URL, Secret: e.Secret}, nil
}

// DisableTOTP turns two-factor login off for a user.
func (s *Service) DisableTOTP(ctx context.Context, a Actor, username string) (User, error) {
	u, err := s.user(ctx, username)
	if err != nil {
		return User{}, err
	}
	if err := s.d.Users.DisableTOTP(ctx, u, a.ID); err != nil {
		return User{}, err
	}
	return s.User(ctx, u.Username)
}

// Grant is one app a user authorised.
type Grant struct {
	ID         string    `json:"id"`
	ClientID   string    `json:"client_id"`
	ClientName string    `json:"client_name"`
	Scope      string    `json:"scope"`
	Patient    string    `json:"patient,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	// Session is the login session an online_access grant ends with.
	Session string `json:"session,omitempty"`
}

// Grants returns a user's live grants, most recently used first.
func (s *Service) Grants(ctx context.Context, username string) ([]Grant, error) {
	u, err := s.user(ctx, username)
	if err != nil {
		return nil, err
	}
	gs, err := s.d.Store.ListGrantsBySubject(ctx, u.ID, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]Grant, 0, len(gs))
	for _, g := range gs {
		v := Grant{ID: g.ID, ClientID: g.ClientID, ClientName: g.ClientID + " (deleted)", Scope: g.Scope, Patient: grantPatient(g.Context),
			CreatedAt: g.CreatedAt, LastUsedAt: g.LastUsedAt, ExpiresAt: g.ExpiresAt, Session: g.SessionID}
		if c, err := s.d.Store.GetClient(ctx, g.ClientID); err == nil {
			v.ClientName = AppOf(c).Name()
		}
		out = append(out, v)
	}
	return out, nil
}

// RevokeGrant revokes a grant (its refresh tokens and access tokens stop
// working on every node within a second) and forgets the consent it came
// with, so the app has to ask the user again.
func (s *Service) RevokeGrant(ctx context.Context, a Actor, id string) error {
	g, err := s.d.Store.GetGrant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return problem.New(problem.NotFound, "no grant has id %q; GET /admin/api/users/{username}/grants lists a user's grants", id)
	}
	if err != nil {
		return err
	}
	if err := s.d.Store.RevokeGrant(ctx, g.ID, s.now()); err != nil {
		return err
	}
	if err := s.d.Store.DeleteConsent(ctx, g.ClientID, g.Subject); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.record(ctx, a, "grant.revoke", g.ClientID, map[string]any{"grant": g.ID, "subject": g.Subject, "reason": "revoked by an administrator"})
	return nil
}

// Session is one live login session of a user. ID names it without
// revealing the cookie (identity.SessionRef).
type Session struct {
	ID        string    `json:"id"`
	AuthTime  time.Time `json:"auth_time"`
	AMR       []string  `json:"amr,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Sessions returns a user's live login sessions, newest first.
func (s *Service) Sessions(ctx context.Context, username string) ([]Session, error) {
	u, err := s.user(ctx, username)
	if err != nil {
		return nil, err
	}
	ss, err := s.d.Store.ListLoginSessions(ctx, u.ID, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(ss))
	for _, x := range ss {
		out = append(out, Session{ID: identity.SessionRef(x.IDHash), AuthTime: x.AuthTime, AMR: x.AMR, CreatedAt: x.CreatedAt, ExpiresAt: x.ExpiresAt})
	}
	return out, nil
}

// RevokeSession ends one login session of a user, and with it the
// online_access grants tied to it. id "" ends every session of the user.
func (s *Service) RevokeSession(ctx context.Context, a Actor, username, id string) (int, error) {
	u, err := s.user(ctx, username)
	if err != nil {
		return 0, err
	}
	if id != "" {
		if _, err := hex.DecodeString(id); err != nil || len(id) != 32 {
			return 0, problem.New(problem.InvalidRequest, "session id %q is not one this server gave (32 hex digits); GET /admin/api/users/%s/sessions lists them", id, u.Username)
		}
	}
	now := s.now()
	ss, err := s.d.Store.ListLoginSessions(ctx, u.ID, now)
	if err != nil {
		return 0, err
	}
	n, grants := 0, 0
	for _, x := range ss {
		ref := identity.SessionRef(x.IDHash)
		if id != "" && ref != id {
			continue
		}
		if err := s.d.Store.RevokeLoginSession(ctx, x.IDHash, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, err
		}
		g, err := s.d.Store.RevokeSessionGrants(ctx, ref, now)
		if err != nil {
			return n, err
		}
		n++
		grants += g
	}
	if id != "" && n == 0 {
		return 0, problem.New(problem.NotFound, "user %s has no live session %s (it ended already, or belongs to someone else)", u.Username, id)
	}
	s.record(ctx, a, "session.revoke", "", map[string]any{"user_id": u.ID, "username": u.Username, "session": id, "sessions_revoked": n, "online_grants_revoked": grants})
	return n, nil
}

// grantPatient reads the patient of a grant's launch context.
func grantPatient(ctxJSON []byte) string {
	var c struct {
		Patient string `json:"patient"`
	}
	if len(ctxJSON) == 0 || json.Unmarshal(ctxJSON, &c) != nil {
		return ""
	}
	return c.Patient
}
