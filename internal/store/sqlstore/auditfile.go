package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"

	"smartgate/internal/config"
)

// auditFileSchema is the audit file's one table, as 0001_init.sql and
// 0008_settings.sql made it in the main file up to schema 13.
const auditFileSchema = `
CREATE TABLE IF NOT EXISTS audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    actor      TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    patient    TEXT NOT NULL,
    action     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at);
CREATE INDEX IF NOT EXISTS audit_events_actor ON audit_events (actor, at);
CREATE INDEX IF NOT EXISTS audit_events_client ON audit_events (client_id, at);
CREATE INDEX IF NOT EXISTS audit_events_patient ON audit_events (patient, at);
CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events (action, at);
`

// auditMovedVersion is the schema version whose migration drops the main
// file's audit_events (SQLite), once moveAudit has copied its rows.
const auditMovedVersion = 14

// AuditFile is the SQLite file that holds the audit trail of the SQLite
// database at path: smartgate.db's is smartgate-audit.db, beside it.
func AuditFile(path string) string {
	ext := filepath.Ext(path)
	if ext == "" {
		return path + "-audit.db"
	}
	return strings.TrimSuffix(path, ext) + "-audit" + ext
}

// auditFile is the audit file of the SQLite store db.
func (db *DB) auditFile() string { return AuditFile(config.SQLitePath(db.dsn)) }

// openAudit opens (and creates) the audit file with the main file's
// pragmas: WAL, so that the admin console reads the trail while the audit
// writer appends to it.
func openAudit(ctx context.Context, path, pragmas string) (*sql.DB, error) {
	createOwnerOnly(path)
	a, err := sql.Open("sqlite", "file:"+escapePath(path)+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	a.SetMaxOpenConns(4)
	a.SetMaxIdleConns(2)
	if _, err := a.ExecContext(ctx, auditFileSchema); err != nil {
		a.Close()
		return nil, fmt.Errorf("the audit file %s: %w", path, err)
	}
	return a, nil
}

// moveAudit copies the audit events that a smartgate before schema 14
// kept in the main file into the audit file, with their ids, so that the
// migration to schema 14 can drop them from the main file. It runs when
// the store opens, before anything appends to the audit file (whose ids
// then continue after the copied ones), and again right before that
// migration; a copy interrupted, or run twice, copies each event once
// (INSERT OR IGNORE by id). Nothing to do when the main file has no
// audit_events: a new database, or one migrated to schema 14.
func (db *DB) moveAudit(ctx context.Context) error {
	var n int
	if err := db.w.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'").Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	// A pool of its own: the main file stays attached to none of a's
	// connections, whatever fails here.
	c, err := sql.Open("sqlite", "file:"+escapePath(db.auditFile())+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	if _, err := c.ExecContext(ctx, "ATTACH DATABASE ? AS old", config.SQLitePath(db.dsn)); err != nil {
		return fmt.Errorf("moving the audit trail to its own file: %w", err)
	}
	// Another process may migrate the main file meanwhile and drop the
	// table: look for it again in the transaction that copies it, which
	// reads one snapshot of the main file.
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM old.sqlite_master WHERE type = 'table' AND name = 'audit_events'").Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	const cols = "id, at, request_id, actor, client_id, patient, action, outcome, detail"
	if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO main.audit_events ("+cols+") SELECT "+cols+" FROM old.audit_events ORDER BY id"); err != nil {
		return fmt.Errorf("moving the audit trail to its own file: %w", err)
	}
	return tx.Commit()
}
