// Package store is smartgate's storage contract. Domain packages depend only
// on these interfaces and types; the SQL implementation (SQLite and
// PostgreSQL dialects) lives in store/sqlstore, and store/storetest is the one
// conformance suite every backend passes.
//
// Updates that must be atomic take an updater closure that the store runs
// inside its transaction, under a lock where the contract says so.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// Store is the whole storage contract.
type Store interface {
	Admin
	SigningKeys
	Changes
	Audit
	Clients
	Grants
	Revocations
	Assertions
	InitialAccessTokens
	FHIR
	Authz
	Users
	Exports
	Settings
	SessionLister
}

// Admin covers the database itself: schema, health and clock.
type Admin interface {
	// Dialect is "sqlite" or "postgres".
	Dialect() string
	// Migrate applies every pending embedded migration, under a lock so that
	// several nodes starting at once migrate once. It returns the versions it
	// applied.
	Migrate(ctx context.Context) ([]int, error)
	// SchemaVersion returns the applied and the latest known versions.
	SchemaVersion(ctx context.Context) (current, latest int, err error)
	Ping(ctx context.Context) error
	// Now is the database server's clock (the local clock for SQLite).
	Now(ctx context.Context) (time.Time, error)
	// Check runs the engine's own consistency check (SQLite quick_check).
	Check(ctx context.Context) error
	Close() error
}

// SigningKey is one stored signing key. The private key is encrypted; only
// package keys knows how to open it.
type SigningKey struct {
	KID        string
	Alg        string // "ES256" or "RS256"
	PublicJWK  []byte // JSON Web Key, public members only
	PrivateEnc []byte // AES-256-GCM nonce || ciphertext, the kid as additional data
	KEKID      string // which key-encryption key sealed PrivateEnc
	CreatedAt  time.Time
	ActiveAt   time.Time // the key may sign from this time on
}

// SigningKeys stores the signing keys.
type SigningKeys interface {
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// UpdateSigningKeys runs fn with every stored key, inside one transaction
	// holding the signing-keys lock, and inserts or replaces (by KID) the keys
	// fn returns. An error from fn rolls everything back. A change on topic
	// "keys" is recorded when fn returns any key.
	UpdateSigningKeys(ctx context.Context, fn func(existing []SigningKey) ([]SigningKey, error)) error
}

// Change is one entry of the change sequence: something shared changed and
// nodes should refresh what they cache about it.
type Change struct {
	Seq   int64
	Topic string // e.g. "keys", "clients", "revocations", "settings"
	Key   string // what changed within the topic; may be empty
	At    time.Time
}

// Changes is the cross-node change sequence. Sequence numbers are assigned
// in commit order, so a reader that follows ChangesSince never skips one.
type Changes interface {
	// RecordChange appends a change on its own (writes that belong to a
	// topic record theirs inside their own transaction).
	RecordChange(ctx context.Context, topic, key string) error
	ChangesSince(ctx context.Context, after int64, limit int) ([]Change, error)
	LatestChange(ctx context.Context) (int64, error)
	// PruneChanges deletes changes older than before, always keeping the latest.
	PruneChanges(ctx context.Context, before time.Time) error
	// Notifications returns a channel that receives a value soon after any
	// change commits (PostgreSQL LISTEN/NOTIFY), or nil when the engine has no
	// such push: callers then rely on polling alone.
	Notifications(ctx context.Context) <-chan struct{}
}

// AuditEvent is one audited action.
type AuditEvent struct {
	ID        int64
	Time      time.Time
	RequestID string
	Actor     string // who: "user:alice", "client:abc", "cli", "system"
	ClientID  string
	Patient   string
	Action    string // e.g. "key.rotate", "token.issue", "fhir.read"
	Outcome   string // "success" or "failure"
	Detail    string // JSON object with anything else; never a secret
}

// AuditFilter selects audit events; zero fields do not filter. An Action
// ending in ".*" (e.g. "client.*") matches every action with that prefix.
type AuditFilter struct {
	Actor, ClientID, Patient, Action, Outcome string
	Since, Until                              time.Time
	Limit                                     int // 0 means 100
	// BeforeTime and BeforeID page through the list (keyset paging): only
	// events after the event (BeforeTime, BeforeID) in the list's order,
	// i.e. older ones, are returned. Zero BeforeID: from the newest.
	BeforeTime time.Time
	BeforeID   int64
}

// Audit stores audit events.
type Audit interface {
	AppendAudit(ctx context.Context, events []AuditEvent) error
	// ListAudit returns matching events, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}
