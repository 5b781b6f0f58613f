package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrAlreadyUsed is returned when a single-use item (an authorization
// code, a pushed request, a launch context) is presented a second time.
var ErrAlreadyUsed = errors.New("store: already used")

// AuthCode is an authorization code (RFC 6749 §4.1) as stored: only the
// SHA-256 of the code is kept.
type AuthCode struct {
	Hash          []byte
	ClientID      string
	RedirectURI   string
	CodeChallenge string // PKCE S256 challenge; empty only for exempted clients
	Nonce         string
	Scope         string // the granted scopes
	Subject       string // the user id
	SessionID     string // the login session's reference (online_access)
	AuthTime      time.Time
	// Context is the SMART launch context and token-response extras
	// (patient, encounter, fhirContext, need_patient_banner, ...), JSON.
	Context   json.RawMessage
	GrantID   string // set once the code was exchanged
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until exchanged
}

// PushedRequest is a pushed authorization request (RFC 9126): the
// authorization request's parameters, stored under the SHA-256 of the
// request_uri's random part.
type PushedRequest struct {
	Hash      []byte
	ClientID  string
	Params    json.RawMessage // the request parameters as a JSON object of string arrays
	ExpiresAt time.Time
}

// Launch is an EHR launch context (SMART App Launch §EHR launch): created
// for one client, used once at authorization.
type Launch struct {
	Hash      []byte
	ClientID  string
	Context   json.RawMessage // patient, encounter, fhirContext, ...
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Consent is what a user agreed to give a client, remembered so that the
// consent page is not shown again for the same or a narrower request.
type Consent struct {
	ClientID  string
	Subject   string
	Scope     string
	CreatedAt time.Time
}

// Authz stores the short-lived state of the authorization endpoint.
type Authz interface {
	CreateAuthCode(ctx context.Context, c AuthCode) error
	// UseAuthCode marks the code with this hash used and returns it. A code
	// used before returns it with ErrAlreadyUsed (the caller revokes the
	// grant issued from it); an expired one ErrExpired; an unknown one
	// ErrNotFound. Of two concurrent uses exactly one succeeds.
	UseAuthCode(ctx context.Context, hash []byte, now time.Time) (AuthCode, error)
	// SetAuthCodeGrant records the grant issued from a used code.
	SetAuthCodeGrant(ctx context.Context, hash []byte, grantID string) error

	CreatePushedRequest(ctx context.Context, p PushedRequest) error
	// TakePushedRequest returns and deletes the request (single use);
	// ErrNotFound when unknown, ErrExpired when expired.
	TakePushedRequest(ctx context.Context, hash []byte, now time.Time) (PushedRequest, error)

	CreateLaunch(ctx context.Context, l Launch) error
	// TakeLaunch returns and deletes the launch context of clientID (single
	// use). ErrNotFound when unknown or used, ErrAccessDenied (and the
	// launch is left for its app) when it was made for another client,
	// ErrExpired when expired.
	TakeLaunch(ctx context.Context, hash []byte, clientID string, now time.Time) (Launch, error)

	GetConsent(ctx context.Context, clientID, subject string) (Consent, error)
	PutConsent(ctx context.Context, c Consent) error
	DeleteConsent(ctx context.Context, clientID, subject string) error

	// PruneAuthz deletes codes, pushed requests and launches that expired
	// before the given time.
	PruneAuthz(ctx context.Context, before time.Time) error
}
