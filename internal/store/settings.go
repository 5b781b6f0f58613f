package store

import (
	"context"
	"time"
)

// Setting is one runtime setting an administrator stored: a configuration
// key that is safe to change while smartgate runs (docs/configuration.md,
// "Runtime settings"), in the text form the environment uses.
type Setting struct {
	Key       string // e.g. "tokens.access_token_ttl"
	Value     string // e.g. "30m"; lists comma-separated
	UpdatedAt time.Time
	UpdatedBy string // the audit actor who stored it, e.g. "user:u-..."
}

// Settings stores runtime settings. Every write records a change on topic
// "settings" (key: the setting's key) in its own transaction, so that
// every node applies it within a second.
type Settings interface {
	// ListSettings returns every stored setting, by key.
	ListSettings(ctx context.Context) ([]Setting, error)
	// PutSetting stores a setting, replacing any value of its key.
	PutSetting(ctx context.Context, s Setting) error
	// DeleteSetting forgets a stored setting (the key falls back to the
	// configuration file or its default); ErrNotFound when none is stored.
	DeleteSetting(ctx context.Context, key string) error
}

// SessionLister lists login sessions for administration.
type SessionLister interface {
	// ListLoginSessions returns a user's live sessions (not revoked, not
	// expired at now), newest first.
	ListLoginSessions(ctx context.Context, userID string, now time.Time) ([]LoginSession, error)
}
