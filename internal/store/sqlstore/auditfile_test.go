package sqlstore

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smartgate/internal/store"
)

func TestAuditFile(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/smartgate/smartgate.db": "/var/lib/smartgate/smartgate-audit.db",
		"/data/ehr.sqlite":                "/data/ehr-audit.sqlite",
		"/data/ehr":                       "/data/ehr-audit.db",
		"/data.d/ehr":                     "/data.d/ehr-audit.db",
	} {
		if got := AuditFile(in); got != want {
			t.Errorf("AuditFile(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMigration14MovesAuditTrail opens a database whose audit events a
// schema-13 smartgate kept in the main file: they are copied, with their
// ids, into the audit file when the store opens (again on a second open,
// once each), new events follow their ids, and the migration drops the main
// file's table.
func TestMigration14MovesAuditTrail(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "smartgate.db")
	at := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	old := atSchema(t, dsn, 13, func(db *DB, tx *sql.Tx) error {
		for _, id := range []int{5, 6, 9} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_events (id, at, request_id, actor, client_id, patient, action, outcome, detail)
				VALUES (?, ?, 'req', 'user:alice', 'app', 'p1', 'fhir.read', 'success', '{}')`, id, micros(at.Add(time.Duration(id)*time.Second))); err != nil {
				return err
			}
		}
		return nil
	})
	old.Close()

	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := func() []int64 {
		t.Helper()
		evs, err := db.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.ID)
		}
		slices.Sort(out)
		return out
	}
	if got := ids(); !slices.Equal(got, []int64{5, 6, 9}) {
		t.Fatalf("audit events after open = %v, want the schema-13 ones 5, 6, 9", got)
	}
	if err := db.AppendAudit(ctx, []store.AuditEvent{{Time: at.Add(time.Minute), Actor: "cli", Action: "client.create", Outcome: "success", Detail: "{}"}}); err != nil {
		t.Fatal(err)
	}
	// A second open before the migration (a crash between the copy and
	// the drop) copies nothing twice.
	again, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	if got := ids(); !slices.Equal(got, []int64{5, 6, 9, 10}) {
		t.Fatalf("audit events after a second open = %v, want 5, 6, 9 and the new one 10", got)
	}

	applied, err := db.Migrate(ctx)
	if err != nil || len(applied) == 0 || applied[0] != 14 {
		t.Fatalf("Migrate = %v, %v; want 14 applied first", applied, err)
	}
	var tables int
	if err := db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_events'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Error("the main file still has audit_events after schema 14")
	}
	if got := ids(); !slices.Equal(got, []int64{5, 6, 9, 10}) {
		t.Errorf("audit events after the migration = %v, want 5, 6, 9, 10", got)
	}
	if evs, err := db.ListAudit(ctx, store.AuditFilter{Patient: "p1"}); err != nil || len(evs) != 3 || evs[0].ID != 9 || evs[2].ID != 5 {
		t.Errorf("the moved events of patient p1: %v %+v, want 9, 6, 5", err, evs)
	}
	fi, err := os.Stat(AuditFile(dsn))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the audit file's mode = %v, want 0600 (it names patients)", fi.Mode().Perm())
	}
}

// TestAuditLeavesReadersCaches checks what the audit file is for: an
// audit event does not change the main file, so SQLite's readers keep
// their page caches (PRAGMA data_version, which changes on a reader's
// connection when another connection has committed to the file).
func TestAuditLeavesReadersCaches(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	conn, err := db.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	version := func() int64 {
		t.Helper()
		var v int64
		if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := version()
	if err := db.AppendAudit(ctx, []store.AuditEvent{{Time: time.Now(), Actor: "user:alice", Action: "fhir.read", Outcome: "success", Detail: "{}"}}); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != before {
		t.Errorf("an audit event changed the main file (data_version %d -> %d): every reader drops its page cache", before, v)
	}
	// The check can fail: a write to the main file changes it.
	if _, err := db.w.ExecContext(ctx, "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ('t', '1', 0, 'test')"); err != nil {
		t.Fatal(err)
	}
	if v := version(); v == before {
		t.Error("data_version did not change on a write to the main file; the check above proves nothing")
	}
}

// TestCheckCoversAuditFile: the consistency check (smartgate doctor) reads
// the audit file too, and names it when it fails.
func TestCheckCoversAuditFile(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	dsn, path := db.dsn, db.auditFile()
	evs := make([]store.AuditEvent, 2000)
	for i := range evs {
		evs[i] = store.AuditEvent{Time: time.Now(), Actor: "user:alice", ClientID: "app", Patient: "p1", Action: "fhir.read", Outcome: "success", Detail: `{"resource":"Observation/o1"}`}
	}
	if err := db.AppendAudit(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check on sound files: %v", err)
	}
	db.Close()
	// Zero the audit file's last pages (its indexes'), as a disk fault would.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 8*4096 {
		t.Fatalf("the audit file is %d bytes after a checkpoint-on-close; want several pages", fi.Size())
	}
	if _, err := f.WriteAt(make([]byte, 2*4096), fi.Size()-2*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err = Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "audit file "+path) {
		t.Errorf("Check with a damaged audit file = %v, want an error naming %s", err, path)
	}
}
