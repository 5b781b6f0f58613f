// Package identity owns the people who sign in: local users and their
// roles and fhirUser references, argon2id passwords behind a concurrency
// limit, login throttling shared by every node, TOTP two-factor login
// (RFC 6238), login sessions, links to upstream OpenID Connect identities,
// and the dev-mode demo users.
//
// A failed login says only that the username or password is wrong (no
// account enumeration, DESIGN.md principle 2); the reason travels as the
// error's private cause and into the audit trail.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/config"
	"smartgate/internal/keys"
	"smartgate/internal/store"
)

// Store is what identity needs from storage: users, and revocations (a
// disabled user's tokens die at once).
type Store interface {
	store.Users
	store.Revocations
}

// Recorder records audit events; *audit.Writer is one, and Direct another.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Options configure a Service.
type Options struct {
	Login config.Login
	// TokenLifetime is the longest lifetime of an access token: how long a
	// disabled user's subject revocation must last.
	TokenLifetime time.Duration
	// TOTPIssuer names the service in authenticator apps (default "smartgate").
	TOTPIssuer string
	// KEK returns the key-encryption key that seals TOTP secrets.
	KEK    func() (*keys.KEK, error)
	Audit  Recorder         // nil: nothing is audited
	Hasher *Hasher          // nil: NewHasher(Login.MaxConcurrentHashes)
	Clock  func() time.Time // nil: time.Now
	Rand   io.Reader        // nil: crypto/rand
}

// Service is the identity domain on one store.
type Service struct {
	st     Store
	opts   Options
	hasher *Hasher
	clock  func() time.Time
	rand   io.Reader
}

// New returns a Service.
func New(st Store, opts Options) *Service {
	s := &Service{st: st, opts: opts, hasher: opts.Hasher, clock: opts.Clock, rand: opts.Rand}
	if s.hasher == nil {
		s.hasher = NewHasher(opts.Login.MaxConcurrentHashes)
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.opts.TOTPIssuer == "" {
		s.opts.TOTPIssuer = "smartgate"
	}
	return s
}

// FromConfig returns a Service configured from cfg.
func FromConfig(st Store, cfg *config.Config, kek func() (*keys.KEK, error), rec Recorder) *Service {
	return New(st, Options{Login: cfg.Login, TokenLifetime: cfg.MaxTokenLifetime(), KEK: kek, Audit: rec})
}

// Hasher returns the service's password hasher (the password grant shares
// its concurrency limit).
func (s *Service) Hasher() *Hasher { return s.hasher }

func (s *Service) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// record audits one event; detail is marshalled to a JSON object.
func (s *Service) record(ctx context.Context, actor, action, outcome string, detail any) {
	if s.opts.Audit == nil {
		return
	}
	b, err := json.Marshal(detail)
	if err != nil {
		b = []byte("{}")
	}
	s.opts.Audit.Record(ctx, audit.Event{Actor: actor, Action: action, Outcome: outcome, Detail: string(b)})
}

// Direct is a Recorder that writes each event at once, for commands that
// end right after (the CLI) and have no batching writer.
type Direct struct {
	Store store.Audit
	Clock func() time.Time
}

// Record implements Recorder.
func (d Direct) Record(ctx context.Context, e audit.Event) {
	now := time.Now
	if d.Clock != nil {
		now = d.Clock
	}
	if e.Detail == "" {
		e.Detail = "{}"
	}
	_ = d.Store.AppendAudit(ctx, []store.AuditEvent{{Time: now().UTC(), Actor: e.Actor, ClientID: e.ClientID, Patient: e.Patient,
		Action: e.Action, Outcome: e.Outcome, Detail: e.Detail}})
}
