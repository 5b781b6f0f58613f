package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"smartgate/internal/store"
)

const clientColumns = "id, type, status, verified, metadata, secret_hash, secret_expires_at, registration_token_hash, introspect_any, may_launch, admin, pkce_exempt, require_par, created_by, created_at, updated_at"

type rowScanner interface{ Scan(dest ...any) error }

func scanClient(r rowScanner) (store.Client, error) {
	var c store.Client
	var meta string
	var secretExp, created, updated int64
	if err := r.Scan(&c.ID, &c.Type, &c.Status, &c.Verified, &meta, &c.SecretHash, &secretExp, &c.RegistrationTokenHash,
		&c.IntrospectAny, &c.MayLaunch, &c.Admin, &c.PKCEExempt, &c.RequirePAR, &c.CreatedBy, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, store.ErrNotFound
		}
		return c, err
	}
	if err := json.Unmarshal([]byte(meta), &c.Metadata); err != nil {
		return c, err
	}
	c.SecretExpiresAt = optTime(secretExp)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, nil
}

func clientArgs(c store.Client) ([]any, error) {
	meta, err := json.Marshal(c.Metadata)
	if err != nil {
		return nil, err
	}
	return []any{c.ID, c.Type, c.Status, c.Verified, string(meta), c.SecretHash, optMicros(c.SecretExpiresAt), c.RegistrationTokenHash,
		c.IntrospectAny, c.MayLaunch, c.Admin, c.PKCEExempt, c.RequirePAR, c.CreatedBy, micros(c.CreatedAt), micros(c.UpdatedAt)}, nil
}

// CreateClient implements store.Clients.
func (db *DB) CreateClient(ctx context.Context, c store.Client) error {
	args, err := clientArgs(c)
	if err != nil {
		return err
	}
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM clients WHERE id = ?"), c.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrConflict
		}
		if _, err := tx.ExecContext(ctx, db.q("INSERT INTO clients ("+clientColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), args...); err != nil {
			if isUniqueViolation(err) {
				// Another node inserted the same id after the check (two
				// nodes starting at once both make smartgate-cli).
				return store.ErrConflict
			}
			return err
		}
		return db.recordChange(ctx, tx, "clients", c.ID)
	})
}

// GetClient implements store.Clients.
func (db *DB) GetClient(ctx context.Context, id string) (store.Client, error) {
	return scanClient(db.r.QueryRowContext(ctx, db.q("SELECT "+clientColumns+" FROM clients WHERE id = ?"), id))
}

// ListClients implements store.Clients.
func (db *DB) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT "+clientColumns+" FROM clients ORDER BY created_at, id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UpdateClient implements store.Clients.
func (db *DB) UpdateClient(ctx context.Context, id string, fn func(*store.Client) error) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		c, err := scanClient(tx.QueryRowContext(ctx, db.q("SELECT "+clientColumns+" FROM clients WHERE id = ?"), id))
		if err != nil {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		c.ID = id
		args, err := clientArgs(c)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, db.q(`UPDATE clients SET type = ?, status = ?, verified = ?, metadata = ?, secret_hash = ?, secret_expires_at = ?,
			registration_token_hash = ?, introspect_any = ?, may_launch = ?, admin = ?, pkce_exempt = ?, require_par = ?, created_by = ?, created_at = ?, updated_at = ? WHERE id = ?`),
			append(args[1:], id)...)
		if err != nil {
			return err
		}
		return db.recordChange(ctx, tx, "clients", id)
	})
}

// DeleteClient implements store.Clients. The client's grants, refresh
// tokens and consents go with it.
func (db *DB) DeleteClient(ctx context.Context, id string) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q("DELETE FROM clients WHERE id = ?"), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		for _, q := range []string{
			"DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?)",
			"DELETE FROM grants WHERE client_id = ?",
			"DELETE FROM consents WHERE client_id = ?",
		} {
			if _, err := tx.ExecContext(ctx, db.q(q), id); err != nil {
				return err
			}
		}
		return db.recordChange(ctx, tx, "clients", id)
	})
}

// ForgetConsents implements store.Clients.
func (db *DB) ForgetConsents(ctx context.Context, clientID string) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q("DELETE FROM consents WHERE client_id = ?"), clientID)
		return err
	})
}

// optMicros stores the zero time as 0.
func optMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

func optTime(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return fromMicros(v)
}
