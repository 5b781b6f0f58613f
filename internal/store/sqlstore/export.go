package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"smartgate/internal/store"
)

const exportJobColumns = "id, client_id, status, request, params, transaction_time, progress, error, owner, lease_until, created_at, updated_at, expires_at"

func scanExportJob(r rowScanner) (store.ExportJob, error) {
	var j store.ExportJob
	var params string
	var tt, lease, created, updated, expires int64
	err := r.Scan(&j.ID, &j.ClientID, &j.Status, &j.Request, &params, &tt, &j.Progress, &j.Error, &j.Owner, &lease, &created, &updated, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return j, store.ErrNotFound
	}
	j.Params = []byte(params)
	j.TransactionTime, j.LeaseUntil, j.CreatedAt, j.UpdatedAt, j.ExpiresAt = optTime(tt), optTime(lease), fromMicros(created), fromMicros(updated), fromMicros(expires)
	return j, err
}

func exportJobArgs(j store.ExportJob) []any {
	params := string(j.Params)
	if params == "" {
		params = "{}"
	}
	return []any{j.ID, j.ClientID, j.Status, j.Request, params, optMicros(j.TransactionTime), j.Progress, j.Error, j.Owner,
		optMicros(j.LeaseUntil), micros(j.CreatedAt), micros(j.UpdatedAt), micros(j.ExpiresAt)}
}

// CreateExportJob implements store.Exports.
func (db *DB) CreateExportJob(ctx context.Context, j store.ExportJob) error {
	_, err := db.w.ExecContext(ctx, db.q("INSERT INTO export_jobs ("+exportJobColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), exportJobArgs(j)...)
	if err != nil && isUniqueViolation(err) {
		return store.ErrConflict
	}
	return err
}

// GetExportJob implements store.Exports.
func (db *DB) GetExportJob(ctx context.Context, id string) (store.ExportJob, error) {
	return scanExportJob(db.r.QueryRowContext(ctx, db.q("SELECT "+exportJobColumns+" FROM export_jobs WHERE id = ?"), id))
}

// ClaimExportJob implements store.Exports. The job is picked and taken in
// one write transaction (SQLite: the database's write lock; PostgreSQL:
// FOR UPDATE SKIP LOCKED), so two nodes never take the same job.
func (db *DB) ClaimExportJob(ctx context.Context, owner string, now, leaseUntil time.Time) (store.ExportJob, error) {
	var out store.ExportJob
	restarted := false
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		lock := ""
		if db.postgres {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		j, err := scanExportJob(tx.QueryRowContext(ctx, db.q("SELECT "+exportJobColumns+" FROM export_jobs WHERE status = ? OR (status = ? AND lease_until < ?) ORDER BY created_at, id LIMIT 1"+lock),
			store.ExportAccepted, store.ExportRunning, micros(now)))
		if err != nil {
			return err
		}
		if j.Status == store.ExportRunning {
			// The node that ran it stopped renewing its lease: start over.
			if _, err := tx.ExecContext(ctx, db.q("DELETE FROM export_chunks WHERE job_id = ?"), j.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.q("DELETE FROM export_files WHERE job_id = ?"), j.ID); err != nil {
				return err
			}
			restarted = true
		}
		j.Status, j.Owner, j.LeaseUntil, j.UpdatedAt, j.Progress = store.ExportRunning, owner, leaseUntil.UTC(), now.UTC(), ""
		if _, err := tx.ExecContext(ctx, db.q("UPDATE export_jobs SET status = ?, owner = ?, lease_until = ?, updated_at = ?, progress = ? WHERE id = ?"),
			j.Status, j.Owner, micros(j.LeaseUntil), micros(j.UpdatedAt), j.Progress, j.ID); err != nil {
			return err
		}
		out = j
		return nil
	})
	if err == nil && restarted {
		// The files of the run that stopped (chunk 0 of each file starts
		// it anew anyway; this drops files the new run may not write).
		err = db.removeJobFiles(out.ID)
	}
	return out, err
}

// UpdateExportJob implements store.Exports.
func (db *DB) UpdateExportJob(ctx context.Context, id, owner string, fn func(j *store.ExportJob)) error {
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		lock := ""
		if db.postgres {
			lock = " FOR UPDATE"
		}
		j, err := scanExportJob(tx.QueryRowContext(ctx, db.q("SELECT "+exportJobColumns+" FROM export_jobs WHERE id = ?"+lock), id))
		if err != nil {
			return err
		}
		if j.Owner != owner || j.Status != store.ExportRunning {
			return store.ErrNotFound
		}
		fn(&j)
		j.ID, j.Owner = id, owner
		args := exportJobArgs(j)
		_, err = tx.ExecContext(ctx, db.q("UPDATE export_jobs SET status = ?, progress = ?, error = ?, lease_until = ?, updated_at = ?, expires_at = ?, transaction_time = ? WHERE id = ?"),
			j.Status, j.Progress, j.Error, args[9], micros(j.UpdatedAt), micros(j.ExpiresAt), args[5], id)
		return err
	})
}

// owns checks that owner runs the job: inside the write transaction that
// depends on it, or (a chunk written to a file) on a reader.
func (db *DB) owns(ctx context.Context, qr querier, jobID, owner string) error {
	var got, status string
	err := qr.QueryRowContext(ctx, db.q("SELECT owner, status FROM export_jobs WHERE id = ?"), jobID).Scan(&got, &status)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (got != owner || status != store.ExportRunning)) {
		return store.ErrNotFound
	}
	return err
}

// PutExportChunk implements store.Exports.
func (db *DB) PutExportChunk(ctx context.Context, jobID, owner string, seq, n int, data []byte) error {
	if db.exportDir != "" {
		return db.putExportChunkFile(ctx, jobID, owner, seq, n, data)
	}
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		if err := db.owns(ctx, tx, jobID, owner); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q("INSERT INTO export_chunks (job_id, seq, n, data) VALUES (?, ?, ?, ?)"), jobID, seq, n, data)
		return err
	})
}

// AddExportFile implements store.Exports.
func (db *DB) AddExportFile(ctx context.Context, owner string, f store.ExportFile) error {
	if db.exportDir != "" {
		if err := db.syncExportFile(f.JobID, f.Seq); err != nil {
			return err
		}
	}
	return db.tx(ctx, 0, func(tx *sql.Tx) error {
		if err := db.owns(ctx, tx, f.JobID, owner); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q("INSERT INTO export_files (job_id, seq, type, count, bytes) VALUES (?, ?, ?, ?, ?)"), f.JobID, f.Seq, f.Type, f.Count, f.Bytes)
		return err
	})
}

// ListExportFiles implements store.Exports.
func (db *DB) ListExportFiles(ctx context.Context, jobID string) ([]store.ExportFile, error) {
	rows, err := db.r.QueryContext(ctx, db.q("SELECT seq, type, count, bytes FROM export_files WHERE job_id = ? ORDER BY seq"), jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ExportFile
	for rows.Next() {
		f := store.ExportFile{JobID: jobID}
		if err := rows.Scan(&f.Seq, &f.Type, &f.Count, &f.Bytes); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// ReadExportFile implements store.Exports: one chunk per query, so that a
// slow client never holds a database connection (or SQLite's read
// snapshot) for the whole download.
func (db *DB) ReadExportFile(ctx context.Context, jobID string, seq int, fn func(chunk []byte) error) error {
	var exists int
	err := db.r.QueryRowContext(ctx, db.q("SELECT 1 FROM export_files WHERE job_id = ? AND seq = ?"), jobID, seq).Scan(&exists)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if db.exportDir != "" {
		if ok, err := db.readExportFileFrom(ctx, jobID, seq, fn); ok || err != nil {
			return err
		}
	}
	for n := 0; ; n++ {
		var data []byte
		err := db.r.QueryRowContext(ctx, db.q("SELECT data FROM export_chunks WHERE job_id = ? AND seq = ? AND n = ?"), jobID, seq, n).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(data); err != nil {
			return err
		}
	}
}

// CountActiveExports implements store.Exports.
func (db *DB) CountActiveExports(ctx context.Context, clientID string) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, db.q("SELECT COUNT(*) FROM export_jobs WHERE client_id = ? AND status IN (?, ?)"), clientID, store.ExportAccepted, store.ExportRunning).Scan(&n)
	return n, err
}

// DeleteExportJob implements store.Exports.
func (db *DB) DeleteExportJob(ctx context.Context, id string) error {
	err := db.tx(ctx, 0, func(tx *sql.Tx) error {
		// Chunks and files go first explicitly: not every connection may
		// have foreign keys (and so ON DELETE CASCADE) on.
		for _, q := range []string{"DELETE FROM export_chunks WHERE job_id = ?", "DELETE FROM export_files WHERE job_id = ?"} {
			if _, err := tx.ExecContext(ctx, db.q(q), id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, db.q("DELETE FROM export_jobs WHERE id = ?"), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err == nil || errors.Is(err, store.ErrNotFound) {
		// After the rows: a download that finds the job gone answers
		// 404, never a file cut short.
		if rmErr := db.removeJobFiles(id); rmErr != nil {
			return rmErr
		}
	}
	return err
}

// PruneExports implements store.Exports.
func (db *DB) PruneExports(ctx context.Context, now time.Time) (int, error) {
	rows, err := db.r.QueryContext(ctx, db.q("SELECT id FROM export_jobs WHERE expires_at < ?"), micros(now))
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		switch err := db.DeleteExportJob(ctx, id); {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound):
			return n, err
		}
	}
	return n, db.sweepExportDirs(ctx)
}
