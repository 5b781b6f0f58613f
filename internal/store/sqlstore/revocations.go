package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"smartgate/internal/store"
)

// Revoke implements store.Revocations.
func (db *DB) Revoke(ctx context.Context, r store.Revocation) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error { return db.revokeTx(ctx, tx, r) })
}

func (db *DB) revokeTx(ctx context.Context, tx *sql.Tx, r store.Revocation) error {
	if _, err := tx.ExecContext(ctx, db.q("INSERT INTO revocations (kind, value, revoked_at, expires_at) VALUES (?, ?, ?, ?)"),
		r.Kind, r.Value, micros(r.RevokedAt), micros(r.ExpiresAt)); err != nil {
		return err
	}
	return db.recordChange(ctx, tx, "revocations", r.Kind)
}

// RevocationsAfter implements store.Revocations.
func (db *DB) RevocationsAfter(ctx context.Context, after int64, now time.Time) ([]store.Revocation, error) {
	rows, err := db.r.QueryContext(ctx, db.q("SELECT id, kind, value, revoked_at, expires_at FROM revocations WHERE id > ? AND expires_at > ? ORDER BY id"), after, micros(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var at, exp int64
		if err := rows.Scan(&r.ID, &r.Kind, &r.Value, &at, &exp); err != nil {
			return nil, err
		}
		r.RevokedAt, r.ExpiresAt = fromMicros(at), fromMicros(exp)
		out = append(out, r)
	}
	return out, rows.Err()
}

// PruneRevocations implements store.Revocations.
func (db *DB) PruneRevocations(ctx context.Context, now time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q("DELETE FROM revocations WHERE expires_at <= ?"), micros(now))
		return err
	})
}

// UseAssertion implements store.Assertions in one statement (no explicit
// transaction, a statement prepared once): insert the pair, or take over
// an expired row for it; a live row makes it change nothing.
func (db *DB) UseAssertion(ctx context.Context, clientID, jti string, expires, now time.Time) (bool, error) {
	db.assertOnce.Do(func() {
		db.assertStmt, db.assertErr = db.w.PrepareContext(context.Background(), db.q(`INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE assertion_jtis.expires_at <= ?`))
	})
	if db.assertErr != nil {
		return false, db.assertErr
	}
	res, err := db.assertStmt.ExecContext(ctx, clientID, jti, micros(expires), micros(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// PruneAssertions implements store.Assertions.
func (db *DB) PruneAssertions(ctx context.Context, now time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q("DELETE FROM assertion_jtis WHERE expires_at <= ?"), micros(now))
		return err
	})
}

// CreateInitialAccessToken implements store.InitialAccessTokens.
func (db *DB) CreateInitialAccessToken(ctx context.Context, hash []byte, expires time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q("INSERT INTO initial_access_tokens (hash, created_at, expires_at) VALUES (?, ?, ?)"), hash, micros(db.now()), micros(expires))
		return err
	})
}

// CheckInitialAccessToken implements store.InitialAccessTokens.
func (db *DB) CheckInitialAccessToken(ctx context.Context, hash []byte, now time.Time) (bool, error) {
	var n int
	err := db.r.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM initial_access_tokens WHERE hash = ? AND expires_at > ?"), hash, micros(now)).Scan(&n)
	return n > 0, err
}
