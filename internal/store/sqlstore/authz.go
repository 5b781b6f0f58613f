package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"smartgate/internal/store"
)

const authCodeColumns = "hash, client_id, redirect_uri, code_challenge, nonce, scope, subject, session_id, auth_time, context, grant_id, created_at, expires_at, used_at"

// CreateAuthCode implements store.Authz.
func (db *DB) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	ctxJSON := string(c.Context)
	if ctxJSON == "" {
		ctxJSON = "{}"
	}
	_, err := db.w.ExecContext(ctx, db.q("INSERT INTO auth_codes ("+authCodeColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"),
		c.Hash, c.ClientID, c.RedirectURI, c.CodeChallenge, c.Nonce, c.Scope, c.Subject, c.SessionID, optMicros(c.AuthTime), ctxJSON, c.GrantID,
		micros(c.CreatedAt), micros(c.ExpiresAt))
	return err
}

func scanAuthCode(r rowScanner) (store.AuthCode, error) {
	var c store.AuthCode
	var ctxJSON string
	var auth, created, expires, used int64
	err := r.Scan(&c.Hash, &c.ClientID, &c.RedirectURI, &c.CodeChallenge, &c.Nonce, &c.Scope, &c.Subject, &c.SessionID, &auth, &ctxJSON, &c.GrantID, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return c, store.ErrNotFound
	}
	c.Context = []byte(ctxJSON)
	c.AuthTime, c.CreatedAt, c.ExpiresAt, c.UsedAt = optTime(auth), fromMicros(created), fromMicros(expires), optTime(used)
	return c, err
}

// UseAuthCode implements store.Authz: the code is marked used in the same
// statement that finds it unused, so of two concurrent uses one wins.
func (db *DB) UseAuthCode(ctx context.Context, hash []byte, now time.Time) (store.AuthCode, error) {
	var out store.AuthCode
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		lock := ""
		if db.postgres {
			lock = " FOR UPDATE"
		}
		c, err := scanAuthCode(tx.QueryRowContext(ctx, db.q("SELECT "+authCodeColumns+" FROM auth_codes WHERE hash = ?"+lock), hash))
		if err != nil {
			return err
		}
		out = c
		switch {
		case !c.UsedAt.IsZero():
			return store.ErrAlreadyUsed
		case !now.Before(c.ExpiresAt):
			return store.ErrExpired
		}
		out.UsedAt = now
		_, err = tx.ExecContext(ctx, db.q("UPDATE auth_codes SET used_at = ? WHERE hash = ? AND used_at = 0"), micros(now), hash)
		return err
	})
	if errors.Is(err, store.ErrAlreadyUsed) || errors.Is(err, store.ErrExpired) {
		return out, err
	}
	return out, err
}

// SetAuthCodeGrant implements store.Authz.
func (db *DB) SetAuthCodeGrant(ctx context.Context, hash []byte, grantID string) error {
	_, err := db.w.ExecContext(ctx, db.q("UPDATE auth_codes SET grant_id = ? WHERE hash = ?"), grantID, hash)
	return err
}

// CreatePushedRequest implements store.Authz.
func (db *DB) CreatePushedRequest(ctx context.Context, p store.PushedRequest) error {
	_, err := db.w.ExecContext(ctx, db.q("INSERT INTO pushed_requests (hash, client_id, params, expires_at) VALUES (?, ?, ?, ?)"),
		p.Hash, p.ClientID, string(p.Params), micros(p.ExpiresAt))
	return err
}

// TakePushedRequest implements store.Authz.
func (db *DB) TakePushedRequest(ctx context.Context, hash []byte, now time.Time) (store.PushedRequest, error) {
	var p store.PushedRequest
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		var params string
		var expires int64
		err := tx.QueryRowContext(ctx, db.q("DELETE FROM pushed_requests WHERE hash = ? RETURNING hash, client_id, params, expires_at"), hash).
			Scan(&p.Hash, &p.ClientID, &params, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		p.Params, p.ExpiresAt = []byte(params), fromMicros(expires)
		return nil
	})
	if err == nil && !now.Before(p.ExpiresAt) {
		return p, store.ErrExpired
	}
	return p, err
}

// CreateLaunch implements store.Authz.
func (db *DB) CreateLaunch(ctx context.Context, l store.Launch) error {
	ctxJSON := string(l.Context)
	if ctxJSON == "" {
		ctxJSON = "{}"
	}
	_, err := db.w.ExecContext(ctx, db.q("INSERT INTO launches (hash, client_id, context, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)"),
		l.Hash, l.ClientID, ctxJSON, l.CreatedBy, micros(l.CreatedAt), micros(l.ExpiresAt))
	return err
}

// TakeLaunch implements store.Authz.
func (db *DB) TakeLaunch(ctx context.Context, hash []byte, clientID string, now time.Time) (store.Launch, error) {
	var l store.Launch
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		var ctxJSON string
		var created, expires int64
		err := tx.QueryRowContext(ctx, db.q("DELETE FROM launches WHERE hash = ? AND client_id = ? RETURNING hash, client_id, context, created_by, created_at, expires_at"), hash, clientID).
			Scan(&l.Hash, &l.ClientID, &ctxJSON, &l.CreatedBy, &created, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			// Another app presenting the launch does not use it up.
			var other string
			if err := tx.QueryRowContext(ctx, db.q("SELECT client_id FROM launches WHERE hash = ?"), hash).Scan(&other); err == nil {
				l.ClientID = other
				return store.ErrAccessDenied
			}
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		l.Context, l.CreatedAt, l.ExpiresAt = []byte(ctxJSON), fromMicros(created), fromMicros(expires)
		return nil
	})
	if err == nil && !now.Before(l.ExpiresAt) {
		return l, store.ErrExpired
	}
	return l, err
}

// GetConsent implements store.Authz.
func (db *DB) GetConsent(ctx context.Context, clientID, subject string) (store.Consent, error) {
	c := store.Consent{ClientID: clientID, Subject: subject}
	var created int64
	err := db.r.QueryRowContext(ctx, db.q("SELECT scope, created_at FROM consents WHERE client_id = ? AND subject = ?"), clientID, subject).Scan(&c.Scope, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return c, store.ErrNotFound
	}
	c.CreatedAt = fromMicros(created)
	return c, err
}

// PutConsent implements store.Authz.
func (db *DB) PutConsent(ctx context.Context, c store.Consent) error {
	_, err := db.w.ExecContext(ctx, db.q("INSERT INTO consents (client_id, subject, scope, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (client_id, subject) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at"),
		c.ClientID, c.Subject, c.Scope, micros(c.CreatedAt))
	return err
}

// DeleteConsent implements store.Authz.
func (db *DB) DeleteConsent(ctx context.Context, clientID, subject string) error {
	_, err := db.w.ExecContext(ctx, db.q("DELETE FROM consents WHERE client_id = ? AND subject = ?"), clientID, subject)
	return err
}

// PruneAuthz implements store.Authz. Used codes are kept until they
// expire, so that a replay within their lifetime is recognised.
func (db *DB) PruneAuthz(ctx context.Context, before time.Time) error {
	for _, table := range []string{"auth_codes", "pushed_requests", "launches"} {
		if _, err := db.w.ExecContext(ctx, db.q("DELETE FROM "+table+" WHERE expires_at < ?"), micros(before)); err != nil {
			return err
		}
	}
	return nil
}
