package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"smartgate/internal/store"
)

const userColumns = "id, username, role, fhir_user, status, password_hash, totp_secret_enc, totp_kek_id, totp_enabled, totp_last_step, created_at, updated_at, last_login_at"

// usernameKey is the case-insensitive form the store indexes usernames by.
func usernameKey(username string) string { return strings.ToLower(username) }

func scanUser(r rowScanner) (store.User, error) {
	var u store.User
	var created, updated, lastLogin int64
	if err := r.Scan(&u.ID, &u.Username, &u.Role, &u.FHIRUser, &u.Status, &u.PasswordHash, &u.TOTPSecretEnc, &u.TOTPKEKID,
		&u.TOTPEnabled, &u.TOTPLastStep, &created, &updated, &lastLogin); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, store.ErrNotFound
		}
		return u, err
	}
	if len(u.TOTPSecretEnc) == 0 {
		u.TOTPSecretEnc = nil
	}
	u.CreatedAt, u.UpdatedAt, u.LastLoginAt = fromMicros(created), fromMicros(updated), optTime(lastLogin)
	return u, nil
}

func (db *DB) scanUsers(rows *sql.Rows, err error) ([]store.User, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// forUpdate is the row-lock suffix of a SELECT inside a write transaction:
// PostgreSQL needs it; SQLite's write transactions already exclude each other.
func (db *DB) forUpdate() string {
	if db.postgres {
		return " FOR UPDATE"
	}
	return ""
}

// CreateUser implements store.Users.
func (db *DB) CreateUser(ctx context.Context, u store.User) error {
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM users WHERE id = ? OR username_key = ?"), u.ID, usernameKey(u.Username)).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrConflict
		}
		if _, err := tx.ExecContext(ctx, db.q("INSERT INTO users ("+userColumns+", username_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
			u.ID, u.Username, u.Role, u.FHIRUser, u.Status, u.PasswordHash, u.TOTPSecretEnc, u.TOTPKEKID, u.TOTPEnabled, u.TOTPLastStep,
			micros(u.CreatedAt), micros(u.UpdatedAt), optMicros(u.LastLoginAt), usernameKey(u.Username)); err != nil {
			return err
		}
		return db.recordChange(ctx, tx, "users", u.ID)
	})
	if err != nil && isUniqueViolation(err) {
		return store.ErrConflict // a concurrent create of the same username won
	}
	return err
}

// GetUser implements store.Users.
func (db *DB) GetUser(ctx context.Context, id string) (store.User, error) {
	return scanUser(db.r.QueryRowContext(ctx, db.q("SELECT "+userColumns+" FROM users WHERE id = ?"), id))
}

// GetUserByUsername implements store.Users.
func (db *DB) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	return scanUser(db.r.QueryRowContext(ctx, db.q("SELECT "+userColumns+" FROM users WHERE username_key = ?"), usernameKey(username)))
}

// ListUsers implements store.Users.
func (db *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	return db.scanUsers(db.r.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY username_key"))
}

// UpdateUser implements store.Users.
func (db *DB) UpdateUser(ctx context.Context, id string, fn func(*store.User) error) error {
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		u, err := scanUser(tx.QueryRowContext(ctx, db.q("SELECT "+userColumns+" FROM users WHERE id = ?"+db.forUpdate()), id))
		if err != nil {
			return err
		}
		if err := fn(&u); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM users WHERE username_key = ? AND id <> ?"), usernameKey(u.Username), id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrConflict
		}
		_, err = tx.ExecContext(ctx, db.q(`UPDATE users SET username = ?, username_key = ?, role = ?, fhir_user = ?, status = ?, password_hash = ?,
			totp_secret_enc = ?, totp_kek_id = ?, totp_enabled = ?, totp_last_step = ?, created_at = ?, updated_at = ?, last_login_at = ? WHERE id = ?`),
			u.Username, usernameKey(u.Username), u.Role, u.FHIRUser, u.Status, u.PasswordHash, u.TOTPSecretEnc, u.TOTPKEKID, u.TOTPEnabled,
			u.TOTPLastStep, micros(u.CreatedAt), micros(u.UpdatedAt), optMicros(u.LastLoginAt), id)
		if err != nil {
			return err
		}
		return db.recordChange(ctx, tx, "users", id)
	})
	if err != nil && isUniqueViolation(err) {
		return store.ErrConflict
	}
	return err
}

// LinkUser implements store.Users.
func (db *DB) LinkUser(ctx context.Context, l store.UserLink) error {
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM users WHERE id = ?"), l.UserID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if err := tx.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM user_links WHERE provider = ? AND subject = ?"), l.Provider, l.Subject).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrConflict
		}
		if _, err := tx.ExecContext(ctx, db.q("INSERT INTO user_links (provider, subject, user_id, created_at) VALUES (?, ?, ?, ?)"),
			l.Provider, l.Subject, l.UserID, micros(l.CreatedAt)); err != nil {
			return err
		}
		return db.recordChange(ctx, tx, "users", l.UserID)
	})
	if err != nil && isUniqueViolation(err) {
		return store.ErrConflict
	}
	return err
}

// UserByLink implements store.Users.
func (db *DB) UserByLink(ctx context.Context, provider, subject string) (store.User, error) {
	return scanUser(db.r.QueryRowContext(ctx, db.q("SELECT "+userColumns+" FROM users WHERE id = (SELECT user_id FROM user_links WHERE provider = ? AND subject = ?)"), provider, subject))
}

// ListUserLinks implements store.Users.
func (db *DB) ListUserLinks(ctx context.Context, userID string) ([]store.UserLink, error) {
	rows, err := db.r.QueryContext(ctx, db.q("SELECT user_id, provider, subject, created_at FROM user_links WHERE user_id = ? ORDER BY provider, subject"), userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.UserLink
	for rows.Next() {
		var l store.UserLink
		var created int64
		if err := rows.Scan(&l.UserID, &l.Provider, &l.Subject, &created); err != nil {
			return nil, err
		}
		l.CreatedAt = fromMicros(created)
		out = append(out, l)
	}
	return out, rows.Err()
}

// UnlinkUser implements store.Users.
func (db *DB) UnlinkUser(ctx context.Context, provider, subject string) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		var userID string
		err := tx.QueryRowContext(ctx, db.q("SELECT user_id FROM user_links WHERE provider = ? AND subject = ?"), provider, subject).Scan(&userID)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q("DELETE FROM user_links WHERE provider = ? AND subject = ?"), provider, subject); err != nil {
			return err
		}
		return db.recordChange(ctx, tx, "users", userID)
	})
}

const sessionColumns = "id_hash, user_id, auth_time, amr, created_at, expires_at, revoked_at"

func scanSession(r rowScanner) (store.LoginSession, error) {
	var s store.LoginSession
	var amr string
	var auth, created, expires, revoked int64
	if err := r.Scan(&s.IDHash, &s.UserID, &auth, &amr, &created, &expires, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return s, store.ErrNotFound
		}
		return s, err
	}
	s.AMR = strings.Fields(amr)
	s.AuthTime, s.CreatedAt, s.ExpiresAt, s.RevokedAt = fromMicros(auth), fromMicros(created), fromMicros(expires), optTime(revoked)
	return s, nil
}

// CreateLoginSession implements store.Users.
func (db *DB) CreateLoginSession(ctx context.Context, s store.LoginSession) error {
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q("INSERT INTO login_sessions ("+sessionColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)"),
			s.IDHash, s.UserID, micros(s.AuthTime), strings.Join(s.AMR, " "), micros(s.CreatedAt), micros(s.ExpiresAt), optMicros(s.RevokedAt))
		return err
	})
	if err != nil && isUniqueViolation(err) {
		return store.ErrConflict
	}
	return err
}

// GetLoginSession implements store.Users.
func (db *DB) GetLoginSession(ctx context.Context, idHash []byte) (store.LoginSession, error) {
	return scanSession(db.r.QueryRowContext(ctx, db.q("SELECT "+sessionColumns+" FROM login_sessions WHERE id_hash = ?"), idHash))
}

// RevokeLoginSession implements store.Users.
func (db *DB) RevokeLoginSession(ctx context.Context, idHash []byte, at time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM login_sessions WHERE id_hash = ?"), idHash).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		_, err := tx.ExecContext(ctx, db.q("UPDATE login_sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at = 0"), micros(at), idHash)
		return err
	})
}

// RevokeUserSessions implements store.Users.
func (db *DB) RevokeUserSessions(ctx context.Context, userID string, at time.Time) (int, error) {
	var n int64
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q("UPDATE login_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at = 0 AND expires_at > ?"), micros(at), userID, micros(at))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// PruneLoginSessions implements store.Users.
func (db *DB) PruneLoginSessions(ctx context.Context, before time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q("DELETE FROM login_sessions WHERE expires_at < ?"), micros(before))
		return err
	})
}

func scanThrottle(r rowScanner, key string) (store.Throttle, error) {
	t := store.Throttle{Key: key}
	var next, updated int64
	if err := r.Scan(&t.Failures, &next, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return t, nil
		}
		return t, err
	}
	t.NextAllowed, t.UpdatedAt = optTime(next), optTime(updated)
	return t, nil
}

// GetThrottle implements store.Users.
func (db *DB) GetThrottle(ctx context.Context, key string) (store.Throttle, error) {
	return scanThrottle(db.r.QueryRowContext(ctx, db.q("SELECT failures, next_allowed, updated_at FROM login_throttles WHERE key = ?"), key), key)
}

// UpdateThrottle implements store.Users. On PostgreSQL the row is created
// first (ON CONFLICT DO NOTHING waits for a concurrent insert of the same
// key to commit) and then locked with FOR UPDATE, so every update of a key
// sees the one before it. SQLite's write transactions are serial already.
func (db *DB) UpdateThrottle(ctx context.Context, key string, fn func(*store.Throttle) error) (store.Throttle, error) {
	var out store.Throttle
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		if db.postgres {
			if _, err := tx.ExecContext(ctx, "INSERT INTO login_throttles (key, failures, next_allowed, updated_at) VALUES ($1, 0, 0, 0) ON CONFLICT (key) DO NOTHING", key); err != nil {
				return err
			}
		}
		t, err := scanThrottle(tx.QueryRowContext(ctx, db.q("SELECT failures, next_allowed, updated_at FROM login_throttles WHERE key = ?"+db.forUpdate()), key), key)
		if err != nil {
			return err
		}
		if err := fn(&t); err != nil {
			return err
		}
		t.Key = key
		if t.Failures <= 0 && t.NextAllowed.IsZero() {
			_, err := tx.ExecContext(ctx, db.q("DELETE FROM login_throttles WHERE key = ?"), key)
			out = store.Throttle{Key: key}
			return err
		}
		_, err = tx.ExecContext(ctx, db.q(`INSERT INTO login_throttles (key, failures, next_allowed, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, next_allowed = excluded.next_allowed, updated_at = excluded.updated_at`),
			key, t.Failures, optMicros(t.NextAllowed), optMicros(t.UpdatedAt))
		out = t
		return err
	})
	return out, err
}

// PruneThrottles implements store.Users.
func (db *DB) PruneThrottles(ctx context.Context, before time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q("DELETE FROM login_throttles WHERE updated_at < ? AND next_allowed < ?"), micros(before), micros(before))
		return err
	})
}
