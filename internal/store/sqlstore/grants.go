package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"smartgate/internal/store"
)

const grantColumns = "id, client_id, subject, scope, context, session_id, created_at, expires_at, revoked_at, last_used_at"

func scanGrant(r rowScanner) (store.Grant, error) {
	var g store.Grant
	var ctxJSON string
	var created, expires, revoked, used int64
	if err := r.Scan(&g.ID, &g.ClientID, &g.Subject, &g.Scope, &ctxJSON, &g.SessionID, &created, &expires, &revoked, &used); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return g, store.ErrNotFound
		}
		return g, err
	}
	g.Context = []byte(ctxJSON)
	g.CreatedAt, g.ExpiresAt, g.RevokedAt = fromMicros(created), optTime(expires), optTime(revoked)
	g.LastUsedAt = fromMicros(used)
	return g, nil
}

// CreateGrant implements store.Grants. A zero LastUsedAt is stored as
// CreatedAt: creating a grant is its first use.
func (db *DB) CreateGrant(ctx context.Context, g store.Grant, rt *store.RefreshToken) error {
	ctxJSON := string(g.Context)
	if ctxJSON == "" {
		ctxJSON = "{}"
	}
	if g.LastUsedAt.IsZero() {
		g.LastUsedAt = g.CreatedAt
	}
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q("INSERT INTO grants ("+grantColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
			g.ID, g.ClientID, g.Subject, g.Scope, ctxJSON, g.SessionID, micros(g.CreatedAt), optMicros(g.ExpiresAt), optMicros(g.RevokedAt),
			micros(g.LastUsedAt)); err != nil {
			return err
		}
		if rt != nil {
			return insertRefresh(ctx, db, tx, g.ID, *rt)
		}
		return nil
	})
}

func insertRefresh(ctx context.Context, db *DB, tx *sql.Tx, grantID string, rt store.RefreshToken) error {
	_, err := tx.ExecContext(ctx, db.q("INSERT INTO refresh_tokens (hash, grant_id, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, 0)"),
		rt.Hash, grantID, micros(rt.CreatedAt), micros(rt.ExpiresAt))
	return err
}

// GetGrant implements store.Grants.
func (db *DB) GetGrant(ctx context.Context, id string) (store.Grant, error) {
	return scanGrant(db.r.QueryRowContext(ctx, db.q("SELECT "+grantColumns+" FROM grants WHERE id = ?"), id))
}

func scanRefresh(r rowScanner) (store.RefreshToken, error) {
	var rt store.RefreshToken
	var created, expires, used int64
	if err := r.Scan(&rt.Hash, &rt.GrantID, &created, &expires, &used); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return rt, store.ErrNotFound
		}
		return rt, err
	}
	rt.CreatedAt, rt.ExpiresAt, rt.UsedAt = fromMicros(created), fromMicros(expires), optTime(used)
	return rt, nil
}

// FindRefreshToken implements store.Grants.
func (db *DB) FindRefreshToken(ctx context.Context, hash []byte) (store.RefreshToken, store.Grant, error) {
	rt, err := scanRefresh(db.r.QueryRowContext(ctx, db.q("SELECT hash, grant_id, created_at, expires_at, used_at FROM refresh_tokens WHERE hash = ?"), hash))
	if err != nil {
		return rt, store.Grant{}, err
	}
	g, err := db.GetGrant(ctx, rt.GrantID)
	return rt, g, err
}

// RotateRefreshToken implements store.Grants. The conditional UPDATE
// (used_at = 0) is the atomic consumption: of two concurrent rotations of
// one token exactly one changes the row. A successful rotation (a retry
// within grace included) records now as the grant's last use.
func (db *DB) RotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, grace time.Duration, next store.RefreshToken) (store.Grant, error) {
	var grant store.Grant
	reused := false
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		rt, err := scanRefresh(tx.QueryRowContext(ctx, db.q("SELECT hash, grant_id, created_at, expires_at, used_at FROM refresh_tokens WHERE hash = ?"), oldHash))
		if err != nil {
			return err
		}
		g, err := scanGrant(tx.QueryRowContext(ctx, db.q("SELECT "+grantColumns+" FROM grants WHERE id = ?"), rt.GrantID))
		if err != nil {
			return err
		}
		grant = g
		switch {
		case !g.RevokedAt.IsZero():
			return store.ErrGrantRevoked
		case !rt.UsedAt.IsZero() && (grace <= 0 || now.Sub(rt.UsedAt) > grace):
			// Reuse: someone holds a copy of a rotated token. Revoke the
			// whole grant (OAuth 2.0 Security BCP §4.14.2).
			reused = true
			return db.revokeGrantTx(ctx, tx, g, now)
		case !now.Before(rt.ExpiresAt), !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt):
			return store.ErrExpired
		}
		if rt.UsedAt.IsZero() {
			res, err := tx.ExecContext(ctx, db.q("UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at = 0"), micros(now), oldHash)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return store.ErrRefreshReused
			}
		}
		if _, err := tx.ExecContext(ctx, db.q("UPDATE grants SET last_used_at = ? WHERE id = ?"), micros(now), g.ID); err != nil {
			return err
		}
		grant.LastUsedAt = fromMicros(micros(now)) // as GetGrant will read it back
		return insertRefresh(ctx, db, tx, g.ID, next)
	})
	if reused && err == nil {
		return grant, store.ErrRefreshReused
	}
	if errors.Is(err, store.ErrRefreshReused) && grant.ID != "" && grace <= 0 {
		// A concurrent use won the race: this one is a reuse too.
		if rerr := db.RevokeGrant(ctx, grant.ID, now); rerr != nil {
			return grant, rerr
		}
	}
	return grant, err
}

// RevokeGrant implements store.Grants.
func (db *DB) RevokeGrant(ctx context.Context, id string, at time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		g, err := scanGrant(tx.QueryRowContext(ctx, db.q("SELECT "+grantColumns+" FROM grants WHERE id = ?"), id))
		if err != nil {
			return err
		}
		if !g.RevokedAt.IsZero() {
			return nil
		}
		return db.revokeGrantTx(ctx, tx, g, at)
	})
}

// ListGrantsBySubject implements store.Grants. A grant with no absolute
// end (ExpiresAt zero, stored as 0) is live until revoked, as in
// RotateRefreshToken.
func (db *DB) ListGrantsBySubject(ctx context.Context, subject string, now time.Time) ([]store.Grant, error) {
	rows, err := db.r.QueryContext(ctx, db.q("SELECT "+grantColumns+` FROM grants
		WHERE subject = ? AND revoked_at = 0 AND (expires_at = 0 OR expires_at > ?)
		ORDER BY last_used_at DESC, created_at DESC, id`), subject, micros(now))
	if err != nil {
		return nil, err
	}
	return collectGrants(rows)
}

// sessionGrantsQuery selects a session's live grants (session_id, now);
// index grants_session answers it.
const sessionGrantsQuery = "SELECT " + grantColumns + ` FROM grants
	WHERE session_id = ? AND revoked_at = 0 AND (expires_at = 0 OR expires_at > ?) ORDER BY id`

// RevokeSessionGrants implements store.Grants. Grants already expired at
// at are left alone: no token of theirs is alive to revoke. An empty
// sessionID names no session (grants without one store ""), so it revokes
// nothing.
func (db *DB) RevokeSessionGrants(ctx context.Context, sessionID string, at time.Time) (int, error) {
	if sessionID == "" {
		return 0, nil
	}
	n := 0
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.q(sessionGrantsQuery), sessionID, micros(at))
		if err != nil {
			return err
		}
		gs, err := collectGrants(rows)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if err := db.revokeGrantTx(ctx, tx, g, at); err != nil {
				return err
			}
		}
		n = len(gs)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// RevokeClientGrants implements store.Grants.
func (db *DB) RevokeClientGrants(ctx context.Context, clientID string, at time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.q("SELECT "+grantColumns+" FROM grants WHERE client_id = ? AND revoked_at = 0"), clientID)
		if err != nil {
			return err
		}
		gs, err := collectGrants(rows)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if err := db.revokeGrantTx(ctx, tx, g, at); err != nil {
				return err
			}
		}
		return nil
	})
}

// collectGrants scans and closes rows. Callers inside a transaction read
// every row before writing: the SQLite writer has one connection and
// PostgreSQL cannot run a statement while another's rows are open on it.
func collectGrants(rows *sql.Rows) ([]store.Grant, error) {
	defer rows.Close()
	var gs []store.Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, rows.Err()
}

// revokeGrantTx marks g revoked, deletes its refresh tokens and records a
// grant revocation that lasts until g's absolute end (or a year).
func (db *DB) revokeGrantTx(ctx context.Context, tx *sql.Tx, g store.Grant, at time.Time) error {
	if _, err := tx.ExecContext(ctx, db.q("UPDATE grants SET revoked_at = ? WHERE id = ?"), micros(at), g.ID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, db.q("DELETE FROM refresh_tokens WHERE grant_id = ? AND used_at = 0"), g.ID); err != nil {
		return err
	}
	until := g.ExpiresAt
	if until.IsZero() || until.Before(at) {
		until = at.Add(365 * 24 * time.Hour)
	}
	return db.revokeTx(ctx, tx, store.Revocation{Kind: store.RevokeGrant, Value: g.ID, RevokedAt: at, ExpiresAt: until})
}
