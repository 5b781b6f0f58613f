package token

import (
	"context"
	"fmt"
	"sync"
	"time"

	"smartgate/internal/store"
)

// Revocations is a node's in-memory copy of the revocation records,
// refreshed from the store whenever the change feed reports topic
// "revocations" (at least every second), so a check costs no database
// round trip (DESIGN.md "Tokens and grants").
type Revocations struct {
	st    store.Revocations
	clock func() time.Time

	mu     sync.RWMutex
	lastID int64
	byKind map[string]map[string]entry
}

type entry struct{ revokedAt, expiresAt time.Time }

// NewRevocations returns an empty cache; call Load before use.
func NewRevocations(st store.Revocations, clock func() time.Time) *Revocations {
	if clock == nil {
		clock = time.Now
	}
	return &Revocations{st: st, clock: clock, byKind: map[string]map[string]entry{}}
}

// Load reads revocations recorded since the last Load and drops expired ones.
func (r *Revocations) Load(ctx context.Context) error {
	now := r.clock()
	r.mu.RLock()
	after := r.lastID
	r.mu.RUnlock()
	rs, err := r.st.RevocationsAfter(ctx, after, now)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rv := range rs {
		m := r.byKind[rv.Kind]
		if m == nil {
			m = map[string]entry{}
			r.byKind[rv.Kind] = m
		}
		if old, ok := m[rv.Value]; !ok || rv.RevokedAt.After(old.revokedAt) {
			m[rv.Value] = entry{rv.RevokedAt, rv.ExpiresAt}
		}
		if rv.ID > r.lastID {
			r.lastID = rv.ID
		}
	}
	for _, m := range r.byKind {
		for k, e := range m {
			if !now.Before(e.expiresAt) {
				delete(m, k)
			}
		}
	}
	return nil
}

// Check returns why the token is revoked, or "" when it is not: its jti or
// grant was revoked, or its client or subject revoked everything issued up
// to a time at or after the token's iat.
func (r *Revocations) Check(c *Claims) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.byKind[store.RevokeJTI][c.JTI]; ok {
		return "this token was revoked"
	}
	if c.Grant != "" {
		if _, ok := r.byKind[store.RevokeGrant][c.Grant]; ok {
			return "the grant it came from was revoked"
		}
	}
	if e, ok := r.byKind[store.RevokeClient][c.ClientID]; ok && c.IssuedAt <= e.revokedAt.Unix() {
		return fmt.Sprintf("its client was disabled or deleted at %s", e.revokedAt.UTC().Format(time.RFC3339))
	}
	if c.Subject != "" {
		if e, ok := r.byKind[store.RevokeSubject][c.Subject]; ok && c.IssuedAt <= e.revokedAt.Unix() {
			return "every token of its user issued before " + e.revokedAt.UTC().Format(time.RFC3339) + " was revoked"
		}
	}
	return ""
}
