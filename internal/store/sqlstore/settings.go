package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"smartgate/internal/store"
)

// ListSettings implements store.Settings.
func (db *DB) ListSettings(ctx context.Context) ([]store.Setting, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT key, value, updated_at, updated_by FROM settings ORDER BY key")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Setting
	for rows.Next() {
		var s store.Setting
		var at int64
		if err := rows.Scan(&s.Key, &s.Value, &at, &s.UpdatedBy); err != nil {
			return nil, err
		}
		s.UpdatedAt = fromMicros(at)
		out = append(out, s)
	}
	return out, rows.Err()
}

// PutSetting implements store.Settings: an upsert and its change in one
// transaction.
func (db *DB) PutSetting(ctx context.Context, s store.Setting) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by`),
			s.Key, s.Value, micros(s.UpdatedAt), s.UpdatedBy); err != nil {
			return err
		}
		return db.recordChange(ctx, tx, "settings", s.Key)
	})
}

// DeleteSetting implements store.Settings.
func (db *DB) DeleteSetting(ctx context.Context, key string) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q("DELETE FROM settings WHERE key = ?"), key)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return db.recordChange(ctx, tx, "settings", key)
	})
}

// ListLoginSessions implements store.SessionLister.
func (db *DB) ListLoginSessions(ctx context.Context, userID string, now time.Time) ([]store.LoginSession, error) {
	rows, err := db.r.QueryContext(ctx, db.q("SELECT "+sessionColumns+" FROM login_sessions WHERE user_id = ? AND revoked_at = 0 AND expires_at > ? ORDER BY created_at DESC"),
		userID, micros(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.LoginSession
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
