package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors of the OAuth storage contract.
var (
	// ErrConflict is returned when a row with the same key exists.
	ErrConflict = errors.New("store: already exists")
	// ErrRefreshReused is returned by RotateRefreshToken when a refresh
	// token that was already used is presented again; the store has revoked
	// the grant.
	ErrRefreshReused = errors.New("store: refresh token reused; grant revoked")
	// ErrGrantRevoked is returned when the grant behind a token was revoked.
	ErrGrantRevoked = errors.New("store: grant revoked")
	// ErrExpired is returned for an expired refresh token or grant.
	ErrExpired = errors.New("store: expired")
)

// Client status values.
const (
	ClientPending  = "pending"
	ClientEnabled  = "enabled"
	ClientDisabled = "disabled"
)

// Client is a registered OAuth client (RFC 7591 metadata plus smartgate's
// own fields).
type Client struct {
	ID       string
	Type     string // "public", "confidential-symmetric", "confidential-asymmetric"
	Status   string // ClientPending, ClientEnabled, ClientDisabled
	Verified bool   // created or approved by an administrator
	Metadata ClientMetadata
	// SecretHash is SHA-256 of the client secret (confidential-symmetric).
	SecretHash      []byte
	SecretExpiresAt time.Time // zero: never
	// RegistrationTokenHash is SHA-256 of the RFC 7592 registration access token.
	RegistrationTokenHash []byte
	IntrospectAny         bool // a resource server: may introspect any token
	MayLaunch             bool // may be launched from the EHR
	Admin                 bool // may get the smartgate:admin scope
	// PKCEExempt lets a confidential client that asks only for OpenID
	// scopes (no FHIR access) skip PKCE at authorize, so the server can pass
	// the OpenID Foundation's Basic OP tests. Off by default; admin only.
	PKCEExempt bool
	// RequirePAR makes /oauth2/authorize accept only pushed requests
	// (RFC 9126 §5 require_pushed_authorization_requests).
	RequirePAR           bool
	CreatedBy            string // "admin" or "self"
	CreatedAt, UpdatedAt time.Time
}

// ClientMetadata is the RFC 7591 §2 client metadata.
type ClientMetadata struct {
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	ClientName              string          `json:"client_name,omitempty"`
	ClientURI               string          `json:"client_uri,omitempty"`
	LogoURI                 string          `json:"logo_uri,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	Contacts                []string        `json:"contacts,omitempty"`
	TOSURI                  string          `json:"tos_uri,omitempty"`
	PolicyURI               string          `json:"policy_uri,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`
	// PostLogoutRedirectURIs are where /oauth2/logout may send the browser
	// (OpenID Connect RP-Initiated Logout 1.0 §3.1), matched exactly.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// InitiateLoginURI is the app's launch URL (OpenID Connect Dynamic
	// Client Registration §2): EHR launches send the browser there with
	// ?iss=<FHIR base>&launch=<id>.
	InitiateLoginURI string `json:"initiate_login_uri,omitempty"`
}

// Clients stores clients. Every write records a change on topic "clients"
// (key: the client id) so that every node refreshes its cache.
type Clients interface {
	CreateClient(ctx context.Context, c Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	// UpdateClient runs fn on the stored client inside a transaction and
	// stores the result; an error from fn changes nothing.
	UpdateClient(ctx context.Context, id string, fn func(c *Client) error) error
	DeleteClient(ctx context.Context, id string) error
	// ForgetConsents deletes the consent users gave the client.
	ForgetConsents(ctx context.Context, clientID string) error
}

// Grant is what a user (or a client for itself) authorised a client to do;
// refresh tokens and access tokens carry its id.
type Grant struct {
	ID        string
	ClientID  string
	Subject   string
	Scope     string
	Context   json.RawMessage // SMART launch context: patient, encounter, fhirUser, ...
	SessionID string          // online_access grants end with this login session
	CreatedAt time.Time
	ExpiresAt time.Time // absolute end
	RevokedAt time.Time // zero while alive
	// LastUsedAt is when the grant was last exercised: created, or a
	// refresh token of it rotated.
	LastUsedAt time.Time
}

// RefreshToken is a stored refresh token: only its SHA-256 hash is kept.
type RefreshToken struct {
	Hash      []byte
	GrantID   string
	CreatedAt time.Time
	ExpiresAt time.Time // idle expiry
	UsedAt    time.Time // zero until rotated
}

// Grants stores grants and their refresh tokens.
type Grants interface {
	// CreateGrant stores a grant and, when rt is non-nil, its first refresh token.
	CreateGrant(ctx context.Context, g Grant, rt *RefreshToken) error
	GetGrant(ctx context.Context, id string) (Grant, error)
	// RotateRefreshToken consumes the refresh token with hash oldHash and
	// stores next in the same transaction, atomically: of two concurrent
	// uses, exactly one succeeds. A token used before (outside grace of its
	// first use) revokes its grant and returns ErrRefreshReused. Expired
	// tokens and grants give ErrExpired; revoked grants ErrGrantRevoked;
	// unknown tokens ErrNotFound. next's GrantID is set by the store; the
	// grant's LastUsedAt becomes now.
	RotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, grace time.Duration, next RefreshToken) (Grant, error)
	// FindRefreshToken returns a refresh token and its grant.
	FindRefreshToken(ctx context.Context, hash []byte) (RefreshToken, Grant, error)
	// RevokeGrant marks the grant revoked and records a grant revocation.
	RevokeGrant(ctx context.Context, id string, at time.Time) error
	// ListGrantsBySubject returns a user's live grants (not revoked, not
	// expired at now), most recently used first.
	ListGrantsBySubject(ctx context.Context, subject string, now time.Time) ([]Grant, error)
	// RevokeSessionGrants revokes every live grant tied to a login session
	// (online_access grants, Grant.SessionID) and records a grant
	// revocation for each, in one transaction; it returns how many.
	RevokeSessionGrants(ctx context.Context, sessionID string, at time.Time) (int, error)
	// RevokeClientGrants revokes every live grant of a client (and with
	// them their refresh tokens), in one transaction.
	RevokeClientGrants(ctx context.Context, clientID string, at time.Time) error
}

// Revocation kinds: a token is dead when its jti, its grant or its client
// was revoked after it was issued, or its subject revoked everything before
// a time.
const (
	RevokeJTI     = "jti"
	RevokeGrant   = "grant"
	RevokeClient  = "client"
	RevokeSubject = "subject"
)

// Revocation is one revocation record.
type Revocation struct {
	ID        int64
	Kind      string
	Value     string
	RevokedAt time.Time // tokens issued at or before this time are dead
	ExpiresAt time.Time // after this no token it could affect is alive: prunable
}

// Revocations stores revocations; every write records a change on topic
// "revocations".
type Revocations interface {
	Revoke(ctx context.Context, r Revocation) error
	// RevocationsAfter lists unexpired revocations with ID > after, in ID order.
	RevocationsAfter(ctx context.Context, after int64, now time.Time) ([]Revocation, error)
	PruneRevocations(ctx context.Context, now time.Time) error
}

// Assertions remembers client-assertion ids (RFC 7523 §3 "jti") so each is
// accepted once across all nodes.
type Assertions interface {
	// UseAssertion records (clientID, jti) until expires; it returns false
	// when the pair is already recorded and not yet expired.
	UseAssertion(ctx context.Context, clientID, jti string, expires, now time.Time) (bool, error)
	PruneAssertions(ctx context.Context, now time.Time) error
}

// InitialAccessTokens are the RFC 7591 §3 tokens that authorise dynamic
// registration when the policy requires one. Only hashes are stored.
type InitialAccessTokens interface {
	CreateInitialAccessToken(ctx context.Context, hash []byte, expires time.Time) error
	// CheckInitialAccessToken reports whether hash names an unexpired token.
	CheckInitialAccessToken(ctx context.Context, hash []byte, now time.Time) (bool, error)
}
