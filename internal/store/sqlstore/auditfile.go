package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"smartgate/internal/config"
)

// auditFileSchema is the audit file's table, as 0001_init.sql and
// 0008_settings.sql made it in the main file up to schema 13, except for
// the indexes by patient and by actor: the tables audit_patient and
// audit_actor hold them, written in bulk (indexAuditBulk), with
// audit_indexed_upto the last event id they cover. An event that names a
// patient put its entry of an index on (patient, at) on a random page,
// which SQLite wrote whole into the WAL at every commit: on a trail of a
// million events that cost the writer more than the rest of the event
// (docs/performance.md, "What a long trail costs"), and the actor of a
// patient-facing app's event (its user) is as random. Written every
// auditBulkEvery, sorted, the entries share their pages.
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
CREATE INDEX IF NOT EXISTS audit_events_client ON audit_events (client_id, at);
CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events (action, at);
CREATE TABLE IF NOT EXISTS audit_patient (
    patient TEXT NOT NULL,
    at      INTEGER NOT NULL,
    id      INTEGER NOT NULL,
    PRIMARY KEY (patient, at, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_actor (
    actor TEXT NOT NULL,
    at    INTEGER NOT NULL,
    id    INTEGER NOT NULL,
    PRIMARY KEY (actor, at, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_indexed_upto (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    id  INTEGER NOT NULL
);
INSERT OR IGNORE INTO audit_indexed_upto (one, id) VALUES (1, 0);
`

// auditBulk are the columns of audit_events indexed in bulk, each in the
// table audit_<column> (column, at, id).
var auditBulk = []string{"patient", "actor"}

// auditBulkEvery is how often the audit writer brings the bulk indexes up
// to date (indexAuditBulk, after its next batch, in a transaction of its
// own). The events after the mark are found by their ids (ListAudit).
const auditBulkEvery = 5 * time.Second

// indexAuditBulk adds the entries of every event after audit_indexed_upto
// to the bulk indexes, sorted, and moves the mark to the last event. Run
// again over the same events it adds nothing twice.
func indexAuditBulk(ctx context.Context, tx *sql.Tx) error {
	if err := fillAuditBulk(ctx, tx, "", "audit_events", "id > (SELECT id FROM audit_indexed_upto)"); err != nil {
		return err
	}
	return markAuditIndexed(ctx, tx)
}

// fillAuditBulk adds to the bulk tables of the database schema ("" or
// "main.") the entries of the events in src (audit_events, or an attached
// file's) that match cond ("" for all), sorted: each table's pages are
// written once for many entries, and an entry already there is kept.
func fillAuditBulk(ctx context.Context, tx *sql.Tx, schema, src, cond string) error {
	for _, col := range auditBulk {
		where := col + " != ''"
		if cond != "" {
			where = cond + " AND " + where
		}
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO "+schema+"audit_"+col+" ("+col+", at, id) SELECT "+col+", at, id FROM "+src+
			" WHERE "+where+" ORDER BY "+col+", at, id"); err != nil {
			return fmt.Errorf("indexing the audit trail by %s: %w", col, err)
		}
	}
	return nil
}

// markAuditIndexed moves audit_indexed_upto to the last event.
func markAuditIndexed(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, "UPDATE audit_indexed_upto SET id = (SELECT coalesce(max(id), 0) FROM audit_events)"); err != nil {
		return fmt.Errorf("indexing the audit trail: %w", err)
	}
	return nil
}

// dropAuditIndexes moves an audit file made before the bulk indexes (its
// events indexed by audit_events_patient and audit_events_actor) to them:
// every event's entries into every bulk table, then the old indexes
// dropped, in one transaction. Nothing to do when they are gone, which a
// read finds without taking the file's write lock (every open of the
// store, a CLI command's too, comes here). A few seconds for a million
// events, once. (A file made by the first version of the bulk index by
// patient, with audit_patient_upto, has the index by actor still: its
// patients are filled again, which adds those after its old mark, and the
// old mark goes.)
func dropAuditIndexes(ctx context.Context, a *sql.DB) error {
	old := func(q querier) ([]string, error) {
		var names []string
		for _, col := range auditBulk {
			var n int
			if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'audit_events_"+col+"'").Scan(&n); err != nil {
				return nil, err
			}
			if n > 0 {
				names = append(names, "audit_events_"+col)
			}
		}
		return names, nil
	}
	if names, err := old(a); err != nil || len(names) == 0 {
		return err
	}
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	names, err := old(tx) // again: another process may have moved it meanwhile
	if err != nil || len(names) == 0 {
		return err
	}
	if err := fillAuditBulk(ctx, tx, "", "audit_events", ""); err != nil {
		return err
	}
	for _, name := range names {
		if _, err := tx.ExecContext(ctx, "DROP INDEX "+name); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS audit_patient_upto"); err != nil {
		return err
	}
	if err := markAuditIndexed(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

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
	if err := dropAuditIndexes(ctx, a); err != nil {
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
	// Their entries in the bulk indexes too, whatever audit_indexed_upto
	// says: the ids come from the main file.
	if err := fillAuditBulk(ctx, tx, "main.", "old.audit_events", ""); err != nil {
		return fmt.Errorf("moving the audit trail to its own file: %w", err)
	}
	return tx.Commit()
}
