package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/jackc/pgx/v5"

	"smartgate/internal/store"
)

// notifyChannel is the PostgreSQL LISTEN/NOTIFY channel of the change sequence.
const notifyChannel = "smartgate_changes"

// recordChange appends a change inside tx. Incrementing the single counter
// row takes its row lock until commit, so concurrent writers get sequence
// numbers in commit order: a reader that saw seq N never later finds a
// smaller one it missed.
func (db *DB) recordChange(ctx context.Context, tx *sql.Tx, topic, key string) error {
	if db.postgres {
		// One round trip: take the next number, append the change and
		// notify listeners (delivered at commit).
		_, err := tx.ExecContext(ctx, `WITH c AS (UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq),
			i AS (INSERT INTO changes (seq, topic, key, at) SELECT seq, $1, $2, $3 FROM c RETURNING seq)
			SELECT pg_notify('`+notifyChannel+`', $1) FROM i`, topic, key, micros(db.now()))
		return err
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, "UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq").Scan(&seq); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO changes (seq, topic, key, at) VALUES (?, ?, ?, ?)", seq, topic, key, micros(db.now()))
	return err
}

// RecordChange implements store.Changes.
func (db *DB) RecordChange(ctx context.Context, topic, key string) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error { return db.recordChange(ctx, tx, topic, key) })
}

// ChangesSince implements store.Changes.
func (db *DB) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.r.QueryContext(ctx, db.q("SELECT seq, topic, key, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?"), after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var c store.Change
		var at int64
		if err := rows.Scan(&c.Seq, &c.Topic, &c.Key, &at); err != nil {
			return nil, err
		}
		c.At = fromMicros(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// LatestChange implements store.Changes.
func (db *DB) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	err := db.r.QueryRowContext(ctx, "SELECT seq FROM change_counter WHERE id = 1").Scan(&seq)
	return seq, err
}

// PruneChanges implements store.Changes.
func (db *DB) PruneChanges(ctx context.Context, before time.Time) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q("DELETE FROM changes WHERE at < ? AND seq < (SELECT seq FROM change_counter WHERE id = 1)"), micros(before))
		return err
	})
}

// Notifications implements store.Changes. On PostgreSQL a dedicated
// connection LISTENs and reconnects with backoff; the channel is closed when
// ctx ends. SQLite has no push: nil.
func (db *DB) Notifications(ctx context.Context) <-chan struct{} {
	if !db.postgres {
		return nil
	}
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			if err := db.listen(ctx, ch); err != nil && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
		}
	}()
	return ch
}

func (db *DB) listen(ctx context.Context, ch chan<- struct{}) error {
	conn, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	// Wake once after (re)connecting: changes may have committed while we
	// were not listening.
	wake(ch)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake(ch)
	}
}

func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
