package identity

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"regexp"
	"strings"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// Roles lists the user roles in the order docs and help show them.
var Roles = []string{store.RolePractitioner, store.RolePatient, store.RoleRelatedPerson, store.RoleAdmin}

var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)
	// A FHIR relative reference: Type/id, id as FHIR R4 §2.24.0.1 "id".
	fhirUserRE = regexp.MustCompile(`^(Practitioner|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}$`)
	providerRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// fhirUserTypes is the resource type each role's fhirUser must name
// (SMART App Launch 2.2 "fhirUser"): admins need none, or act as a
// Practitioner.
var fhirUserTypes = map[string][]string{
	store.RolePractitioner:  {"Practitioner"},
	store.RolePatient:       {"Patient"},
	store.RoleRelatedPerson: {"RelatedPerson"},
	store.RoleAdmin:         {"Practitioner"},
}

// CheckUsername applies the username rules: 1 to 64 characters, ASCII
// letters and digits, and . _ @ + - after the first (so that an e-mail
// address works and look-alike Unicode names cannot be made).
func CheckUsername(username string) error {
	if !usernameRE.MatchString(username) {
		return problem.New(problem.InvalidRequest, "username %q is not allowed: use 1 to 64 characters, ASCII letters and digits, and . _ @ + - after the first", username)
	}
	return nil
}

// CheckRole reports whether role is one of Roles.
func CheckRole(role string) error {
	for _, r := range Roles {
		if r == role {
			return nil
		}
	}
	return problem.New(problem.InvalidRequest, "role %q is not one of %s", role, strings.Join(Roles, ", "))
}

// CheckFHIRUser checks that ref is a relative reference to the resource
// type role's users are: practitioner -> Practitioner/id, patient ->
// Patient/id, related-person -> RelatedPerson/id, admin -> none or
// Practitioner/id.
func CheckFHIRUser(role, ref string) error {
	if ref == "" {
		return nil
	}
	want := fhirUserTypes[role]
	if !fhirUserRE.MatchString(ref) {
		return problem.New(problem.InvalidRequest, "fhirUser %q is not a reference like %s/123 (resource type, a slash, and a FHIR id of letters, digits, - and .)", ref, want[0])
	}
	typ, _, _ := strings.Cut(ref, "/")
	for _, w := range want {
		if typ == w {
			return nil
		}
	}
	return problem.New(problem.InvalidRequest, "a %s user's fhirUser must be a %s reference, not %q", role, strings.Join(want, " or "), ref)
}

// NewUser is what CreateUser needs.
type NewUser struct {
	Username, Role, FHIRUser string
	Password                 string // empty: no password (sign-in only through a linked provider)
	// WeakPasswordOK skips the length rule: only for the generated dev
	// demo users.
	WeakPasswordOK bool
}

// newUserID returns "u-" and 26 random base32 characters (130 bits).
func newUserID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "u-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// CreateUser validates and stores a new enabled user. actor is who does it,
// for the audit trail ("cli", "user:<id>", "system").
func (s *Service) CreateUser(ctx context.Context, nu NewUser, actor string) (store.User, error) {
	if err := CheckUsername(nu.Username); err != nil {
		return store.User{}, err
	}
	if err := CheckRole(nu.Role); err != nil {
		return store.User{}, err
	}
	if err := CheckFHIRUser(nu.Role, nu.FHIRUser); err != nil {
		return store.User{}, err
	}
	u := store.User{ID: newUserID(), Username: nu.Username, Role: nu.Role, FHIRUser: nu.FHIRUser, Status: store.UserEnabled}
	if nu.Password != "" {
		minLen := MinPasswordLength
		if nu.WeakPasswordOK {
			minLen = 1
		}
		if err := passwordRules(nu.Username, nu.Password, minLen); err != nil {
			return store.User{}, err
		}
		h, err := s.hasher.HashPassword(ctx, nu.Password)
		if err != nil {
			return store.User{}, err
		}
		u.PasswordHash = h
	}
	u.CreatedAt = s.now()
	u.UpdatedAt = u.CreatedAt
	if err := s.st.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, problem.New(problem.UserExists, "a user named %q exists already (usernames ignore case)", nu.Username)
		}
		return store.User{}, err
	}
	s.record(ctx, actor, "user.create", audit.Success, map[string]string{"user_id": u.ID, "username": u.Username, "role": u.Role, "fhir_user": u.FHIRUser})
	return u, nil
}

// notFound is the error for an unknown username in administration.
func notFound(username string) error {
	return problem.New(problem.NotFound, "no user is named %q; `smartgate user list` shows them", username)
}

// UserByName returns the user named username (case-insensitively), or a
// not_found problem.
func (s *Service) UserByName(ctx context.Context, username string) (store.User, error) {
	u, err := s.st.GetUserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return u, notFound(username)
	}
	return u, err
}

// Links returns the user's upstream identity links.
func (s *Service) Links(ctx context.Context, userID string) ([]store.UserLink, error) {
	return s.st.ListUserLinks(ctx, userID)
}

// update runs fn on the user and stamps UpdatedAt; unknown users are a
// not_found problem naming username.
func (s *Service) update(ctx context.Context, u store.User, fn func(*store.User) error) (store.User, error) {
	var out store.User
	err := s.st.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if err := fn(x); err != nil {
			return err
		}
		x.UpdatedAt = s.now()
		out = *x
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return out, notFound(u.Username)
	}
	return out, err
}

// SetPassword checks and stores a new password and ends the user's login
// sessions (whoever held one must sign in with the new password).
func (s *Service) SetPassword(ctx context.Context, u store.User, password, actor string) error {
	if err := CheckPassword(u.Username, password); err != nil {
		return err
	}
	h, err := s.hasher.HashPassword(ctx, password)
	if err != nil {
		return err
	}
	if _, err := s.update(ctx, u, func(x *store.User) error { x.PasswordHash = h; return nil }); err != nil {
		return err
	}
	n, err := s.st.RevokeUserSessions(ctx, u.ID, s.now())
	if err != nil {
		return err
	}
	s.record(ctx, actor, "user.set_password", audit.Success, map[string]any{"user_id": u.ID, "username": u.Username, "sessions_revoked": n})
	return nil
}

// SetStatus enables or disables a user. Disabling ends the user's login
// sessions and revokes every access token issued to them so far (a
// subject revocation on the user id, which is the tokens' "sub").
func (s *Service) SetStatus(ctx context.Context, u store.User, status, actor string) (store.User, error) {
	if status != store.UserEnabled && status != store.UserDisabled {
		return u, problem.New(problem.InvalidRequest, "status %q is not enabled or disabled", status)
	}
	out, err := s.update(ctx, u, func(x *store.User) error { x.Status = status; return nil })
	if err != nil {
		return out, err
	}
	detail := map[string]any{"user_id": u.ID, "username": u.Username}
	if status == store.UserDisabled {
		now := s.now()
		n, err := s.st.RevokeUserSessions(ctx, u.ID, now)
		if err != nil {
			return out, err
		}
		ttl := s.opts.TokenLifetime
		if ttl <= 0 {
			ttl = 24 * time.Hour
		}
		if err := s.st.Revoke(ctx, store.Revocation{Kind: store.RevokeSubject, Value: u.ID, RevokedAt: now, ExpiresAt: now.Add(ttl)}); err != nil {
			return out, err
		}
		detail["sessions_revoked"] = n
	}
	action := "user.enable"
	if status == store.UserDisabled {
		action = "user.disable"
	}
	s.record(ctx, actor, action, audit.Success, detail)
	return out, nil
}

// Link ties the user to subject at the upstream provider.
func (s *Service) Link(ctx context.Context, u store.User, provider, subject, actor string) (store.UserLink, error) {
	if !providerRE.MatchString(provider) {
		return store.UserLink{}, problem.New(problem.InvalidRequest, "provider %q is not a provider id: use 1 to 64 lower-case letters, digits, . _ -", provider)
	}
	if subject == "" || len(subject) > 255 {
		return store.UserLink{}, problem.New(problem.InvalidRequest, "the subject must be the provider's \"sub\" for the user: 1 to 255 characters (OpenID Connect Core §2)")
	}
	l := store.UserLink{UserID: u.ID, Provider: provider, Subject: subject, CreatedAt: s.now()}
	if err := s.st.LinkUser(ctx, l); err != nil {
		switch {
		case errors.Is(err, store.ErrConflict):
			other, _ := s.st.UserByLink(ctx, provider, subject)
			return l, problem.New(problem.UserExists, "subject %q of provider %s is linked to user %q already; a provider identity belongs to one user", subject, provider, other.Username)
		case errors.Is(err, store.ErrNotFound):
			return l, notFound(u.Username)
		}
		return l, err
	}
	s.record(ctx, actor, "user.link", audit.Success, map[string]string{"user_id": u.ID, "username": u.Username, "provider": provider, "subject": subject})
	return l, nil
}
