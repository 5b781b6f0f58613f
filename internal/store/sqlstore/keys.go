package sqlstore

import (
	"context"
	"database/sql"

	"smartgate/internal/store"
)

// ListSigningKeys implements store.SigningKeys.
func (db *DB) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	return listKeys(ctx, db.r)
}

func listKeys(ctx context.Context, q querier) ([]store.SigningKey, error) {
	rows, err := q.QueryContext(ctx, "SELECT kid, alg, public_jwk, private_enc, kek_id, created_at, active_at FROM signing_keys ORDER BY created_at, kid")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var pub string
		var created, active int64
		if err := rows.Scan(&k.KID, &k.Alg, &pub, &k.PrivateEnc, &k.KEKID, &created, &active); err != nil {
			return nil, err
		}
		k.PublicJWK = []byte(pub)
		k.CreatedAt, k.ActiveAt = fromMicros(created), fromMicros(active)
		out = append(out, k)
	}
	return out, rows.Err()
}

// UpdateSigningKeys implements store.SigningKeys.
func (db *DB) UpdateSigningKeys(ctx context.Context, fn func([]store.SigningKey) ([]store.SigningKey, error)) error {
	return db.tx(ctx, lockKeys, func(tx *sql.Tx) error {
		existing, err := listKeys(ctx, tx)
		if err != nil {
			return err
		}
		upserts, err := fn(existing)
		if err != nil || len(upserts) == 0 {
			return err
		}
		for _, k := range upserts {
			_, err := tx.ExecContext(ctx, db.q(`INSERT INTO signing_keys (kid, alg, public_jwk, private_enc, kek_id, created_at, active_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (kid) DO UPDATE SET alg = excluded.alg, public_jwk = excluded.public_jwk,
					private_enc = excluded.private_enc, kek_id = excluded.kek_id, active_at = excluded.active_at`),
				k.KID, k.Alg, string(k.PublicJWK), k.PrivateEnc, k.KEKID, micros(k.CreatedAt), micros(k.ActiveAt))
			if err != nil {
				return err
			}
		}
		return db.recordChange(ctx, tx, "keys", "")
	})
}
