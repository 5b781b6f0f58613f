package store

import (
	"context"
	"time"
)

// User roles. A user's role decides which FHIR resource type its fhirUser
// may name (SMART App Launch 2.2 §"Scopes for requesting identity data":
// fhirUser is a Patient, Practitioner, PractitionerRole, RelatedPerson or
// Person) and what the login may grant.
const (
	RolePractitioner  = "practitioner"
	RolePatient       = "patient"
	RoleRelatedPerson = "related-person"
	RoleAdmin         = "admin"
)

// User status values.
const (
	UserEnabled  = "enabled"
	UserDisabled = "disabled"
)

// User is a local account. Usernames are unique without regard to case:
// the store compares and indexes them lower-cased (Go's strings.ToLower),
// and keeps the spelling they were created with.
type User struct {
	ID       string
	Username string
	Role     string // RolePractitioner, RolePatient, RoleRelatedPerson, RoleAdmin
	FHIRUser string // e.g. "Practitioner/pra-ines-munoz"; may be empty for admins
	Status   string // UserEnabled or UserDisabled
	// PasswordHash is the argon2id hash in PHC string format; empty for a
	// user who signs in only through an upstream provider.
	PasswordHash string
	// TOTPSecretEnc is the TOTP secret sealed with AES-256-GCM under the KEK
	// named by TOTPKEKID (nonce || ciphertext, bound to the user id). Only
	// package identity opens it.
	TOTPSecretEnc []byte
	TOTPKEKID     string
	TOTPEnabled   bool
	// TOTPLastStep is the RFC 6238 time step of the last accepted code:
	// codes of that step or earlier are refused (replay protection).
	TOTPLastStep int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastLoginAt  time.Time // zero: never
}

// UserLink ties a user to an identity at an upstream OpenID Connect
// provider: the provider's configured id and the "sub" it asserts.
type UserLink struct {
	UserID    string
	Provider  string
	Subject   string
	CreatedAt time.Time
}

// LoginSession is a signed-in browser session. The cookie carries a random
// session id; the store keeps only its SHA-256 hash.
type LoginSession struct {
	IDHash    []byte
	UserID    string
	AuthTime  time.Time // when the user authenticated (OIDC auth_time)
	AMR       []string  // RFC 8176 authentication methods, e.g. ["pwd", "otp", "mfa"]
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero while alive
}

// Throttle is the login-failure state of one key ("account:<username>" or
// "addr:<address>"), shared by every node.
type Throttle struct {
	Key         string
	Failures    int
	NextAllowed time.Time // attempts before this time are refused; zero: none
	UpdatedAt   time.Time // last change; zero for a key never stored
}

// Users stores local users, their upstream links, login sessions and login
// throttling state. Every write to a user or a link records a change on
// topic "users" (key: the user id) so that nodes caching users refresh
// them; session and throttle writes record none.
type Users interface {
	// CreateUser stores a new user; ErrConflict when the id or the
	// username (compared case-insensitively) is taken.
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByUsername finds a user by username, case-insensitively.
	GetUserByUsername(ctx context.Context, username string) (User, error)
	// ListUsers returns every user by username.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser runs fn on the stored user inside a transaction holding
	// the user's row lock (two concurrent updates of one user run one
	// after the other, so fn can check and set, e.g. TOTPLastStep) and
	// stores the result. An error from fn changes nothing; a new username
	// that is taken gives ErrConflict. The id cannot change.
	UpdateUser(ctx context.Context, id string, fn func(u *User) error) error

	// LinkUser stores a link; ErrNotFound when the user does not exist,
	// ErrConflict when (provider, subject) is linked already.
	LinkUser(ctx context.Context, l UserLink) error
	// UserByLink returns the user linked to (provider, subject).
	UserByLink(ctx context.Context, provider, subject string) (User, error)
	// ListUserLinks returns a user's links by provider and subject.
	ListUserLinks(ctx context.Context, userID string) ([]UserLink, error)
	// UnlinkUser deletes the link of (provider, subject); ErrNotFound when
	// there is none.
	UnlinkUser(ctx context.Context, provider, subject string) error

	// CreateLoginSession stores a session; ErrConflict on a repeated hash.
	CreateLoginSession(ctx context.Context, s LoginSession) error
	// GetLoginSession returns the session with this id hash, revoked or
	// expired ones included (the caller decides).
	GetLoginSession(ctx context.Context, idHash []byte) (LoginSession, error)
	// RevokeLoginSession marks one session revoked (a no-op when it is
	// already); ErrNotFound for an unknown hash.
	RevokeLoginSession(ctx context.Context, idHash []byte, at time.Time) error
	// RevokeUserSessions revokes every live session of a user and returns
	// how many it revoked.
	RevokeUserSessions(ctx context.Context, userID string, at time.Time) (int, error)
	// PruneLoginSessions deletes sessions that expired before before.
	PruneLoginSessions(ctx context.Context, before time.Time) error

	// GetThrottle returns the state of key: a zero Throttle (with Key set)
	// when none is stored.
	GetThrottle(ctx context.Context, key string) (Throttle, error)
	// UpdateThrottle runs fn on the state of key (a zero Throttle when none
	// is stored) under the key's lock, across every handle and node, and
	// stores the result: concurrent updates never lose one another. A
	// result with no failures and no NextAllowed deletes the row. It
	// returns what it stored.
	UpdateThrottle(ctx context.Context, key string, fn func(t *Throttle) error) (Throttle, error)
	// PruneThrottles deletes states whose last change and NextAllowed are
	// both before before.
	PruneThrottles(ctx context.Context, before time.Time) error
}
